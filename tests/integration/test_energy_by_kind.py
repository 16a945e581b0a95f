"""energy_by_kind on a tiny real sweep (s4, 1 round, FedAvg and DAGMM C0): the rebuilt test
sets, their kinds and the share flagged agree with what the runs themselves reported."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fdagmm.analysis.energy_by_kind import KINDS, collect_energies, kind_table, record_kinds, write_energy_by_kind

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sweep(kdd_slice, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("energy_by_kind") / "sweep"
    result = subprocess.run(
        [sys.executable, "src/train.py", "-m", "scenario=s4", "method=local,fdagmm", "seed=0", "fed.rounds=1",
         f"data.train_path={kdd_slice}", "data.cache_dir=null", f"hydra.sweep.dir={root}"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return root


def test_kinds_split_attacks_by_their_share_of_the_file():
    file_labels = np.array(["normal"] * 5 + ["smurf"] * 150 + ["neptune"] * 48 + ["pod"])
    kinds = record_kinds(np.array(["normal", "smurf", "neptune", "pod"]), file_labels, ["normal"])
    assert list(kinds) == ["normal", "common attacks", "common attacks", "rare attacks"]  # pod: 1 of 199 attacks, under 1%


@pytest.mark.slow
def test_energies_by_kind_agree_with_the_runs_metrics(sweep):
    energies = collect_energies([sweep], ["local", "fdagmm"], seed=0)
    table = kind_table(energies)
    for job in sweep.glob("*_s4_seed0"):
        metrics = json.loads((job / "metrics.json").read_text())
        column = "local" if "local" in job.name else "fdagmm"
        counts = metrics["partition"]["client0"]
        rows = table.loc[("s4", column)]
        assert set(rows.index) <= set(KINDS)
        assert rows.records.sum() == counts["n_test"]
        assert rows.loc["normal", "records"] == counts["n_test_anomalies"]
        # normal records are the positives: the share of them above the threshold is the run's recall
        assert rows.loc["normal", "flagged"] == pytest.approx(metrics["final"]["test/recall"], abs=1e-4)
    report = write_energy_by_kind([sweep], ["local", "fdagmm"], seed=0).read_text()
    assert "| s4 |" in report and (sweep / "energy_by_kind.png").stat().st_size > 0


@pytest.mark.slow
def test_energies_refuse_a_seed_without_runs(sweep):
    with pytest.raises(FileNotFoundError, match="no finished run of seed 7"):
        collect_energies([sweep], ["fdagmm"], seed=7)
