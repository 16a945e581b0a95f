"""AUROC against epsilon from `make privacy-cost`'s sweeps: a Markdown table and a figure.

`python src/privacy_cost.py outputs/privacy_cost/dp outputs/privacy_cost/none ... --figure docs/figures/privacy_cost.png`
"""

import argparse
import sys
from pathlib import Path

from fdagmm.analysis.privacy_cost import write_privacy_cost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("sweep_dirs", type=Path, nargs="+", help="Hydra multirun dirs of conf/experiment/privacy_cost.yaml")
    parser.add_argument("--figure", type=Path, default=Path("docs/figures/privacy_cost.png"))
    parser.add_argument("--wall-time-s", type=float, help="the sweeps' wall time, to print under the table")
    parser.add_argument("--validation", type=Path, help="a validation sweep of the private runs: each epsilon's learning rate is the one it chooses")
    args = parser.parse_args()
    missing = [str(d) for d in [*args.sweep_dirs, *([args.validation] if args.validation else [])] if not d.is_dir()]
    if missing:
        sys.exit(f"error: {', '.join(missing)}: not a directory; pass the sweep dirs of `make privacy-cost`")
    try:
        print(write_privacy_cost(args.sweep_dirs, args.figure, args.wall_time_s, args.validation), end="")
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")
    print(f"figure written to {args.figure}")


if __name__ == "__main__":
    main()
