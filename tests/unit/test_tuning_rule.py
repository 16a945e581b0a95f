"""The strategy study's tuning rule (docs/results.md, part 1) on hand-made job dirs: the value
with the higher mean AUROC, a tie within 0.005 to the higher mean F1."""

import json

import pytest
from omegaconf import OmegaConf

from fdagmm.analysis.report import tuning_table


def _job(sweep, n, value, scenario, auroc, f1):
    job = sweep / f"{n}_fdagmm_{scenario}"
    (job / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create({"partition": {"name": scenario}}), job / ".hydra" / "config.yaml")
    OmegaConf.save(OmegaConf.create([f"scenario={scenario}", f"strategy.eta={value}"]), job / ".hydra" / "overrides.yaml")
    (job / "metrics.json").write_text(json.dumps({"final": {"test/auroc": auroc, "test/f1": f1}}))


@pytest.mark.parametrize(
    "aurocs, f1s, chosen",
    [
        ((0.80, 0.70), (0.1, 0.9), "0.001"),  # AUROC decides
        ((0.800, 0.797), (0.1, 0.9), "0.01"),  # within 0.005: F1 decides
    ],
)
def test_the_rule_picks_by_auroc_then_f1(tmp_path, aurocs, f1s, chosen):
    n = 0
    for value, auroc, f1 in zip(("0.001", "0.01"), aurocs, f1s):
        for scenario, shift in (("s1", -0.05), ("s3", 0.05)):  # two scenarios, means as given
            _job(tmp_path, n, value, scenario, auroc + shift, f1)
            n += 1
    table, picked = tuning_table([tmp_path], "strategy.eta")
    assert picked == chosen
    assert table.loc["0.001", "jobs"] == 2
    assert table.loc["0.001", "auroc"] == pytest.approx(aurocs[0])
    assert table.loc["0.001", "auroc s3"] == pytest.approx(aurocs[0] + 0.05)


def test_a_sweep_without_the_key_is_refused(tmp_path):
    _job(tmp_path, 0, "0.01", "s1", 0.8, 0.5)
    with pytest.raises(ValueError, match="no override strategy.server_momentum"):
        tuning_table([tmp_path], "strategy.server_momentum")
