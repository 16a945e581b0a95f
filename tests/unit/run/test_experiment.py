"""Whole runs in process on synthetic records (no data file): K clients, strategies,
sampling, per-client evaluation, exact resume with server and client state, classical
baselines (method.detector) and the untrained DAGMM reference (fed.rounds=0)."""

import importlib.util
import json
import os

import numpy as np
import pytest
import torch
from helpers.synthetic import write_kdd_file
from hydra import compose, initialize
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from fdagmm.detection.evaluation import metrics_by_threshold_ref
from fdagmm.errors import ConfigError
from fdagmm.run import experiment
from fdagmm.run.experiment import train

METRICS = {"test/precision", "test/recall", "test/f1", "test/auroc", "test/avg_precision", "test/auroc_reconstruction"}


@pytest.fixture(scope="module")
def synthetic_file(tmp_path_factory):
    return write_kdd_file(tmp_path_factory.mktemp("data") / "synthetic.csv.gz", n=6000, seed=0)


def _cfg(data_path, output_dir, *overrides):
    with initialize(version_base="1.3", config_path="../../../conf"):
        return compose(
            config_name="config",
            overrides=[f"data.train_path={data_path}", "data.cache_dir=null", f"paths.output_dir={output_dir}",
                       "trainer.accelerator=cpu", "data.batch_size=256", *overrides],
        )  # fmt: skip


def test_k_clients_dirichlet_fedadam_with_sampling(synthetic_file, tmp_path):
    cfg = _cfg(synthetic_file, tmp_path, "partition=dirichlet", "partition.num_clients=6", "partition.alpha=1.0",
               "strategy=fedadam", "fed.clients_per_round=3", "fed.rounds=3")  # fmt: skip
    payload = train(cfg)
    assert payload["n_clients"] == 6 and payload["strategy"] == "fedadam" and payload["scenario"] == "dirichlet_k6_a1.0"
    assert sorted(payload["per_client"]) == [f"client{k}" for k in range(6)]
    for name in ("clients_mean", "clients_worst"):
        assert set(payload[name]) == METRICS
    aurocs = [m["test/auroc"] for m in payload["per_client"].values()]
    assert payload["clients_worst"]["test/auroc"] == min(aurocs)
    assert payload["clients_mean"]["test/auroc"] == pytest.approx(np.mean(aurocs))
    assert payload["per_client"]["client0"] == payload["final"]
    for h in payload["history"]:
        assert len(h["sampled_clients"]) == 3
        assert {f"train/loss/client{k}" for k in h["sampled_clients"]} == {k for k in h if k.startswith("train/loss/")}
    assert len({tuple(h["sampled_clients"]) for h in payload["history"]}) >= 1
    assert all(np.isfinite(v) for m in payload["per_client"].values() for v in m.values())
    server = EventAccumulator(str(tmp_path / "tensorboard" / "server"), size_guidance={"scalars": 0})
    server.Reload()
    for name in ("client5", "mean", "worst"):
        [event] = server.Scalars(f"test/auroc/{name}")
        assert event.step == 3
    assert server.Scalars("test/auroc/client5")[0].value == pytest.approx(payload["per_client"]["client5"]["test/auroc"])


def test_fedavg_and_fedadam_differ_but_each_is_reproducible(synthetic_file, tmp_path):
    runs = {}
    for name, strategy in (("a", "fedavg"), ("b", "fedavg"), ("c", "fedadam")):
        train(_cfg(synthetic_file, tmp_path / name, "partition=iid", "partition.num_clients=3", f"strategy={strategy}", "fed.rounds=2"))
        runs[name] = json.loads((tmp_path / name / "metrics.json").read_text())
    assert runs["a"] == runs["b"]
    assert runs["a"]["final"] != runs["c"]["final"]


