"""What crosses a client's boundary, in both backends: exactly these items, of these shapes,
and no value of a record (no per-feature minimum or maximum of a client's training records).

The check of values is shown to see a leak: with data.scaling=federated_minmax, the study's
scaling, it names the min/max statistics every client sends. The fitted scalings send sums or
histograms, of the listed shapes.
"""

import dataclasses
import importlib.util
import json

import numpy as np
import pytest
import torch
from hydra import compose, initialize

from fdagmm.config import build
from fdagmm.data.datamodule import client_records
from fdagmm.data.features import HISTOGRAM_BINS, FeatureEncoder, Scaling, ScalingStats
from helpers.kdd import KDD99
from fdagmm.federation.client import Client, ClientUpdate
from fdagmm.federation.components import build_local_training
from fdagmm.models.dagmm import GMMStats
from fdagmm.run.experiment import train
from fdagmm.data.dataset import build_dataset

N_NUMERIC = len(KDD99.numeric_features)
METRICS = {"test/precision", "test/recall", "test/f1", "test/auroc", "test/avg_precision", "test/threshold", "test/auroc_reconstruction"}


def _cfg(data_path, output_dir, *overrides):
    with initialize(version_base="1.3", config_path="../../conf"):
        return compose(
            config_name="config",
            overrides=[f"data.train_path={data_path}", "data.cache_dir=null", f"paths.output_dir={output_dir}", "scenario=s4",
                       "fed.rounds=1", "trainer.accelerator=cpu", *overrides],
        )  # fmt: skip


def record_extremes(cfg) -> set[float]:
    """Every training client's per-feature minima and maxima: values of its real records. 0 and
    1 are left out: every rate and indicator takes them by definition, so they say nothing."""
    records = client_records(build_dataset(cfg.data), build(cfg.partition), cfg.seed)
    extremes = set()
    for r in records:
        values = r.train[KDD99.numeric_features].to_numpy(dtype=np.float64)
        extremes |= {*values.min(axis=0), *values.max(axis=0)}
    return extremes - {0.0, 1.0}


def record_valued(sent: dict[str, object], extremes: set[float]) -> list[str]:
    """The names of the items sent that hold a value of ``extremes``."""
    def values(obj) -> np.ndarray:
        if isinstance(obj, torch.Tensor):
            return obj.detach().double().numpy().ravel()
        return np.asarray(obj, dtype=np.float64).ravel()

    return sorted(name for name, obj in sent.items() if np.isin(values(obj), list(extremes)).any())


def sent_in_process(cfg, monkeypatch) -> tuple[dict[str, object], dict[str, int]]:
    """Everything a client hands the server in process: the return values of ``Client``'s
    methods and the scaling statistics the datamodule asks each training client for,
    flattened to ``<method>#<call>/<item>`` -> tensor or number; and the calls per method."""
    sent: dict[str, object] = {}
    calls: dict[str, int] = {}

    def spy(name, original):
        def wrapped(*args, **kwargs):
            nonlocal sent
            result = original(*args, **kwargs)
            prefix = f"{name}#{calls.setdefault(name, 0)}"
            calls[name] += 1
            if isinstance(result, ClientUpdate):
                sent |= {f"{prefix}/state/{k}": v for k, v in result.state.items()}
                sent |= {f"{prefix}/n_samples": result.n_samples, f"{prefix}/train_loss": result.train_loss}
            elif isinstance(result, GMMStats):
                sent |= {f"{prefix}/{k}": getattr(result, k) for k in ("s0", "s1", "s2", "n")}
            elif isinstance(result, ScalingStats):
                sent |= {f"{prefix}/{f.name}": getattr(result, f.name) for f in dataclasses.fields(result) if getattr(result, f.name) is not None}
            else:  # evaluate: threshold reference -> metric -> value
                sent |= {f"{prefix}/{ref}/{k}": v for ref, metrics in result.items() for k, v in metrics.items()}
            return result

        return wrapped

    for name in ("update", "gmm_stats", "shared_gmm_stats", "train_energies", "evaluate"):
        monkeypatch.setattr(Client, name, spy(f"Client.{name}", getattr(Client, name)))
    monkeypatch.setattr(ScalingStats, "of", spy("ScalingStats.of", ScalingStats.of))
    train(cfg)
    return sent, calls


