"""GPU figures of FDAGMM, all in one run on a GPU machine: `make bench-gpu`.

1. the CUDA-graph step against the eager step (tests/unit/models/test_cuda_graph.py, run first);
2. the README's main command (s3, 20 rounds) on the GPU with CUDA graphs, on the same
   machine's CPU cores (``trainer.accelerator=cpu``) and on the GPU eagerly
   (``model.cuda_graph=false``, fewer rounds): process time, time per round from the round
   lines' timestamps, final AUROC and F1;
3. the same command with seeds 1-4 on the GPU (together), for the metrics' seed spread;
4. where a GPU round's time goes (``bench.bench_round``) and a cProfile of a short run;
5. ``make reproduce``'s sweep and report on the GPU, ``--reproduce-jobs`` jobs at a time.
Everything is written under ``--out`` (figures.md, the runs' logs, the reproduction's
report) as it is measured, so a run cut short keeps what it had. Nothing passes or fails.
"""

from __future__ import annotations

import argparse
import cProfile
import contextlib
import datetime as dt
import io
import json
import os
import pstats
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ROUND_LINE = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]\[INFO\] round (\d+)/(\d+)", re.MULTILINE)
MAIN_COMMAND = ["scenario=s3", "fed.rounds=20"]
SECTIONS = ("tests", "cpu", "eager", "seeds", "rounds", "reproduce")


class Figures:
    """Rows of (what, figure, detail), appended to ``out``/figures.md as they come."""

    def __init__(self, out: Path):
        self.path = out / "figures.md"
        self.path.write_text("| what | figure | detail |\n|---|---|---|\n")

    def add(self, what: str, figure: str, detail: str = "") -> None:
        print(f"{what}: {figure} {detail}", flush=True)
        with self.path.open("a") as f:
            f.write(f"| {what} | {figure} | {detail} |\n")


