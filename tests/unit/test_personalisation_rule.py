"""The personalisation rule (docs/results.md, "Personalisation: the rule, fixed before any
candidate's result") on hand-made sweeps: the fewest harmed pairs wins, ties to the higher mean
gain then the earlier candidate, no choice from part of the grid, runs on a test set refused."""

import json

import pytest
from omegaconf import OmegaConf

from fdagmm.analysis.personalisation import CANDIDATES, DATA_SETS, K_VALUES, markdown, select_personalisation
from fdagmm.errors import DataError

ALPHA, SEEDS, CLIENTS = 0.5, (0, 1), (0, 1)


def _job(sweep, name, seed, home_client=None, per_client=None, final=None, evaluate_on="validation"):
    job = sweep / name
    (job / ".hydra").mkdir(parents=True)
    cfg = {"data": {"evaluate_on": evaluate_on}, "seed": seed, "partition": {"attack_alpha": ALPHA}, "fed": {"gmm_stats": "global"}}
    if home_client is not None:
        cfg["method"] = {"home_client": home_client}
    OmegaConf.save(OmegaConf.create(cfg), job / ".hydra" / "config.yaml")
    metrics = {"strategy": "fedavg", "final": final or {}}
    if per_client is not None:
        metrics["per_client"] = {f"client{c}": {"test/auroc": a} for c, a in per_client.items()}
        metrics["partition"] = {f"client{c}": {"n_train": 100} for c in per_client}
    (job / "metrics.json").write_text(json.dumps(metrics))


def _grid(root, gains, cells=None, evaluate_on="validation"):
    """Every client alone at AUROC 0.9 and, under each candidate, 0.9 + gains[candidate][client]."""
    for data, k in cells or [(d, k) for d in DATA_SETS for k in K_VALUES]:
        cell = root / data / f"k{k}"
        for seed in SEEDS:
            for client in CLIENTS:
                _job(cell / "alone", f"{seed}_{client}", seed, home_client=client, per_client={client: 0.9}, final={"test/auroc": 0.9}, evaluate_on=evaluate_on)
            for candidate, gain in gains.items():
                _job(cell / candidate, str(seed), seed, per_client={c: 0.9 + gain[c] for c in CLIENTS}, evaluate_on=evaluate_on)


def test_the_fewest_harmed_wins_even_against_a_higher_mean_gain(tmp_path):
    _grid(tmp_path, {
        "fedavg": (0.10, -0.02),  # mean gain 0.04, one client harmed in every partition
        "own_mixture": (0.005, -0.005),  # mean gain 0: no client harmed
        "fedper": (-0.03, -0.03),
        "fedper_own_mixture": (0.02, -0.011),
    })  # fmt: skip
    selection = select_personalisation(tmp_path)
    partitions = len(DATA_SETS) * len(K_VALUES) * len(SEEDS)
    assert selection.chosen == "own_mixture"
    assert selection.table.loc["fedavg", "pairs"] == partitions * len(CLIENTS)
    assert selection.table.loc["fedavg", "harmed"] == partitions
    assert selection.table.loc["fedper", "harmed"] == 2 * partitions
    assert selection.table.loc["own_mixture", "harmed"] == 0
    assert selection.harmed_by_cell.loc[("nsl_kdd", 5, ALPHA), "fedper"] == 2 * len(SEEDS)
    assert "`own_mixture` **chosen**" in markdown(selection)


def test_a_tie_on_harm_goes_to_the_higher_mean_gain_then_the_earlier_candidate(tmp_path):
    _grid(tmp_path, {c: (0.0, 0.0) for c in CANDIDATES} | {"fedper": (0.01, 0.0)})
    assert select_personalisation(tmp_path).chosen == "fedper"
    _grid(tmp_path / "even", {c: (0.0, 0.0) for c in CANDIDATES})
    assert select_personalisation(tmp_path / "even").chosen == CANDIDATES[0]


def test_part_of_the_grid_gives_the_table_but_no_choice(tmp_path):
    _grid(tmp_path, {c: (0.0, 0.0) for c in CANDIDATES}, cells=[("nsl_kdd", 5), ("unsw_nb15", 5)])
    selection = select_personalisation(tmp_path)
    assert selection.chosen is None
    assert f"nsl_kdd K=10 {CANDIDATES[0]}" in selection.missing and len(selection.missing) == 2 * len(CANDIDATES)
    assert "No choice" in markdown(selection)


def test_a_candidate_with_fewer_finished_pairs_blocks_the_choice(tmp_path):
    _grid(tmp_path, {c: (0.0, 0.0) for c in CANDIDATES})
    (tmp_path / "unsw_nb15" / "k10" / "fedper" / "1" / "metrics.json").unlink()  # a failed job
    selection = select_personalisation(tmp_path)
    assert selection.chosen is None and selection.missing == [f"fedper: {len(CLIENTS)} of {selection.table.pairs.max()} pairs"]


def test_runs_on_a_test_set_are_refused(tmp_path):
    _grid(tmp_path, {"fedavg": (0.0, 0.0)}, cells=[("nsl_kdd", 5)], evaluate_on="test")
    with pytest.raises(DataError, match="not on validation data"):
        select_personalisation(tmp_path)


def test_an_empty_root_names_the_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="make personalisation-selection"):
        select_personalisation(tmp_path)
