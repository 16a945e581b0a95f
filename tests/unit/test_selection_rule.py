"""The configuration rule (docs/results.md, "Choosing the configuration") on hand-made job
dirs: the best mean validation AUROC over data sets, ties within 0.005 to the simpler network,
incomplete candidates left out, runs on a test set refused."""

import json

import pytest
from omegaconf import OmegaConf

from fdagmm.errors import DataError
from fdagmm.analysis.selection import markdown, select

SEEDS = (0, 1)


def _job(sweep, n, overrides, data, seed, auroc, evaluate_on="validation", finished=True):
    job = sweep / f"{n}_pooled_seed{seed}"
    (job / ".hydra").mkdir(parents=True)
    cfg = {"data": {"name": data, "evaluate_on": evaluate_on}, "seed": seed}
    OmegaConf.save(OmegaConf.create(cfg), job / ".hydra" / "config.yaml")
    OmegaConf.save(OmegaConf.create([*overrides, f"seed={seed}", f"data={data}", "experiment=model_selection"]), job / ".hydra" / "overrides.yaml")
    if finished:
        (job / "metrics.json").write_text(json.dumps({"final": {"test/auroc": auroc, "test/auroc_reconstruction": auroc - 0.1}}))


def _sweep(tmp_path, candidates, **job_args):
    """candidates: overrides -> {data set: mean AUROC}; seeds 0 and 1 at the mean -+ 0.01."""
    n = 0
    for overrides, means in candidates.items():
        for data, mean in means.items():
            for seed, shift in zip(SEEDS, (-0.01, 0.01)):
                _job(tmp_path, n, overrides.split(), data, seed, mean + shift, **job_args)
                n += 1


LATENT_4 = "model.net.latent_dim=4 model.net.n_components=4"
LATENT_8 = "model.net.latent_dim=8 model.net.n_components=4"
LATENT_8_K8 = "model.net.latent_dim=8 model.net.n_components=8"


def test_the_best_mean_over_data_sets_wins(tmp_path):
    _sweep(tmp_path, {
        LATENT_4: {"nsl_kdd": 0.95, "unsw_nb15": 0.80},  # score 0.875
        LATENT_8: {"nsl_kdd": 0.90, "unsw_nb15": 0.90},  # score 0.900: best, though worse on NSL-KDD
    })  # fmt: skip
    selection = select([tmp_path])
    assert selection.chosen == LATENT_8
    assert selection.table.loc[LATENT_8, "score"] == pytest.approx(0.90)
    assert selection.table.loc[LATENT_4, "nsl_kdd auroc"] == pytest.approx(0.95)
    assert selection.table.loc[LATENT_4, "nsl_kdd reconstruction"] == pytest.approx(0.85)
    assert "**chosen**" in markdown(selection) and "**chosen**" not in markdown(selection, choose=False)


def test_a_tie_goes_to_the_smaller_code_then_fewer_components(tmp_path):
    _sweep(tmp_path, {
        LATENT_8_K8: {"nsl_kdd": 0.904, "unsw_nb15": 0.90},  # best by 0.002
        LATENT_8: {"nsl_kdd": 0.90, "unsw_nb15": 0.90},
        LATENT_4: {"nsl_kdd": 0.85, "unsw_nb15": 0.85},  # smaller, but 0.052 behind: no tie
    })  # fmt: skip
    assert select([tmp_path]).chosen == LATENT_8


def test_a_candidate_missing_a_seed_is_left_out(tmp_path):
    _sweep(tmp_path, {LATENT_4: {"nsl_kdd": 0.90, "unsw_nb15": 0.90}})
    _job(tmp_path, 99, LATENT_8.split(), "nsl_kdd", 0, 0.99)
    _job(tmp_path, 98, LATENT_8.split(), "unsw_nb15", 0, 0.99)
    _job(tmp_path, 97, LATENT_8.split(), "nsl_kdd", 1, 0.99)
    _job(tmp_path, 96, LATENT_8.split(), "unsw_nb15", 1, 0.99, finished=False)  # the job failed
    selection = select([tmp_path])
    assert selection.chosen == LATENT_4
    assert selection.incomplete == [f"{LATENT_8}: fewer than 2 finished seeds on some data set"]


def test_runs_on_the_test_set_are_refused(tmp_path):
    _sweep(tmp_path, {LATENT_4: {"nsl_kdd": 0.9}}, evaluate_on="test")
    with pytest.raises(DataError, match="tested on the test set, not on validation data"):
        select([tmp_path])