def seconds_per_round(log: str) -> float | None:
    """Median time between consecutive round lines (the first round's set-up left out)."""
    stamps = [dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f") for m in ROUND_LINE.finditer(log)]
    gaps = [(b - a).total_seconds() for a, b in zip(stamps, stamps[1:])]
    return statistics.median(gaps) if gaps else None


def run_main_command(out: Path, label: str, data: str, *overrides: str) -> dict:
    """``python src/train.py scenario=s3 fed.rounds=20 ...`` as a user runs it; its wall time,
    time per round and final metrics."""
    run_dir = out / label
    command = [sys.executable, "src/train.py", *MAIN_COMMAND, f"data.path={data}", f"hydra.run.dir={run_dir}", *overrides]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - started
    log = result.stdout + result.stderr
    (out / f"{label}.log").write_text(log)
    if result.returncode != 0:
        return {"label": label, "failed": log.strip().splitlines()[-1] if log.strip() else f"exit {result.returncode}", "wall_s": wall}
    final = json.loads((run_dir / "metrics.json").read_text())["final"]
    return {"label": label, "wall_s": wall, "per_round_s": seconds_per_round(log), "auroc": final["test/auroc"], "f1": final["test/f1"]}


def describe(run: dict) -> tuple[str, str]:
    if "failed" in run:
        return "FAILED", run["failed"]
    per_round = f"{run['per_round_s']:.3f} s a round" if run["per_round_s"] is not None else "one round"
    return f"{run['wall_s']:.1f} s", f"{per_round}; AUROC {run['auroc']:.4f}, F1 {run['f1']:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/kddcup.data_10_percent.gz", help="the KDDCUP99 10%% file")
    parser.add_argument("--out", default="outputs/bench_gpu", help="where the figures, logs and report go")
    parser.add_argument("--eager-rounds", type=int, default=5, help="rounds of the eager GPU run")
    parser.add_argument("--reproduce-jobs", type=int, default=8, help="make reproduce's jobs at a time")
    parser.add_argument("--skip", default="", help=f"comma-separated sections to leave out, of: {','.join(SECTIONS)}")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    if skip - set(SECTIONS):
        sys.exit(f"error: --skip {args.skip}: unknown sections {sorted(skip - set(SECTIONS))}; they are {','.join(SECTIONS)}")
    import torch  # after argparse: --help needs no CUDA

    if not torch.cuda.is_available():
        sys.exit("error: no CUDA GPU here: make bench-gpu measures a GPU machine (make bench is the CPU's)")
    data = str(Path(args.data).resolve())
    if not Path(data).is_file():
        sys.exit(f"error: {args.data} not found: pass --data <KDDCUP99 10% file>")
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    figures = Figures(out)
    figures.add("machine", torch.cuda.get_device_name(0), f"torch {torch.__version__}, {os.cpu_count()} CPU cores")

    # 1. The captured step against the eager one, before any figure is taken from it.
    tests = None if "tests" in skip else subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/unit/models/test_cuda_graph.py"],
        cwd=ROOT, capture_output=True, text=True,
    )
    if tests is not None:
        (out / "test_cuda_graph.log").write_text(tests.stdout + tests.stderr)
        figures.add("CUDA-graph step against the eager step (pytest)", "passed" if tests.returncode == 0 else "FAILED",
                    (tests.stdout.strip().splitlines() or ["no output"])[-1])  # fmt: skip

    # 2. The main command: a 1-round warm-up (parse cache, CUDA driver), then each way once.
    run_main_command(out, "warmup", data, "fed.rounds=1")
    for what, code in (
        ("process start-up: python, torch, Lightning and the project imported", "import fdagmm.run.experiment"),
        ("process start-up: the same, and CUDA initialised", "import fdagmm.run.experiment, torch; torch.zeros(1, device='cuda')"),
    ):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
        figures.add(what, f"{time.perf_counter() - started:.1f} s")
    graphs = run_main_command(out, "gpu_cuda_graph", data)
    figures.add("main command, GPU, CUDA graphs (default)", *describe(graphs))
    if "failed" in graphs:  # the GPU's default path is broken: the sweeps below would only repeat it
        skip |= {"seeds", "reproduce"}
    if "cpu" not in skip:
        cpu = run_main_command(out, "cpu", data, "trainer.accelerator=cpu")
        figures.add(f"main command, the same machine's {os.cpu_count()} CPU cores", *describe(cpu))
        if "failed" not in graphs and "failed" not in cpu:
            figures.add("main command, CPU / GPU", f"{cpu['wall_s'] / graphs['wall_s']:.1f}x (process)",
                        f"{cpu['per_round_s'] / graphs['per_round_s']:.1f}x per round")  # fmt: skip
    if "eager" not in skip:
        eager = run_main_command(out, "gpu_eager", data, "model.cuda_graph=false", f"fed.rounds={args.eager_rounds}")
        figures.add(f"main command, GPU, eager (model.cuda_graph=false), {args.eager_rounds} rounds", *describe(eager))

    # 3. Seeds 1-4 on the GPU together: the metrics' spread (their times overlap: not figures).
    seeds = [] if "seeds" in skip else [subprocess.Popen(
        [sys.executable, "src/train.py", *MAIN_COMMAND, f"data.path={data}", f"seed={s}", f"hydra.run.dir={out}/seed{s}"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    ) for s in (1, 2, 3, 4)]  # fmt: skip
    finals = [graphs] if "failed" not in graphs else []
    for s, process in zip((1, 2, 3, 4), seeds):
        if process.wait() == 0:
            metrics = json.loads((out / f"seed{s}" / "metrics.json").read_text())["final"]
            finals.append({"auroc": metrics["test/auroc"], "f1": metrics["test/f1"]})
    if len(finals) > 1:
        auroc, f1 = ([f[key] for f in finals] for key in ("auroc", "f1"))
        figures.add(f"main command, GPU, {len(finals)} seeds", f"AUROC {statistics.mean(auroc):.4f} ({statistics.stdev(auroc):.4f})",
                    f"F1 {statistics.mean(f1):.4f} ({statistics.stdev(f1):.4f}); mean (sample std)")  # fmt: skip

    # 4. Where a GPU round's time goes, and a profile of a short run.
    if "rounds" not in skip:
        sys.path.insert(0, str(ROOT / "src"))
        import bench

        for overrides, label in (((), "CUDA graphs"), (("model.cuda_graph=false",), "eager")):
            for what, figure, detail, share in bench.bench_round(data, 4, *overrides, accelerator="gpu"):
                figures.add(f"GPU ({label}) {what}", figure, f"{detail} {share}".strip())
        profile = cProfile.Profile()
        with contextlib.redirect_stdout(io.StringIO()):
            profile.runcall(bench.bench_round, data, 3, accelerator="gpu")
        text = io.StringIO()
        pstats.Stats(profile, stream=text).sort_stats("cumulative").print_stats(60)
        (out / "profile_gpu_round.txt").write_text(text.getvalue())

    # 5. The whole study on this GPU, several jobs at a time (make reproduce's two commands).
    if "reproduce" not in skip:
        sweep = out / "reproduce"
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "src/train.py", "experiment=reproduce", f"hydra.sweep.dir={sweep}", f"data.path={data}",
             f"hydra.launcher.n_jobs={args.reproduce_jobs}"],
            cwd=ROOT, capture_output=True, text=True,
        )  # fmt: skip
        wall = time.perf_counter() - started
        (out / "reproduce.log").write_text(result.stdout + result.stderr)
        report = subprocess.run(
            [sys.executable, "src/report.py", str(sweep), "--wall-time-s", str(round(wall))], cwd=ROOT, capture_output=True, text=True
        )
        (out / "report.log").write_text(report.stdout + report.stderr)
        failed = "" if result.returncode == 0 and report.returncode == 0 else f"sweep exit {result.returncode}, report exit {report.returncode}"
        figures.add(f"make reproduce (80 jobs), {args.reproduce_jobs} at a time", f"{wall / 60:.1f} min", failed)

if __name__ == "__main__":
    main()