@pytest.mark.parametrize("method, train_clients, eval_client", [("local", [0], 0), ("pooled", [0, 1, 2, 3], 0), ("remote", [1, 2, 3], 1)])
def test_centralised_methods_with_k_clients(synthetic_file, tmp_path, monkeypatch, method, train_clients, eval_client):
    seen = {}
    original = experiment.ClientsDataModule

    def spy(dataset, batch_size, partitioner, seed, train_clients, *args):
        seen["train_clients"] = train_clients
        return original(dataset, batch_size, partitioner, seed, train_clients, *args)

    monkeypatch.setattr(experiment, "ClientsDataModule", spy)
    payload = train(_cfg(synthetic_file, tmp_path, "partition=iid", "partition.num_clients=4", f"method={method}", "fed.rounds=1"))
    assert seen["train_clients"] == train_clients
    assert payload["eval_client"] == eval_client
    assert payload["label"] == {"local": "DAGMM C0", "pooled": "DAGMM pooled", "remote": "DAGMM C1&C2&C3"}[method]


def _interrupt_and_resume(synthetic_file, tmp_path, monkeypatch, overrides, die_after: int, checkpointed: bool = True) -> dict:
    """Run ``overrides`` in tmp_path/interrupted, killed at round ``die_after``'s checkpoint
    (after writing it, or with ``checkpointed=False`` before), then resume it; the resumed payload."""
    run_dir = tmp_path / "interrupted"
    cfg = _cfg(synthetic_file, run_dir, *overrides)
    (run_dir / ".hydra").mkdir(parents=True)
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")
    original = experiment.save_checkpoint

    def die(path, checkpoint):
        if checkpoint.round == die_after and not checkpointed:
            raise KeyboardInterrupt
        original(path, checkpoint)
        if checkpoint.round == die_after:
            raise KeyboardInterrupt

    monkeypatch.setattr(experiment, "save_checkpoint", die)
    with pytest.raises(KeyboardInterrupt):
        train(cfg)
    monkeypatch.setattr(experiment, "save_checkpoint", original)
    assert not (run_dir / "metrics.json").exists()
    return train(_cfg(synthetic_file, tmp_path / "unused", f"fed.resume={run_dir}"))


@pytest.mark.parametrize(
    "setting",
    [("strategy=fedadam",), ("strategy=fedper",), ("strategy=fedadam", "privacy=dp", "privacy.delta=0.1", "eval.every_n_rounds=2", "privacy.insecure_reproducible_noise=true"),
     ("fed.keep_optimizer_state=true", "model.lr_schedule=cosine")],
    ids=["fedadam", "fedper", "fedadam-dp", "kept-optimizer-cosine"],
)
def test_an_interrupted_run_resumes_exactly_with_server_and_client_state(synthetic_file, tmp_path, monkeypatch, setting):
    """FedAdam's moments live on the server, FedPer's personal layers and kept optimiser states
    on the clients: all must come back from the checkpoint for the resumed run to match an
    uninterrupted one. With privacy.insecure_reproducible_noise the DP noise of a round depends
    on (seed, round) alone, so a resumed DP run adds the same (by default it draws fresh noise:
    test_a_resumed_private_run_draws_fresh_noise)."""
    overrides = ("partition=iid", "partition.num_clients=3", *setting, "fed.rounds=4")
    train(_cfg(synthetic_file, tmp_path / "reference", *overrides))
    _interrupt_and_resume(synthetic_file, tmp_path, monkeypatch, overrides, die_after=2)
    run_dir = tmp_path / "interrupted"
    assert (run_dir / "metrics.json").read_text() == (tmp_path / "reference" / "metrics.json").read_text()