def test_in_process_only_weights_statistics_and_metrics_leave_a_client(kdd_slice, tmp_path, monkeypatch):
    cfg = _cfg(kdd_slice, tmp_path)  # the default scaling
    sent, calls = sent_in_process(cfg, monkeypatch)
    assert set(calls) == {"Client.update", "Client.gmm_stats", "Client.evaluate"}  # no scaling statistics, no energies
    net = build_local_training(cfg, FeatureEncoder(Scaling.of_schema(KDD99.schema), KDD99.schema).dim).build_module().net
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    k, d = cfg.model.net.n_components, cfg.model.net.latent_dim + 2  # the code, plus the two reconstruction errors
    assert calls["Client.update"] == 2  # 1 round, both clients train
    expected = {}
    for call in range(calls["Client.update"]):
        expected |= {f"Client.update#{call}/state/{name}": shape for name, shape in shapes.items()}
        expected |= {f"Client.update#{call}/n_samples": (), f"Client.update#{call}/train_loss": ()}
    for call in range(calls["Client.gmm_stats"]):
        expected |= {f"Client.gmm_stats#{call}/s0": (k,), f"Client.gmm_stats#{call}/s1": (k, d),
                     f"Client.gmm_stats#{call}/s2": (k, d, d), f"Client.gmm_stats#{call}/n": ()}  # fmt: skip
    for call in range(calls["Client.evaluate"]):
        expected |= {f"Client.evaluate#{call}/own/{m}": () for m in METRICS}
    assert {name: tuple(np.shape(v)) for name, v in sent.items()} == expected
    assert record_valued(sent, record_extremes(cfg)) == []


def test_under_record_dp_a_client_sends_dp_sgd_weights_noised_statistics_and_metrics(kdd_slice, tmp_path, monkeypatch):
    """Per round its weights and record count (no training loss: NaN in process, absent over
    Flower), and its statistics under each of theta_0..theta_R, noised: their component
    weights no longer sum to its record count."""
    cfg = _cfg(kdd_slice, tmp_path, "privacy=record_dp", "fed.rounds=2")
    sent, calls = sent_in_process(cfg, monkeypatch)
    # 2 rounds x 2 clients; theta_0..2 x 2 clients; rounds 1 and 2, then the final test and each client's
    assert calls == {"Client.update": 4, "Client.shared_gmm_stats": 6, "Client.evaluate": 5}
    assert all(np.isnan(v) for name, v in sent.items() if name.endswith("/train_loss"))
    for call in range(6):
        s0, n = sent[f"Client.shared_gmm_stats#{call}/s0"], sent[f"Client.shared_gmm_stats#{call}/n"]
        assert abs(float(s0.sum()) - n) > 1e-6 * n  # noise of std 229 on each of the K weights
    assert record_valued(sent, record_extremes(cfg)) == []


def test_the_check_sees_the_min_max_of_federated_minmax(kdd_slice, tmp_path, monkeypatch):
    cfg = _cfg(kdd_slice, tmp_path, "data.scaling=federated_minmax")
    sent, _ = sent_in_process(cfg, monkeypatch)
    leaks = record_valued(sent, record_extremes(cfg))
    # Each client's maxima (its minima are mostly 0, which says nothing), and nothing else.
    assert {"ScalingStats.of#0/maximum", "ScalingStats.of#1/maximum"} <= set(leaks)
    assert all(name.startswith("ScalingStats.of#") for name in leaks), leaks


@pytest.mark.parametrize(
    ("scaling", "items"),
    [("federated_standard", {"total": (N_NUMERIC,), "total_squares": (N_NUMERIC,), "n_records": ()}),
     ("federated_quantile", {"histogram": (N_NUMERIC, HISTOGRAM_BINS), "n_records": ()})],
)  # fmt: skip
def test_fitted_scalings_send_sums_or_histograms_and_no_record_value(kdd_slice, tmp_path, monkeypatch, scaling, items):
    cfg = _cfg(kdd_slice, tmp_path, f"data.scaling={scaling}")
    sent, calls = sent_in_process(cfg, monkeypatch)
    assert calls["ScalingStats.of"] == 2  # once per training client
    stats_sent = {name: tuple(np.shape(v)) for name, v in sent.items() if name.startswith("ScalingStats.of#")}
    assert stats_sent == {f"ScalingStats.of#{call}/{item}": shape for call in range(2) for item, shape in items.items()}
    if scaling == "federated_standard":  # a histogram's counts are small integers, which some feature's extremes are too
        assert record_valued(sent, record_extremes(cfg)) == []


