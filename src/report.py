"""Tables and figures of a sweep, or of several sweeps together (written into the first):
`python src/report.py outputs/multiruns/<date_time> [more sweep dirs]`. With `--by KEY`, a
tuning sweep's mean AUROC and F1 per value of the override KEY and the value the tuning rule
picks (printed; nothing written). With `--who-gains ALONE_DIR`, the federated sweep's clients
against the same clients trained alone (`make who-gains`; who_gains.md and its figure). With
`--energies COLUMNS`, the energies of those columns' runs of one seed by kind of record
(normal, common and rare attacks; energy_by_kind.md and its figure). With `--select`,
validation sweeps (`make model-selection`): every candidate's validation AUROC and the
configuration the rule of docs/results.md chooses (selection.md); `--ablation`, the same table
without a choice (ablation.md). With `--personalisation`, the root of `make
personalisation-selection`'s sweeps: every candidate federation's harmed clients and the rule's
choice (personalisation.md). With `--figures NAME`, the ROC curves of the sweeps' DAGMM runs
of one seed beside PCA's, and the energies by attack family of the runs named NAME (e.g.
"pooled, latent 8"; roc.png, energy_by_family.md and .png)."""

import argparse
import sys
from pathlib import Path

from fdagmm.analysis.energy_by_kind import write_energy_by_kind
from fdagmm.analysis.figures import write_figures
from fdagmm.errors import FdagmmError
from fdagmm.analysis.markdown import markdown_table
from fdagmm.analysis.personalisation import write_personalisation
from fdagmm.analysis.report import AUROC_TIE, tuning_table, write_report
from fdagmm.analysis.selection import markdown, select
from fdagmm.analysis.who_gains import write_who_gains


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("sweep_dirs", type=Path, nargs="+", help="Hydra multirun dirs (each holds one dir per job)")
    parser.add_argument("--wall-time-s", type=float, help="the sweep's wall time, to print in the report")
    parser.add_argument("--by", metavar="KEY", help="a tuning sweep: the results per value of this override")
    parser.add_argument("--who-gains", metavar="ALONE_DIR", type=Path, help="the sweep of each client trained alone")
    parser.add_argument("--energies", metavar="COLUMNS", help="comma-separated columns (e.g. local,fdagmm,pooled): energies by kind")
    parser.add_argument("--select", action="store_true", help="validation sweeps: the candidates and the rule's choice")
    parser.add_argument("--ablation", action="store_true", help="validation sweeps: the candidates' table, no choice")
    parser.add_argument("--personalisation", action="store_true", help="the root of personalisation sweeps: harmed clients and the rule's choice")
    parser.add_argument("--figures", metavar="NAME", help="ROC curves and energies by attack family (NAME: the runs to histogram)")
    parser.add_argument("--seed", type=int, default=0, help="with --energies or --figures: the seed whose runs are scored")
    parser.add_argument("--data", help="with --energies: the KDDCUP99 file, if not where the runs read it")
    args = parser.parse_args()
    for sweep_dir in [*args.sweep_dirs, *([args.who_gains] if args.who_gains else [])]:
        if not sweep_dir.is_dir():
            sys.exit(f"error: {sweep_dir} is not a directory: pass the sweep dir of a multirun")
    try:
        if args.by:
            table, chosen = tuning_table(args.sweep_dirs, args.by)
            print(markdown_table(table.round(4), index_name=args.by))
            print(f"\nchosen: {args.by}={chosen} (the higher mean AUROC; within {AUROC_TIE}, the higher mean F1)")
            return
        if args.select or args.ablation:
            text = markdown(select(args.sweep_dirs), choose=args.select)
            path = args.sweep_dirs[0] / ("selection.md" if args.select else "ablation.md")
            path.write_text(text)
            print(text)
        elif args.personalisation:
            path = write_personalisation(args.sweep_dirs[0])
            print(path.read_text())
        elif args.figures:
            path = write_figures(args.sweep_dirs, args.seed, args.figures)
        elif args.energies:
            path = write_energy_by_kind(args.sweep_dirs, args.energies.split(","), args.seed, args.data)
        elif args.who_gains:
            path = write_who_gains(args.sweep_dirs[0], args.who_gains)
        else:
            path = write_report(args.sweep_dirs, args.wall_time_s)
    except (FileNotFoundError, ValueError, FdagmmError) as e:
        sys.exit(f"error: {e}")
    print(f"report written to {path}")


if __name__ == "__main__":
    main()
