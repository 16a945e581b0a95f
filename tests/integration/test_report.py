"""report.py on a tiny real sweep: table shape, means and stds of the jobs, figures, missing jobs."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fdagmm.analysis.report import write_report

# The study's names for the four methods, in its order.
STUDY_LABELS = {"local": "DAGMM C0", "fdagmm": "FDAGMM", "pooled": "DAGMM C0&C1 (ideal bound)", "remote": "DAGMM C1"}

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sweep(kdd_slice, tmp_path_factory) -> Path:
    """The reproduce experiment shrunk to 1 round, 1 scenario, 2 seeds (8 jobs)."""
    sweep_dir = tmp_path_factory.mktemp("sweep")
    result = subprocess.run(
        [sys.executable, "src/train.py", "experiment=reproduce", f"data.train_path={kdd_slice}",
         "fed.rounds=1", "scenario=s4", "seed=0,1", f"hydra.sweep.dir={sweep_dir}"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return sweep_dir


def _final(sweep_dir, method, seed, key):
    (job,) = sweep_dir.glob(f"*_{method}_s4_seed{seed}")
    return json.loads((job / "metrics.json").read_text())["final"][key]


@pytest.mark.slow
def test_report_tables_match_the_jobs(sweep):
    report = write_report(sweep, wall_time_s=95.0).read_text()
    assert "Wall time of the sweep: 1.6 min" in report
    assert "None: every job of the grid finished." in report
    assert "None: every loss and metric of every round of every finished job is finite." in report
    for metric in ("precision", "recall", "f1", "auroc", "avg_precision"):
        table = pd.read_csv(sweep / f"table_{metric}.csv", index_col="scenario")
        assert list(table.index) == ["s4"]
        assert list(table.columns) == [f"{label} {part}" for label in STUDY_LABELS.values() for part in ("mean", "std", "n_seeds")]
        for method, label in STUDY_LABELS.items():
            values = [_final(sweep, method, seed, f"test/{metric}") for seed in (0, 1)]
            assert table.loc["s4", f"{label} mean"] == pytest.approx(np.mean(values), abs=1e-6)
            assert table.loc["s4", f"{label} std"] == pytest.approx(np.std(values, ddof=1), abs=1e-6)
            assert table.loc["s4", f"{label} n_seeds"] == 2
    fdagmm_f1 = [_final(sweep, "fdagmm", seed, "test/f1") for seed in (0, 1)]
    assert f"{np.mean(fdagmm_f1):.4f} ({np.std(fdagmm_f1, ddof=1):.4f})" in report
    for name in ("f1_by_scenario.png", "rounds.png"):
        png = (sweep / name).read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 10_000


@pytest.mark.slow
def test_a_job_without_metrics_is_reported_missing(sweep, tmp_path):
    copy = tmp_path / "sweep"
    subprocess.run(["cp", "-r", str(sweep), str(copy)], check=True)
    (job,) = copy.glob("*_pooled_s4_seed1")
    (job / "metrics.json").unlink()
    report = write_report(copy).read_text()
    assert f"{job.name}: no metrics.json" in report
    assert "scenario s4, method pooled, seed 1: no finished job" in report
    table = pd.read_csv(copy / "table_f1.csv", index_col="scenario")
    assert table.loc["s4", "DAGMM C0&C1 (ideal bound) n_seeds"] == 1
    assert table.loc["s4", "DAGMM C0&C1 (ideal bound) mean"] == pytest.approx(_final(copy, "pooled", 0, "test/f1"), abs=1e-6)
    assert "[1 of 2 seeds]" in report


def test_report_refuses_a_dir_without_jobs(tmp_path):
    result = subprocess.run(
        [sys.executable, "src/report.py", str(tmp_path)], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: {tmp_path} holds no Hydra job dirs (*/.hydra/config.yaml)"
