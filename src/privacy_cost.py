"""AUROC against epsilon from `make privacy-cost`'s sweeps: a Markdown table and a figure.

`python src/privacy_cost.py outputs/privacy_cost/dp outputs/privacy_cost/none ... --figure docs/figures/privacy_cost.png`
"""

import argparse
import sys
from pathlib import Path

from fdagmm.analysis.privacy_cost import chosen_settings, write_privacy_cost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("sweep_dirs", type=Path, nargs="*", help="Hydra multirun dirs of conf/experiment/privacy_cost.yaml")
    parser.add_argument("--figure", type=Path, default=Path("docs/figures/privacy_cost.png"))
    parser.add_argument("--wall-time-s", type=float, help="the sweeps' wall time, to print under the table")
    parser.add_argument("--validation", type=Path, nargs="+", default=[], help="validation sweeps of the private runs, one per candidate setting or one over a grid: the private jobs count in the settings they choose")
    parser.add_argument("--print-choice", action="store_true", help="print the overrides the --validation sweeps choose (one line, empty: the configuration as it is) and stop")
    args = parser.parse_args()
    if args.print_choice and not args.validation:
        sys.exit("error: --print-choice chooses from --validation sweep dirs: pass them")
    if not args.print_choice and not args.sweep_dirs:
        sys.exit("error: no sweep dirs: pass the sweep dirs of `make privacy-cost`")
    missing = [str(d) for d in [*args.sweep_dirs, *args.validation] if not d.is_dir()]
    if missing:
        sys.exit(f"error: {', '.join(missing)}: not a directory; pass the sweep dirs of `make privacy-cost`")
    try:
        if args.print_choice:
            chosen = chosen_settings(args.validation)
            if len(chosen) > 1:
                sys.exit("error: the --validation sweeps choose per epsilon; --print-choice needs a validation at one epsilon")
            print(next(iter(chosen.values())))
            return
        print(write_privacy_cost(args.sweep_dirs, args.figure, args.wall_time_s, args.validation), end="")
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")
    print(f"figure written to {args.figure}")


if __name__ == "__main__":
    main()