@pytest.mark.flower
@pytest.mark.skipif(importlib.util.find_spec("flwr") is None, reason="Flower is not installed")
@pytest.mark.parametrize(
    "scaling, privacy", [("schema_log", "none"), ("federated_minmax", "none"), ("federated_standard", "none"), ("schema_log", "record_dp")]
)
def test_flower_replies_carry_only_weights_statistics_and_metrics(kdd_slice, tmp_path, monkeypatch, scaling, privacy):
    """The ClientApp's real handlers, called with the messages the ServerApp sends: describe,
    a round that trains and reports statistics, a round that tests. Under record-level DP the
    training loss stays home."""
    from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, RecordDict
    from flwr.supercore.task_identity import TaskIdentity

    from fdagmm.data.features import federation_scaling
    from fdagmm.federation.flower import client_app, client_round
    from fdagmm.federation.flower.partitions import write_partitions
    from fdagmm.federation.components import build_components
    from fdagmm.federation.flower.records import OUTPUT_DIR_KEY, config_to_json, gmm_stats_from_record, gmm_stats_record, scaling_record, scaling_stats_from_record

    for key, value in {"_run_id": 1, "_task_id": 1, "_node_id": 0}.items():  # what a SuperLink would set
        monkeypatch.setattr(TaskIdentity, key, value)
    cfg = _cfg(kdd_slice, tmp_path, f"data.scaling={scaling}", f"privacy={privacy}")
    paths, _ = write_partitions(build_dataset(cfg.data), build(cfg.partition), cfg.seed, tmp_path / "partitions")
    context = Context(
        run_id=1, node_id=1, node_config={"data-path": str(paths[0]), "output-dir": str(tmp_path / "client0")},
        state=RecordDict(), run_config={"config": config_to_json(cfg), OUTPUT_DIR_KEY: str(tmp_path)},
    )  # fmt: skip

    def reply(handler, content: dict, message_type: str) -> RecordDict:
        msg = Message(RecordDict(content), dst_node_id=1, message_type=message_type)
        answer = handler(msg, context)
        assert not answer.has_error()
        return answer.content

    described = reply(client_app.describe, {"config": ConfigRecord({"scaling": scaling})}, f"{MessageType.QUERY}.describe")
    stats = [scaling_stats_from_record(described["scaling-stats"])] if "scaling-stats" in described else []
    scaling_sent = scaling_record(federation_scaling(scaling, KDD99.schema, lambda: stats))
    theta = build_local_training(cfg, FeatureEncoder(federation_scaling(scaling, KDD99.schema, lambda: stats), KDD99.schema).dim).build_module().net.state_dict()

    def round_config(t, train_, stats_, test_round):
        return ConfigRecord({"server-round": t, "train": train_, "stats": stats_, "test-round": test_round, "final": False,
                             "own-mixture": False, "keep-personal": False})  # fmt: skip

    handle = lambda msg, ctx: client_round.handle(msg, ctx, {})  # noqa: E731
    trained = reply(handle, {"config": round_config(1, True, True, 0), "scaling": scaling_sent, "arrays": ArrayRecord(theta)},
                    MessageType.TRAIN)  # fmt: skip
    # What the server sends back: the federation's statistics (under record-level DP the noised sum made valid).
    summed = gmm_stats_record(build_components(cfg, build(cfg.partition)).stats_release([gmm_stats_from_record(trained["gmm-stats"])], 0))
    tested = reply(handle, {"config": round_config(2, False, False, 1), "scaling": scaling_sent,
                            "test-arrays": ArrayRecord(theta), "gmm-stats": summed}, MessageType.EVALUATE)  # fmt: skip

    k, d = cfg.model.net.n_components, cfg.model.net.latent_dim + 2
    assert set(described) == ({"metrics", "schema"} if scaling == "schema_log" else {"metrics", "schema", "scaling-stats"})
    if scaling != "schema_log":
        fitted = {"federated_minmax": {"minimum", "maximum", "n_records"}, "federated_standard": {"total", "total_squares", "n_records"}}
        assert set(described["scaling-stats"].to_torch_state_dict()) == fitted[scaling]
    # The schema is the data set's declaration (columns, kinds, declared vocabularies), no record's values.
    assert json.loads(str(described["schema"]["schema"])) == KDD99.schema.to_dict()
    assert set(described["metrics"]) == {"client-id", "n_train", "n_test", "n_test_anomalies"}
    assert set(trained) == {"metrics", "arrays", "gmm-stats", "timing"}
    assert set(trained["metrics"]) == {"client-id", "num-examples"} | ({"train-loss"} if privacy == "none" else set())
    assert {n: tuple(v.shape) for n, v in trained["arrays"].to_torch_state_dict().items()} == {n: tuple(v.shape) for n, v in theta.items()}
    assert {n: tuple(v.shape) for n, v in trained["gmm-stats"].to_torch_state_dict().items()} == {
        "s0": (k,), "s1": (k, d), "s2": (k, d, d), "n": ()
    }  # fmt: skip
    assert set(tested) == {"metrics", "test-metrics", "timing"} and set(tested["test-metrics"]) == METRICS

    sent: dict[str, object] = {}
    for message, content in {"describe": described, "train": trained, "test": tested}.items():
        for key, record in content.items():
            if key in ("timing", "schema"):  # when each part of the handler ran; the declared schema (checked above)
                continue
            items = record.to_torch_state_dict().items() if isinstance(record, ArrayRecord) else record.items()
            sent |= {f"{message}/{key}/{name}": value for name, value in items}
    leaks = record_valued(sent, record_extremes(cfg))
    if scaling == "federated_minmax":  # the check sees the study's scaling send values of records
        assert "describe/scaling-stats/maximum" in leaks and all(n.startswith("describe/scaling-stats/") for n in leaks), leaks
    else:
        assert leaks == []
