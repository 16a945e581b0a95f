"""The ``fdagmm`` command: one subcommand per program of ``src/``.

``fdagmm train scenario=s3 fed.rounds=20`` is ``python src/train.py scenario=s3 fed.rounds=20``
word for word: the subcommand runs that script as the main program with the same arguments,
so each keeps its own ``--help``, errors and exit status. Installed by ``pip install -e .``
(``make install``), from the source checkout whose ``src/`` and ``conf/`` it runs.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1]
# subcommand: (script under src/, what it does)
PROGRAMS = {
    "train": ("train.py", "train and evaluate a detector: FDAGMM, DAGMM or a baseline (Hydra overrides; --help)"),
    "score": ("score.py", "score a file, a stream (input=-) or a growing file (follow=true) with a model.pt"),
    "serve": ("serve.py", "serve a model.pt over HTTP: POST /score, GET /health, GET /model"),
    "schema": ("schema.py", "infer or check a data set's schema"),
    "report": ("report.py", "a sweep's tables and figures, and its analyses (--who-gains, --energies, --select, ...)"),
    "privacy-cost": ("privacy_cost.py", "the AUROC-against-epsilon table and figure of make privacy-cost's sweeps"),
    "bench": ("bench.py", "performance figures against baselines run in the same process"),
    "bench-serve": ("bench_serve.py", "the scoring service's load test against score.py"),
    "bench-gpu": ("bench_gpu.py", "on a GPU machine: GPU against CPU figures"),
}


def usage() -> str:
    width = max(map(len, PROGRAMS))
    lines = [f"  {name:<{width}}  {what}" for name, (_, what) in PROGRAMS.items()]
    return "usage: fdagmm <command> [arguments]  (fdagmm <command> --help for its own)\n\ncommands:\n" + "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        sys.exit(0 if args else 2)
    name, rest = args[0], args[1:]
    if name not in PROGRAMS:
        print(f"error: no command {name!r}: the commands are {', '.join(PROGRAMS)} (fdagmm --help)", file=sys.stderr)
        sys.exit(2)
    script = SRC / PROGRAMS[name][0]
    if not script.is_file():
        print(f"error: {script} not found: the fdagmm command runs from a source checkout installed with pip install -e .", file=sys.stderr)
        sys.exit(2)
    sys.argv = [str(script), *rest]
    runpy.run_path(str(script), run_name="__main__")
