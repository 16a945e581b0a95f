"""Tables and figures of a sweep, or of several sweeps together (written into the first):
`python src/report.py outputs/multiruns/<date_time> [more sweep dirs]`. With `--by KEY`, a
tuning sweep's mean AUROC and F1 per value of the override KEY and the value the tuning rule
picks (printed; nothing written)."""

import argparse
import sys
from pathlib import Path

from fdagmm.report import AUROC_TIE, markdown_table, tuning_table, write_report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("sweep_dirs", type=Path, nargs="+", help="Hydra multirun dirs (each holds one dir per job)")
    parser.add_argument("--wall-time-s", type=float, help="the sweep's wall time, to print in the report")
    parser.add_argument("--by", metavar="KEY", help="a tuning sweep: the results per value of this override")
    args = parser.parse_args()
    for sweep_dir in args.sweep_dirs:
        if not sweep_dir.is_dir():
            sys.exit(f"error: {sweep_dir} is not a directory: pass the sweep dir of a multirun")
    try:
        if args.by:
            table, chosen = tuning_table(args.sweep_dirs, args.by)
            print(markdown_table(table.round(4), index_name=args.by))
            print(f"\nchosen: {args.by}={chosen} (the higher mean AUROC; within {AUROC_TIE}, the higher mean F1)")
            return
        path = write_report(args.sweep_dirs, args.wall_time_s)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")
    print(f"report written to {path}")


if __name__ == "__main__":
    main()
