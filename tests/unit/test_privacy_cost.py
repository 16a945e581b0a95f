"""The privacy-cost table and figure from sweep dirs (fake jobs: config and metrics.json)."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from fdagmm.analysis.privacy_cost import chosen_settings, collect, write_privacy_cost


def _job(sweep, name, privacy, seed, auroc, gmm_stats="global", lr=1e-3, method="fdagmm", home_client=0, per_client=None, evaluate_on="test", overrides=()):
    """A finished job; its overrides: ``overrides``, the learning rate, seed, epsilon and evaluation set."""
    job = sweep / name
    (job / ".hydra").mkdir(parents=True)
    typed = [*overrides, f"model.optimizer.lr={lr:g}", f"seed={seed}", f"privacy.target_epsilon={privacy['target_epsilon']}", f"data.evaluate_on={evaluate_on}"]
    OmegaConf.save(OmegaConf.create(typed), job / ".hydra" / "overrides.yaml")
    cfg = {"privacy": privacy, "fed": {"gmm_stats": gmm_stats}, "seed": seed, "model": {"optimizer": {"lr": lr}},
           "method": {"name": method, "home_client": home_client}, "data": {"evaluate_on": evaluate_on}}  # fmt: skip
    OmegaConf.save(OmegaConf.create(cfg), job / ".hydra" / "config.yaml")
    metrics = {key: {"test/auroc": auroc - offset} for key, offset in (("final", 0.0), ("clients_mean", 0.01), ("clients_worst", 0.05))}
    if per_client is not None:
        metrics["per_client"] = {f"client{k}": {"test/auroc": a} for k, a in enumerate(per_client)}
    if privacy["name"] == "dp":
        metrics["privacy"] = {"noise_multiplier": 2.0, "epsilon": privacy["target_epsilon"] - 0.001}
    elif privacy["name"] == "record_dp":
        metrics["privacy"] = {"noise_multiplier_by_client": {"client0": 4.0, "client1": 1.5}, "epsilon": privacy["target_epsilon"], "delta": 1e-6}
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


def test_the_update_to_noise_ratio_is_the_median_round_averaged_over_seeds(tmp_path):
    dp, none = tmp_path / "sweeps" / "dp", tmp_path / "sweeps" / "none"
    for seed, ratios in ((0, (0.1, 0.5, 0.2)), (1, (0.4, 0.3, 0.9))):
        _job(dp, f"{seed}", {"name": "dp", "target_epsilon": 3.0}, seed, 0.7)
        metrics = json.loads((dp / f"{seed}" / "metrics.json").read_text())
        metrics["history"] = [{"round": r + 1, "privacy/update_to_noise": ratio} for r, ratio in enumerate(ratios)]
        (dp / f"{seed}" / "metrics.json").write_text(json.dumps(metrics))
    _job(none, "0", {"name": "none", "target_epsilon": None}, 0, 0.9)
    markdown = write_privacy_cost([dp, none], tmp_path / "figure.png")
    dp_row, none_row = [line for line in markdown.splitlines() if line.startswith("| global")]
    assert "| 0.300 |" in dp_row  # the mean of the medians 0.2 and 0.4
    assert none_row.rstrip(" |").split(" | ")[-4] == "-"


def test_an_unfinished_job_is_an_error_not_a_smaller_average(tmp_path):
    _job(tmp_path / "dp", "0_dp", {"name": "dp", "target_epsilon": 1.0}, 0, 0.6)
    (tmp_path / "dp" / "0_dp" / "metrics.json").unlink()
    with pytest.raises(FileNotFoundError, match="has no metrics.json"):
        collect([tmp_path / "dp"])


def test_references_untrained_and_alone_are_rows_over_the_clients_run_alone(tmp_path):
    """With clients 0 and 1 trained alone, every federated row is taken over those two
    clients (of three), so that the federation, the untrained network and the clients alone
    compare alike."""
    none, alone = tmp_path / "none", tmp_path / "alone"
    for seed in (0, 1):
        _job(none, f"{seed}_trained", {"name": "none", "target_epsilon": None}, seed, 0.9, "local", per_client=[0.9, 0.8, 0.1])
        _job(none, f"{seed}_untrained", {"name": "none", "target_epsilon": None}, seed, 0.7, "local", lr=1e-12, per_client=[0.7, 0.6, 0.1])
        for k, auroc in ((0, 0.75), (1, 0.65)):
            _job(alone, f"{seed}_{k}", {"name": "none", "target_epsilon": None}, seed, auroc, "local", method="local", home_client=k)
    runs = collect([none, alone]).set_index("network")
    assert runs.loc["trained", "worst client"].tolist() == [0.8, 0.8]  # client 2's 0.1 is not among the compared
    assert runs.loc["untrained", "mean client"].tolist() == pytest.approx([0.65, 0.65])
    assert runs.loc["each client alone", "client 0"].tolist() == [0.75, 0.75]
    assert runs.loc["each client alone", "worst client"].tolist() == [0.65, 0.65]


def test_the_learning_rate_rule_takes_each_epsilons_best_validation_mean_ties_to_the_larger_rate(tmp_path):
    """Per epsilon the rate with the best mean over seeds on validation data; within 0.001 of
    the best, the larger rate. The test-set table then keeps only the chosen rate's runs."""
    validation, test = tmp_path / "validation", tmp_path / "sweeps" / "dp"
    means = {(1.0, 1e-3): 0.70, (1.0, 1e-4): 0.80, (3.0, 1e-3): 0.8995, (3.0, 1e-4): 0.9000}
    for (target, lr), mean in means.items():
        for seed, spread in ((0, -0.05), (1, 0.05)):
            privacy = {"name": "record_dp", "target_epsilon": target}
            _job(validation, f"{target}_{lr}_{seed}", privacy, seed, mean + spread, lr=lr, evaluate_on="validation")
            _job(test, f"{target}_{lr}_{seed}", privacy, seed, 0.5 + lr * 100, lr=lr)  # test AUROCs the rule must not see
    assert chosen_settings([validation]) == {1.0: "model.optimizer.lr=0.0001", 3.0: "model.optimizer.lr=0.001"}
    runs = collect([test], chosen_settings([validation]))
    assert sorted(zip(runs["target"], runs["lr"])) == [(1.0, 1e-4), (1.0, 1e-4), (3.0, 1e-3), (3.0, 1e-3)]
    assert set(runs["z"]) == {4.0}  # record-level DP: client 0's noise multiplier
    markdown = write_privacy_cost([test], tmp_path / "figure.png", validation_dirs=[validation])
    assert "Settings chosen on validation data" in markdown and "ε 1: model.optimizer.lr=0.0001, ε 3: model.optimizer.lr=0.001" in markdown


