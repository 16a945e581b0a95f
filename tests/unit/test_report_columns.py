"""The report's columns on hand-made job dirs (no training): strategies, untrained networks
and classical baselines get columns and labels of their own, several sweeps make one report,
and the gap to the pooled bound is the difference of the means."""

import json

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize
from omegaconf import OmegaConf

from fdagmm.analysis.report import collect, write_report

# (overrides, metrics.json label, strategy) -> expected column and label
JOBS = [
    (["method=fdagmm"], "FDAGMM", "fedavg", "fdagmm", "FDAGMM"),
    (["method=fdagmm", "strategy=fedprox"], "FDAGMM (fedprox)", "fedprox", "fdagmm_fedprox", "FDAGMM (fedprox)"),
    (["method=pooled"], "DAGMM C0&C1", "fedavg", "pooled", "DAGMM C0&C1 (ideal bound)"),
    (["method=local", "fed.rounds=0"], "DAGMM C0", "fedavg", "local_untrained", "DAGMM C0 (untrained)"),
    (["method=iforest_pooled"], "Isolation Forest C0&C1", "fedavg", "iforest_pooled",
     "Isolation Forest C0&C1 (pooled, non-private reference)"),
]  # fmt: skip


def _job(sweep_dir, name, overrides, label, strategy, seed, auroc, rounds=3):
    with initialize(version_base="1.3", config_path="../../conf"):
        cfg = compose(config_name="config", overrides=["scenario=s1", f"seed={seed}", "paths.output_dir=unused", *overrides])
    job = sweep_dir / f"{name}_seed{seed}"
    (job / ".hydra").mkdir(parents=True)
    OmegaConf.save(cfg, job / ".hydra" / "config.yaml")
    final = {"test/precision": 0.5, "test/recall": 0.5, "test/f1": auroc / 2, "test/auroc": auroc, "test/avg_precision": 0.5}
    history = [{"round": r, "test/auroc": auroc * r / rounds, "test/f1": auroc / 2} for r in range(1, rounds + 1)]
    metrics = {"label": label, "strategy": strategy, "final": final, "final_by_threshold_ref": {"own": final}, "history": history}
    (job / "metrics.json").write_text(json.dumps(metrics))


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
    """Two sweep dirs: the federations in one, the references in the other; seeds 0 and 1."""
    first, second = tmp_path_factory.mktemp("federations"), tmp_path_factory.mktemp("references")
    for i, (overrides, label, strategy, column, _) in enumerate(JOBS):
        for seed in (0, 1):
            _job(first if column.startswith("fdagmm") else second, f"{i}_{column}", overrides, label, strategy, seed, 0.5 + 0.1 * i + 0.01 * seed)
    return [first, second]


def test_each_kind_of_run_gets_its_own_column_and_label(sweeps):
    sweep = collect(sweeps)
    assert sweep.labels == {column: label for *_, column, label in JOBS}
    assert list(sweep.runs.groupby("method").size()) == [2] * len(JOBS)
    assert not sweep.missing


def test_one_report_over_several_sweeps_with_the_gap_figure(sweeps):
    report = write_report(sweeps).read_text()
    table = pd.read_csv(sweeps[0] / "table_auroc.csv", index_col="scenario")
    # Column i's AUROC is 0.5 + 0.1 i (+0.01 for seed 1): the means, and the gap to the pooled bound.
    for i, (*_, label) in enumerate(JOBS):
        assert table.loc["s1", f"{label} mean"] == pytest.approx(0.505 + 0.1 * i)
    pooled, fedprox = table.loc["s1", "DAGMM C0&C1 (ideal bound) mean"], table.loc["s1", "FDAGMM (fedprox) mean"]
    assert pooled - fedprox == pytest.approx(0.1)
    for figure in ("gap_to_pooled.png", "rounds_by_strategy.png", "rounds.png"):
        assert f"]({figure})" in report
        assert (sweeps[0] / figure).read_bytes().startswith(b"\x89PNG")
    assert all(f"`{d}`" in report for d in sweeps)
    assert np.isfinite(table.filter(like="mean").to_numpy()).all()
