"""The privacy-cost table and figure from sweep dirs (fake jobs: config and metrics.json)."""

import json
import math

import pytest
from omegaconf import OmegaConf

from fdagmm.analysis.privacy_cost import collect, write_privacy_cost


def _job(sweep, name, privacy, seed, auroc, gmm_stats="global"):
    job = sweep / name
    (job / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create({"privacy": privacy, "fed": {"gmm_stats": gmm_stats}, "seed": seed}), job / ".hydra" / "config.yaml")
    metrics = {key: {"test/auroc": auroc - offset} for key, offset in (("final", 0.0), ("clients_mean", 0.01), ("clients_worst", 0.05))}
    if privacy["name"] == "dp":
        metrics["privacy"] = {"noise_multiplier": 2.0, "epsilon": privacy["target_epsilon"] - 0.001}
    (job / "metrics.json").write_text(json.dumps(metrics))


def test_the_table_averages_seeds_per_epsilon_and_the_figure_is_written(tmp_path):
    dp, none = tmp_path / "sweeps" / "dp", tmp_path / "sweeps" / "none"
    for seed, auroc in ((0, 0.6), (1, 0.8)):
        _job(dp, f"{seed}_dp", {"name": "dp", "target_epsilon": 3.0}, seed, auroc)
        _job(none, f"{seed}_none", {"name": "none", "target_epsilon": None}, seed, auroc + 0.2)
    runs = collect([dp, none])
    assert sorted(runs["target"]) == [3.0, 3.0, math.inf, math.inf]
    figure = tmp_path / "figure.png"
    markdown = write_privacy_cost([dp, none], figure, wall_time_s=120)
    assert figure.stat().st_size > 0 and (tmp_path / "sweeps" / "privacy_cost.md").read_text() == markdown
    rows = [line for line in markdown.splitlines() if line.startswith("| global")]
    assert len(rows) == 2
    assert "0.7000 ± 0.1414" in rows[0] and "2.000" in rows[0] and "2.999" in rows[0]  # client 0, z, epsilon at target 3
    assert "0.9000 ± 0.1414" in rows[1] and "∞" in rows[1]
    assert "2.0 min for 4 runs" in markdown


def test_an_unfinished_job_is_an_error_not_a_smaller_average(tmp_path):
    _job(tmp_path / "dp", "0_dp", {"name": "dp", "target_epsilon": 1.0}, 0, 0.6)
    (tmp_path / "dp" / "0_dp" / "metrics.json").unlink()
    with pytest.raises(FileNotFoundError, match="has no metrics.json"):
        collect([tmp_path / "dp"])