def test_the_tuning_rule_takes_the_best_candidate_ties_to_the_one_given_first_and_one_epsilon_chooses_for_all(tmp_path):
    """DP-FedAvg's rule: one validation sweep per candidate at one epsilon; the best validation
    AUROC wins, a tie within 0.001 goes to the candidate listed first, and that choice selects
    the private test jobs at every epsilon."""
    dp = {"name": "dp", "target_epsilon": 3.0}
    candidates = {"base": ((), 0.80), "momentum": (("strategy=fedavgm", "strategy.server_momentum=0.9"), 0.8505), "clip": (("privacy.clip_norm=0.1",), 0.8500)}
    for name, (overrides, auroc) in candidates.items():
        _job(tmp_path / "validation" / name, "0", dp, 0, auroc, evaluate_on="validation", overrides=overrides)
    listed = [tmp_path / "validation" / name for name in ("base", "clip", "momentum")]
    assert chosen_settings(listed) == {None: "model.optimizer.lr=0.001 privacy.clip_norm=0.1"}
    test = tmp_path / "sweeps" / "dp"
    for target in (1.0, 8.0):
        for name, (overrides, _) in candidates.items():
            _job(test, f"{name}_{target}", {"name": "dp", "target_epsilon": target}, 0, 0.5, overrides=overrides)
    runs = collect([test], chosen_settings(listed))
    assert sorted(runs["target"]) == [1.0, 8.0]  # the clip candidate's jobs only


def test_print_choice_gives_make_the_chosen_overrides_and_refuses_a_per_epsilon_choice(tmp_path):
    for name, overrides, auroc in (("base", (), 0.7), ("momentum", ("strategy.server_momentum=0.9",), 0.8)):
        _job(tmp_path / name, "0", {"name": "dp", "target_epsilon": 3.0}, 0, auroc, evaluate_on="validation", overrides=overrides)
    _job(tmp_path / "other_epsilon", "0", {"name": "dp", "target_epsilon": 8.0}, 0, 0.9, evaluate_on="validation")
    script = Path(__file__).resolve().parents[2] / "src" / "privacy_cost.py"

    def print_choice(*dirs):
        return subprocess.run([sys.executable, str(script), "--print-choice", "--validation", *(str(tmp_path / d) for d in dirs)], capture_output=True, text=True)

    chosen = print_choice("base", "momentum")
    assert chosen.returncode == 0 and chosen.stdout == "model.optimizer.lr=0.001 strategy.server_momentum=0.9\n"
    refused = print_choice("base", "other_epsilon")
    assert refused.returncode != 0 and refused.stderr.strip() == "error: the --validation sweeps choose per epsilon; --print-choice needs a validation at one epsilon"


def test_a_validation_at_some_epsilons_does_not_choose_for_others(tmp_path):
    for target in (1.0, 3.0):
        _job(tmp_path / "validation", f"{target}", {"name": "dp", "target_epsilon": target}, 0, 0.7, evaluate_on="validation")
    _job(tmp_path / "dp", "0", {"name": "dp", "target_epsilon": 8.0}, 0, 0.7)
    with pytest.raises(ValueError, match="no runs at epsilon 8"):
        collect([tmp_path / "dp"], chosen_settings([tmp_path / "validation"]))


def test_the_tuning_rule_refuses_a_sweep_tested_on_the_test_set(tmp_path):
    _job(tmp_path / "dp", "0", {"name": "record_dp", "target_epsilon": 1.0}, 0, 0.6)
    with pytest.raises(ValueError, match="chooses on validation data only"):
        chosen_settings([tmp_path / "dp"])