def test_under_dp_what_leaves_each_client_is_clipped_and_the_epsilon_is_logged(synthetic_file, tmp_path, monkeypatch):
    """The updates and statistics the server receives, seen where it noises them."""
    from fdagmm.federation.privacy import ClientLevelDP

    seen = {"updates": [], "stats": []}
    from fdagmm.federation.client import Client

    noised_mean_update, shared_gmm_stats = ClientLevelDP.noised_mean_update, Client.shared_gmm_stats

    def spy_updates(self, global_state, updates, round_idx, keys):
        for u in updates:
            seen["updates"].append(float(sum((u.state[k].double() - global_state[k].double()).square().sum() for k in u.state).sqrt()))
        return noised_mean_update(self, global_state, updates, round_idx, keys)

    def spy_stats(self, net, round_idx):
        s = shared_gmm_stats(self, net, round_idx)
        seen["stats"].append((s.n, float(torch.cat([s.s0, s.s1.flatten(), s.s2.flatten()]).norm())))
        return s

    monkeypatch.setattr(ClientLevelDP, "noised_mean_update", spy_updates)
    monkeypatch.setattr(Client, "shared_gmm_stats", spy_stats)
    payload = train(_cfg(synthetic_file, tmp_path, "partition=iid", "partition.num_clients=4", "fed.rounds=2", "privacy=dp",
                         "privacy.delta=0.1", "privacy.clip_norm=1e-3", "privacy.stats_clip_norm=0.1"))  # fmt: skip
    assert len(seen["updates"]) == 8 and max(seen["updates"]) <= 1e-3 * (1 + 1e-5)
    assert max(seen["updates"]) > 0.9e-3  # the bound binds: the updates were larger
    assert len(seen["stats"]) >= 8 and all(n == 1 and norm <= 0.1 * (1 + 1e-9) for n, norm in seen["stats"])
    epsilons = [h["privacy/epsilon"] for h in payload["history"]]
    assert epsilons[0] < epsilons[1] == payload["privacy"]["epsilon"]
    assert payload["privacy"]["noise_multiplier"] == 1.0 and payload["privacy"]["sample_rate"] == 1.0
    # Each round's step: the mean of four updates clipped to 1e-3, and noise of std z C = 1e-3
    # per weight over the four clients, whose norm is about z C sqrt(d) / 4 for d weights.
    d = sum(v.numel() for v in torch.load(tmp_path / "model.pt", weights_only=True)["net_state"].values())
    for h in payload["history"]:
        assert 0.9e-3 / 4 < h["privacy/update_norm"] <= 1e-3 * (1 + 1e-5)
        assert h["privacy/noise_norm"] == pytest.approx(1e-3 * d**0.5 / 4, rel=0.05)
        assert h["privacy/update_to_noise"] == pytest.approx(h["privacy/update_norm"] / h["privacy/noise_norm"])


@pytest.mark.parametrize(
    "method, label, n_fit",
    [("iforest_local", "Isolation Forest C0", "client0"), ("iforest_pooled", "Isolation Forest C0&C1", "all"),
     ("pca_local", "PCA reconstruction C0", "client0"), ("pca_pooled", "PCA reconstruction C0&C1", "all")],
)  # fmt: skip
def test_a_baseline_fits_on_its_clients_and_is_measured_like_dagmm(synthetic_file, tmp_path, monkeypatch, method, label, n_fit):
    fitted, measured = [], []
    original_build, original_metrics = experiment.build, experiment.metrics_by_threshold_ref

    def spy_build(node, **kwargs):
        built = original_build(node, **kwargs)
        if hasattr(built, "fit"):
            fit = built.fit
            built.fit = lambda x: (fitted.append(len(x)), fit(x))[1]
        return built

    def spy_metrics(*args):
        measured.append(args)
        return original_metrics(*args)

    monkeypatch.setattr(experiment, "build", spy_build)
    monkeypatch.setattr(experiment, "metrics_by_threshold_ref", spy_metrics)
    payload = train(_cfg(synthetic_file, tmp_path, "scenario=s4", f"method={method}", "eval.compare_threshold_refs=true"))
    counts = payload["partition"]
    assert fitted == [counts["client0"]["n_train"] + (counts["client1"]["n_train"] if n_fit == "all" else 0)]
    assert payload["label"] == label and payload["history"] == []
    assert set(payload["final_by_threshold_ref"]) == {"own", "pooled"}
    assert payload["final"] == payload["per_client"]["client0"]
    # The evaluated client's measurement: its test scores against its own train + test scores,
    # and for the pooled reference client 1's training scores too, recomputed from the spied scores.
    is_anomaly, test_score, train_score, others, ratio, refs = measured[0]
    assert len(test_score) == counts["client0"]["n_test"] and len(others[0]) == counts["client1"]["n_train"]
    assert is_anomaly.sum() == counts["client0"]["n_test_anomalies"] and refs == ("own", "pooled")
    threshold = np.quantile(np.concatenate([train_score, test_score]), 1 - ratio)
    assert payload["final"]["test/threshold"] == pytest.approx(threshold)
    assert payload["final"]["test/f1"] == pytest.approx(
        metrics_by_threshold_ref(is_anomaly, test_score, train_score, others, ratio, ("own",))["own"]["test/f1"]
    )
    assert json.loads((tmp_path / "metrics.json").read_text())["final"] == payload["final"]


def test_a_baseline_run_is_reproducible_per_seed(synthetic_file, tmp_path):
    finals = [train(_cfg(synthetic_file, tmp_path / str(i), "scenario=s4", "method=iforest_local", f"seed={s}"))["final"] for i, s in enumerate((0, 0, 1))]
    assert finals[0] == finals[1] and finals[0] != finals[2]


def test_zero_rounds_is_the_untrained_network(synthetic_file, tmp_path):
    payload = train(_cfg(synthetic_file, tmp_path, "scenario=s4", "method=local", "fed.rounds=0"))
    assert payload["history"] == [] and np.isfinite(payload["final"]["test/auroc"])


@pytest.mark.parametrize(
    "overrides, message",
    [(("method=fdagmm", "fed.rounds=0"), "fed.rounds must be >= 1 for a federation"),
     (("method=fdagmm", "+method.detector={_target_: fdagmm.detection.baselines.PCAReconstructionScorer}"), "classical detectors train centralised"),
     (("method=iforest_local", "method.detector.n_estimators=0"), "method.detector.n_estimators must be >= 1"),
     (("data.scaling_records=test",), "data.scaling_records must be train or all"),
     (("data.scaling_records=all",), "data.scaling=schema_log has fixed ones: add data.scaling=federated_minmax"),
     (("fed.backend=flower", "data.scaling=federated_minmax", "data.scaling_records=all"), "with fed.backend=flower use data.scaling_records=train")],
)  # fmt: skip
def test_impossible_settings_are_refused_in_one_line(synthetic_file, tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        train(_cfg(synthetic_file, tmp_path, "scenario=s4", *overrides))


@pytest.mark.parametrize("method", ["fdagmm", "pooled"])
def test_a_cosine_schedule_runs_over_the_federations_epochs(synthetic_file, tmp_path, monkeypatch, method):
    """Each federated round's fits start at that round's place in the schedule; the centralised
    fit runs the whole schedule; both over fed.rounds x fed.local_epochs epochs."""
    from fdagmm.models.lit_module import DAGMMLitModule

    seen = []
    original = DAGMMLitModule.configure_optimizers

    def spy(module):
        seen.append((module.first_epoch, module.schedule_epochs))
        return original(module)

    monkeypatch.setattr(DAGMMLitModule, "configure_optimizers", spy)
    payload = train(_cfg(synthetic_file, tmp_path, f"method={method}", "model.lr_schedule=cosine", "fed.rounds=3", "fed.local_epochs=2"))
    assert np.isfinite(payload["final"]["test/auroc"])
    expected = [(first, 6) for first in (0, 2, 4) for _ in range(2)] if method == "fdagmm" else [(0, 6)]
    assert seen == expected


def test_an_unknown_lr_schedule_is_a_config_error(synthetic_file, tmp_path):
    with pytest.raises(ConfigError, match="model.lr_schedule must be one of constant, cosine, got 'step'"):
        train(_cfg(synthetic_file, tmp_path, "model.lr_schedule=step"))


DP_RUN = ("partition=iid", "partition.num_clients=4", "fed.clients_per_round=2", "fed.rounds=2", "privacy=dp", "privacy.delta=0.1")
RECORD_DP_RUN = ("partition=iid", "partition.num_clients=2", "fed.rounds=2", "privacy=record_dp")


@pytest.mark.parametrize("setting", [DP_RUN, RECORD_DP_RUN], ids=["client-level", "record-level"])
def test_dp_noise_and_sampling_are_secret_by_default_and_the_same_only_when_named_insecure(synthetic_file, tmp_path, caplog, setting):
    """Two runs of one config and seed: different noise by default (the same seed would let any
    client regenerate it), the same noise and clients (or batches) under the loudly named
    option, which the log, metrics.json and TensorBoard's hparams mark as not private."""
    runs = {}
    for name, extra in [("a", ()), ("b", ()), ("c", ("privacy.insecure_reproducible_noise=true",)),
                        ("d", ("privacy.insecure_reproducible_noise=true",))]:  # fmt: skip
        with caplog.at_level("WARNING", logger="fdagmm"):
            caplog.clear()
            runs[name] = train(_cfg(synthetic_file, tmp_path / name, *setting, *extra))
            runs[name]["warned"] = "NOT PRIVATE" in caplog.text
        runs[name]["weights"] = torch.load(tmp_path / name / "model.pt", weights_only=True)["net_state"]
    secret, insecure = (runs["a"], runs["b"]), (runs["c"], runs["d"])
    assert any(not torch.equal(secret[0]["weights"][k], secret[1]["weights"][k]) for k in secret[0]["weights"])
    assert all(torch.equal(insecure[0]["weights"][k], insecure[1]["weights"][k]) for k in insecure[0]["weights"])
    assert insecure[0]["history"] == insecure[1]["history"]
    assert [r["privacy"]["noise"] for r in (*secret, *insecure)] == ["secret", "secret", *["reproducible from the run's seed: NOT PRIVATE"] * 2]
    assert [r["warned"] for r in (*secret, *insecure)] == [False, False, True, True]
    from fdagmm.config import build
    from fdagmm.federation.components import build_components  # its hparams: what TensorBoard's HParams tab shows

    cfg = _cfg(synthetic_file, tmp_path / "c", *setting, "privacy.insecure_reproducible_noise=true")
    assert build_components(cfg, build(cfg.partition)).hparams()["privacy/insecure_reproducible_noise"] is True


def test_under_record_dp_round_t_trains_under_the_mixture_released_from_theta_t_minus_2(synthetic_file, tmp_path, monkeypatch):
    """The pipeline both backends run: every client releases its noised statistics under each
    theta_s (s = 0..R) once; round 1 trains without a mixture, round t under the sum released
    for theta_{t-2}; no training loss leaves a client; each round's epsilon is the accountant's
    largest over the clients."""
    from fdagmm.federation.client import Client
    from fdagmm.federation.privacy import epsilon
    from fdagmm.federation.record_privacy import RecordLevelDP
    from fdagmm.models.dagmm import mixture_from_stats

    releases, released, trained_under, sent = [], {}, {}, []
    noised_stats, release_stats, update = RecordLevelDP.noised_stats, RecordLevelDP.release_sum, Client.update

    def spy_noised(self, net, x, client_id, round_idx):
        releases.append((round_idx, client_id))
        return noised_stats(self, net, x, client_id, round_idx)

    def spy_release(self, summed, n_clients, round_idx):
        released[round_idx] = release_stats(self, summed, n_clients, round_idx)
        return released[round_idx]

    def spy_update(self, global_state, round_idx, frozen_mixture=None):
        trained_under[(round_idx, self.client_id)] = frozen_mixture
        result = update(self, global_state, round_idx, frozen_mixture)
        sent.append(result)
        return result

    monkeypatch.setattr(RecordLevelDP, "noised_stats", spy_noised)
    monkeypatch.setattr(RecordLevelDP, "release_sum", spy_release)
    monkeypatch.setattr(Client, "update", spy_update)
    payload = train(_cfg(synthetic_file, tmp_path, "partition=iid", "partition.num_clients=2", "fed.rounds=3", "privacy=record_dp",
                         "eval.every_n_rounds=2"))  # fmt: skip
    assert sorted(releases) == [(s, k) for s in range(4) for k in (0, 1)]  # each theta_s once per client, evaluated or not
    assert trained_under[(1, 0)] is None and trained_under[(1, 1)] is None
    for t in (2, 3):
        expected = mixture_from_stats(released[t - 2])
        for k in (0, 1):
            assert torch.equal(trained_under[(t, k)].mu, expected.mu) and torch.equal(trained_under[(t, k)].sigma, expected.sigma)
    assert all(np.isnan(u.train_loss) for u in sent)
    assert not any(key.startswith("train/") for h in payload["history"] for key in h)
    sizes = {k: payload["partition"][f"client{k}"]["n_train"] for k in (0, 1)}
    steps = {k: -(-n // 256) for k, n in sizes.items()}  # data.batch_size=256, one local epoch
    for h in payload["history"]:
        t = h["round"]
        by_client = {k: epsilon(1.0, 256 / n, t * steps[k], t + 1, 1e-6, 50.0) for k, n in sizes.items()}
        assert {k: h[f"privacy/epsilon/client{k}"] for k in sizes} == by_client and h["privacy/epsilon"] == max(by_client.values())
    assert payload["privacy"]["mechanism"] == "record-level dp-sgd"
    assert payload["privacy"]["epsilon"] == max(payload["privacy"]["epsilon_by_client"].values()) == payload["history"][-1]["privacy/epsilon"]


def test_a_resumed_private_run_draws_fresh_noise(synthetic_file, tmp_path, monkeypatch):
    """The rounds a resumed run redoes are noised anew: not the interrupted run's noise replayed
    (which its seed would give), so its result differs from an uninterrupted run's."""
    from fdagmm.federation.privacy import ClientLevelDP

    seeds = []
    original = ClientLevelDP.noise_generator

    def spy(self, round_idx, stream, client_id=0):
        generator = original(self, round_idx, stream, client_id)
        seeds.append(generator.initial_seed())
        return generator

    monkeypatch.setattr(ClientLevelDP, "noise_generator", spy)
    overrides = (*DP_RUN, "fed.rounds=3")
    reference = train(_cfg(synthetic_file, tmp_path / "reference", *overrides))
    resumed = _interrupt_and_resume(synthetic_file, tmp_path, monkeypatch, overrides, die_after=1)
    assert len(seeds) > 6 and len(seeds) == len(set(seeds))  # no noise generator seeded twice, in any of the runs
    assert resumed["final"] != reference["final"]


def test_the_accountant_counts_every_release_a_crash_left_behind(synthetic_file, tmp_path, monkeypatch):
    """Each release is logged before its noise is drawn. A run that dies after round 2's noised
    update, before its checkpoint, redoes round 2 on resume: that round's update was released
    twice and the epsilon counts both; an uninterrupted run releases each round's update and
    each evaluated round's statistics once."""
    from fdagmm.federation.privacy import RELEASES_FILE, epsilon

    overrides = (*DP_RUN, "fed.rounds=3", "eval.every_n_rounds=3")
    reference = train(_cfg(synthetic_file, tmp_path / "reference", *overrides))
    logged = [json.loads(line) for line in (tmp_path / "reference" / RELEASES_FILE).read_text().splitlines()]
    assert logged == [{"round": 1, "kind": "update"}, {"round": 2, "kind": "update"}, {"round": 3, "kind": "update"}, {"round": 3, "kind": "stats"}]

    resumed = _interrupt_and_resume(synthetic_file, tmp_path, monkeypatch, overrides, die_after=2, checkpointed=False)
    rounds = [json.loads(line)["round"] for line in (tmp_path / "interrupted" / RELEASES_FILE).read_text().splitlines()]
    assert rounds == [1, 2, 2, 3, 3]  # round 2's update twice, then round 3's update and statistics
    q = 2 / 4
    assert reference["privacy"]["epsilon"] == pytest.approx(epsilon(1.0, q, 3, 1, 0.1))
    assert resumed["privacy"]["epsilon"] == pytest.approx(epsilon(1.0, q, 4, 1, 0.1))
    assert resumed["privacy"]["epsilon"] > reference["privacy"]["epsilon"]
    assert resumed["history"][-1]["privacy/epsilon"] == resumed["privacy"]["epsilon"]


def test_a_private_round_that_samples_no_client_releases_the_noise_alone(synthetic_file, tmp_path):
    """Poisson sampling can leave a round without a trainer; its update is the noise alone and
    the run goes on (reproducible noise here, so that the empty round is known in advance)."""
    from fdagmm.federation.rounds import sample_clients

    seed = next(s for s in range(100) if sample_clients([0, 1, 2, 3], 1, s, 1, private=True) == [])
    payload = train(_cfg(synthetic_file, tmp_path, *DP_RUN, "fed.clients_per_round=1", f"seed={seed}", "privacy.insecure_reproducible_noise=true"))
    assert payload["history"][0]["sampled_clients"] == []
    assert not any(k.startswith("train/loss/") for k in payload["history"][0])
    assert len(payload["history"]) == 2 and all(np.isfinite(v) for v in payload["final"].values())


@pytest.mark.parametrize("keep", [False, True])
def test_with_kept_optimiser_states_each_clients_later_rounds_start_from_its_own(synthetic_file, tmp_path, monkeypatch, keep):
    from fdagmm.models.lit_module import DAGMMLitModule

    started_from = []
    original = DAGMMLitModule.configure_optimizers

    def spy(module):
        started_from.append(module.initial_optimizer_state is not None)
        return original(module)

    monkeypatch.setattr(DAGMMLitModule, "configure_optimizers", spy)
    train(_cfg(synthetic_file, tmp_path, "fed.rounds=3", f"fed.keep_optimizer_state={keep}"))
    assert started_from == [False, False] + [keep] * 4  # two clients: fresh in round 1, then their own state if kept


@pytest.mark.parametrize("overrides", [("strategy=fedadam", "fed.rounds=2"), DP_RUN, RECORD_DP_RUN], ids=["plain", "dp", "record-dp"])
def test_a_run_builds_its_partitioner_strategy_and_privacy_mechanism_once(synthetic_file, tmp_path, monkeypatch, overrides):
    """The composition root builds what the config chooses once and passes it down."""
    from fdagmm import config
    from fdagmm.federation import components

    built, mechanisms = [], []
    instantiate, mechanism = config.instantiate, components.ClientLevelDP
    monkeypatch.setattr(config, "instantiate", lambda node, **kw: built.append(node.get("_target_")) or instantiate(node, **kw))
    monkeypatch.setattr(components, "ClientLevelDP", lambda **kw: mechanisms.append(kw) or mechanism(**kw))
    cfg = _cfg(synthetic_file, tmp_path, *overrides)
    payload = train(cfg)
    assert built.count(cfg.partition._target_) == 1 and built.count(cfg.strategy._target_) == 1
    assert len(mechanisms) == (1 if cfg.privacy.name == "dp" else 0)
    assert len(payload["history"]) == cfg.fed.rounds


@pytest.mark.flower
@pytest.mark.skipif(importlib.util.find_spec("flwr") is None and os.environ.get("FDAGMM_REQUIRE_FLOWER") != "1", reason="Flower is not installed")
@pytest.mark.parametrize("strategy", ["fedavg", "fedprox", "fedper"])
def test_secure_aggregation_gives_the_plain_federation_within_rounding(synthetic_file, tmp_path, strategy):
    """The same run with and without secure aggregation: weights that differ by the fixed
    point's rounding (2^-25 per client and entry), so the same detection metrics to 1e-6 and
    the same threshold (an energy, which the mixture's inverse covariance amplifies) to 1e-4;
    no training loss in the secure run's history, whose server saw sums only."""
    overrides = ("partition=iid", "partition.num_clients=3", "fed.rounds=2", f"strategy={strategy}")
    plain = train(_cfg(synthetic_file, tmp_path / "plain", *overrides))
    secure = train(_cfg(synthetic_file, tmp_path / "secure", *overrides, "privacy.secure_aggregation=true"))
    threshold = "test/threshold"
    assert secure["final"][threshold] == pytest.approx(plain["final"][threshold], rel=1e-4)
    assert {k: v for k, v in secure["final"].items() if k != threshold} == pytest.approx({k: v for k, v in plain["final"].items() if k != threshold}, rel=1e-6)
    weights = [torch.load(d / "model.pt", weights_only=True)["net_state"] for d in (tmp_path / "plain", tmp_path / "secure")]
    assert 0 < max(float((weights[0][k] - weights[1][k]).abs().max()) for k in weights[0]) < 1e-6
    assert not any(k.startswith("train/loss") for h in secure["history"] for k in h)
    assert any(k.startswith("train/loss") for h in plain["history"] for k in h)
    assert secure["privacy"] == {"secure_aggregation": True} and "privacy" not in plain
