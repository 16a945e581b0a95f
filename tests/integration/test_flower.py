"""The Flower backend: its records, partition files, and real SuperLink + SuperNode processes.

Skipped when Flower is not installed, unless FDAGMM_REQUIRE_FLOWER=1 (set by CI, which
installs the flower extra), where its absence is an error.
"""

import importlib.util
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

if importlib.util.find_spec("flwr") is None and os.environ.get("FDAGMM_REQUIRE_FLOWER") != "1":
    pytest.skip('Flower is not installed: pip install -e ".[flower]"', allow_module_level=True)

from hydra import compose, initialize  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

from fdagmm.config import build, validate_config  # noqa: E402
from fdagmm.models.dagmm import gmm_sufficient_stats  # noqa: E402
from fdagmm.data.datamodule import ClientsDataModule, encode_client  # noqa: E402
from fdagmm.detection.detector import Detector  # noqa: E402
from fdagmm.errors import ConfigError  # noqa: E402
from fdagmm.data.features import FeatureEncoder, ScalingStats, federation_scaling  # noqa: E402
from fdagmm.federation.flower.launcher import LocalFederation, flower_processes, run_flower, write_run_config  # noqa: E402
from fdagmm.federation.flower.partitions import load_partition, write_partitions  # noqa: E402
from fdagmm.federation.flower.records import (  # noqa: E402
    config_from_run,
    config_to_json,
    gmm_stats_from_record,
    gmm_stats_record,
    scaling_from_record,
    scaling_record,
    scaling_stats_from_record,
    scaling_stats_record,
)
from fdagmm.federation.rounds import FederationError  # noqa: E402
from helpers.dataset_files import every_nth, read_lines, write_lines
from helpers.kdd import KDD99
from fdagmm.data.dataset import build_dataset

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.flower


def _cfg(data_path, output_dir, *overrides):
    with initialize(version_base="1.3", config_path="../../conf"):
        return compose(
            config_name="config",
            overrides=[f"data.train_path={data_path}", f"paths.output_dir={output_dir}", "scenario=s4", "data.cache_dir=null", *overrides],
        )


def test_gmm_stats_cross_the_wire_exactly():
    torch.manual_seed(0)
    stats = gmm_sufficient_stats(torch.randn(50, 3), torch.softmax(torch.randn(50, 4), dim=1))
    back = gmm_stats_from_record(gmm_stats_record(stats))
    assert back.n == stats.n == 50
    for name in ("s0", "s1", "s2"):
        assert getattr(back, name).dtype == torch.float64
        assert torch.equal(getattr(back, name), getattr(stats, name))


def test_config_crosses_the_wire_resolved(kdd_slice, tmp_path):
    cfg = _cfg(kdd_slice, tmp_path, "fed.backend=flower")
    back = config_from_run({"config": config_to_json(cfg)})
    assert back == OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    assert back.data.cache_dir is None and back.fed.backend == "flower"


@pytest.mark.parametrize("scaling", ["schema_log", "federated_minmax"])
def test_partition_files_hold_each_clients_raw_records(kdd_slice, tmp_path, scaling):
    """Encoded with the federation's scaling, a partition file gives exactly the in-process
    client's tensors; with federated_minmax, the bounds combined from each file's own
    statistics (as they cross the wire) are the same."""
    cfg = _cfg(kdd_slice, tmp_path, f"data.scaling={scaling}")
    paths, counts = write_partitions(build_dataset(cfg.data), build(cfg.partition), cfg.seed, tmp_path / "partitions")
    d = cfg.data
    datamodule = ClientsDataModule(build_dataset(d), d.batch_size, build(cfg.partition), cfg.seed, [0, 1], d.scaling, d.scaling_records)
    datamodule.setup()
    assert counts == datamodule.summary()
    records = [load_partition(path)[0] for path in paths]
    stats = lambda: [scaling_stats_from_record(scaling_stats_record(ScalingStats.of(r.train, KDD99.schema, "federated_minmax"))) for r in records]  # noqa: E731
    sent = scaling_from_record(scaling_record(federation_scaling(scaling, KDD99.schema, stats)))
    for field in ("minimum", "maximum", "log_scaled"):
        np.testing.assert_array_equal(getattr(sent, field), getattr(datamodule.encoder.scaling, field))
    for r, expected in zip(records, datamodule.clients, strict=True):
        data = encode_client(r, FeatureEncoder(sent, KDD99.schema))
        assert data.client_id == expected.client_id
        assert torch.equal(data.train_x, expected.train_x) and torch.equal(data.test_x, expected.test_x)
        assert (data.test_is_anomaly == expected.test_is_anomaly).all()


@pytest.mark.parametrize(
    "override, expected",
    [
        ("method=local", "fed.backend=flower runs federations"),
        ("eval.threshold_ref=pooled", "pooled threshold reference shares training-record energies"),
        ("eval.compare_threshold_refs=true", "pooled threshold reference shares training-record energies"),
    ],
)
def test_flower_refuses_what_it_cannot_do(kdd_slice, tmp_path, override, expected):
    with pytest.raises(ConfigError, match=expected):
        cfg = _cfg(kdd_slice, tmp_path, "fed.backend=flower", override)
        validate_config(cfg, build(cfg.partition))


def test_missing_flower_is_a_one_line_config_error(kdd_slice, tmp_path, monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r'needs Flower: pip install -e "\.\[flower\]"'):
        cfg = _cfg(kdd_slice, tmp_path, "fed.backend=flower")
        run_flower(cfg, build(cfg.partition), build_dataset(cfg.data))
    assert not (tmp_path / "flower").exists()  # nothing written before the check


def _in_both_backends(common: list[str], tmp_path: Path) -> tuple[dict[str, dict], str]:
    """``src/train.py`` with ``common`` in process and over Flower, into tmp_path/<backend>:
    each run's metrics.json, and the Flower run's stdout; no Flower process is left behind."""
    runs, stdout = {}, ""
    home = tmp_path / "flower" / "flower" / "home"
    try:
        for backend in ("inprocess", "flower"):
            run_dir = tmp_path / backend
            result = subprocess.run(
                [sys.executable, "src/train.py", *common, f"fed.backend={backend}", f"hydra.run.dir={run_dir}"],
                cwd=ROOT, capture_output=True, text=True, timeout=600,
            )
            assert result.returncode == 0, result.stderr[-3000:]
            runs[backend], stdout = json.loads((run_dir / "metrics.json").read_text()), result.stdout
        assert flower_processes(home) == []  # the run stopped them all
    finally:  # a run killed by the timeout cannot stop its own processes
        for pid in flower_processes(home):
            os.kill(pid, signal.SIGKILL)
    return runs, stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    "setting",
    [
        ["scenario=s4"],
        # K clients, sampling, and a strategy whose personal layers live in Flower's context.state,
        # as the kept optimiser states do; a learning-rate schedule and a scaling fitted to histograms.
        ["partition=iid", "partition.num_clients=3", "strategy=fedper", "fed.clients_per_round=2", "fed.keep_optimizer_state=true",
         "model.lr_schedule=cosine", "data.scaling=federated_quantile"],
        # Client-level DP around a server optimiser: the clients clip, the server samples
        # (Poisson) and adds the same noise to the updates and to the mixture statistics as in
        # process (reproducible noise: by default it is secret, and no two runs agree).
        ["partition=iid", "partition.num_clients=3", "strategy=fedadam", "fed.clients_per_round=2", "privacy=dp", "privacy.delta=0.1",
         "privacy.insecure_reproducible_noise=true"],
        # Adaptive clipping: the server clips every update and moves the clip norm each round.
        ["partition=iid", "partition.num_clients=3", "privacy=dp", "privacy.delta=0.1", "privacy.adaptive_clipping=true",
         "privacy.clipped_count_stddev=1.0", "privacy.insecure_reproducible_noise=true"],
        # Record-level DP: each client's Poisson batches, DP-SGD noise and noised statistics, and
        # round 2 trained under the mixture released from theta_0's statistics in message 1.
        ["partition=iid", "partition.num_clients=3", "privacy=record_dp", "privacy.insecure_reproducible_noise=true"],
        # Secure aggregation, the clients adding the DP noise: three more exchanges a round,
        # and the sums the server opens are the in-process ones.
        ["partition=iid", "partition.num_clients=3", "privacy=dp", "privacy.delta=0.1", "privacy.secure_aggregation=true",
         "privacy.noise_at=clients", "privacy.insecure_reproducible_noise=true"],
    ],
    ids=["study", "k3-sampled-fedper", "k3-sampled-fedadam-dp", "k3-adaptive-clipping", "k3-record-dp", "k3-secagg-dp-noise-at-clients"],
)
def test_flower_run_matches_the_inprocess_run(kdd_slice, tmp_path, setting):
    """SuperLink + one SuperNode per client, 2 rounds: the same numbers as the in-process
    backend, bit for bit here (tolerance 1e-9), the same outputs, no process left behind.
    One torch thread in both: the local launcher otherwise shares the cores out among the
    ClientApps, and another thread count rounds reductions differently (~1e-7)."""
    common = [*setting, "fed.rounds=2", f"data.train_path={kdd_slice}", "data.cache_dir=null", "trainer.accelerator=cpu", "torch_threads=1"]
    runs, flower_stdout = _in_both_backends(common, tmp_path)
    flower_dir = tmp_path / "flower"
    assert "server: round 2/2" in flower_stdout  # the ServerApp's progress reaches the user (Hydra logs to stdout)
    assert runs["flower"]["partition"] == runs["inprocess"]["partition"]
    assert runs["flower"].get("privacy") == runs["inprocess"].get("privacy")
    for a, b in zip(runs["flower"]["history"], runs["inprocess"]["history"], strict=True):
        assert a.keys() == b.keys()
        # the server's step, signal and noise, where the server adds the noise
        assert ("privacy/update_to_noise" in a) == ("privacy=dp" in setting and "privacy.noise_at=clients" not in setting)
        assert ("privacy/clip_norm" in a) == ("privacy.adaptive_clipping=true" in setting)
        for key in a:
            assert a[key] == pytest.approx(b[key], rel=1e-9), key
    assert runs["flower"]["final"] == pytest.approx(runs["inprocess"]["final"], rel=1e-9)
    assert runs["flower"]["per_client"].keys() == runs["inprocess"]["per_client"].keys()
    for name, metrics in runs["inprocess"]["per_client"].items():
        assert runs["flower"]["per_client"][name] == pytest.approx(metrics, rel=1e-9), name

    # The same outputs: per-client loss curves continuing across rounds, server metrics,
    # the evaluated client's detector.
    losses = [k.split("/")[-1] for h in runs["flower"]["history"] for k in h if k.startswith("train/loss/")]
    for name in set(losses):
        events = EventAccumulator(str(flower_dir / "tensorboard" / name), size_guidance={"scalars": 0})
        events.Reload()
        steps = [e.step for e in events.Scalars("train/loss")]
        assert steps == sorted(set(steps)) and len(steps) >= losses.count(name)  # a point per round it trained, at least
    server = EventAccumulator(str(flower_dir / "tensorboard" / "server"), size_guidance={"scalars": 0})
    server.Reload()
    assert [e.step for e in server.Scalars("test/auroc")] == [1, 2]
    assert Detector.load(flower_dir).threshold == runs["flower"]["final"]["test/threshold"]


@pytest.mark.slow
def test_a_failing_client_fails_the_run_in_one_line(kdd_slice, tmp_path):
    """`flwr run` exits 0 when the ServerApp fails; the run's status must still raise, with the
    ServerApp's reason, and every process must be stopped."""
    cfg = _cfg(kdd_slice, tmp_path, "fed.backend=flower", "fed.rounds=1", "fed.flower.timeout_s=120")
    flower_dir = tmp_path / "flower"
    paths, _ = write_partitions(build_dataset(cfg.data), build(cfg.partition), cfg.seed, flower_dir / "partitions")
    paths[1].write_bytes(b"not a partition file")
    run_config = write_run_config(cfg, flower_dir / "run_config.toml", tmp_path)
    with pytest.raises(FederationError, match=r"finished:failed: SuperNode \d+ could not describe its data: .*corrupt"):
        with LocalFederation(flower_dir, [f'data-path="{p}"' for p in paths], tmp_path, timeout_s=120) as federation:
            federation.run(run_config, deadline_s=300)
    assert not (tmp_path / "metrics.json").exists()
    assert flower_processes(flower_dir / "home") == []


@pytest.mark.slow
def test_sigterm_stops_every_process(kdd_slice, tmp_path):
    """A run stopped from outside (SIGTERM) mid-federation leaves no Flower process behind."""
    home = tmp_path / "flower" / "home"
    process = subprocess.Popen(
        [sys.executable, "src/train.py", "fed.backend=flower", "scenario=s4", "fed.rounds=2",
         f"data.train_path={kdd_slice}", "data.cache_dir=null", f"hydra.run.dir={tmp_path}"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        for line in process.stdout:  # until the run is under way
            if "Flower run" in line and "submitted" in line:
                break
        assert flower_processes(home), "the federation's processes should be running"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) != 0
        assert flower_processes(home) == []
        assert not (tmp_path / "metrics.json").exists()
    finally:
        process.kill()
        for pid in flower_processes(home):
            os.kill(pid, signal.SIGKILL)


def _site_files(unsw_path, directory: Path) -> dict[str, Path]:
    """Two organisations' files cut from the UNSW-NB15 testing set: site 0 trains and tests, site 1 only trains."""
    lines = read_lines(unsw_path)
    directory.mkdir()
    return {
        "a_train": write_lines(directory / "a_train.csv", every_nth(lines, 60, header=True, offset=0)),
        "a_test": write_lines(directory / "a_test.csv", every_nth(lines, 60, header=True, offset=1)),
        "b_train": write_lines(directory / "b_train.csv", every_nth(lines, 40, header=True, offset=2)),
    }


@pytest.mark.slow
def test_organisations_own_files_over_flower_match_the_inprocess_run(unsw_path, tmp_path):
    """partition=files: each SuperNode reads its own organisation's files (--node-config
    client-id, data-path, test-path), the launcher writes no partition file, and the run
    matches the in-process one; the client without a test file is trained, not evaluated."""
    f = _site_files(unsw_path, tmp_path / "sites")
    clients = f"[{{train_path: {f['a_train']}, test_path: {f['a_test']}}}, {{train_path: {f['b_train']}}}]"
    common = ["data=unsw_nb15", "partition=files", f"partition.clients={clients}", "fed.rounds=2", "data.cache_dir=null",
              "trainer.accelerator=cpu", "torch_threads=1", "model.compile=false"]  # fmt: skip
    runs, _ = _in_both_backends(common, tmp_path)
    assert not (tmp_path / "flower" / "flower" / "partitions").exists()  # nobody wrote the sites' records anywhere
    assert runs["flower"]["partition"] == runs["inprocess"]["partition"]
    assert runs["flower"]["partition"]["client1"]["n_test"] == 0
    assert list(runs["flower"]["per_client"]) == list(runs["inprocess"]["per_client"]) == ["client0"]
    for a, b in zip(runs["flower"]["history"], runs["inprocess"]["history"], strict=True):
        assert a.keys() == b.keys()
        for key in a:
            assert a[key] == pytest.approx(b[key], rel=1e-9), key
    assert runs["flower"]["final"] == pytest.approx(runs["inprocess"]["final"], rel=1e-9)


@pytest.mark.slow
def test_a_site_file_that_does_not_match_the_schema_fails_the_run_in_one_line(unsw_path, tmp_path):
    f = _site_files(unsw_path, tmp_path / "sites")
    broken = tmp_path / "sites" / "b_broken.csv"
    lines = f["b_train"].read_text().splitlines(keepends=True)
    broken.write_text("".join(line.replace(",sbytes,", ",src_bytes,", 1) for line in lines[:1]) + "".join(lines[1:]))
    clients = f"[{{train_path: {f['a_train']}, test_path: {f['a_test']}}}, {{train_path: {broken}}}]"
    cfg = _cfg(f["a_train"], tmp_path, "data=unsw_nb15", "partition=files", f"partition.clients={clients}", "fed.backend=flower",
               "fed.rounds=1", "fed.flower.timeout_s=120")  # fmt: skip
    with pytest.raises(FederationError, match=r"finished:failed: SuperNode \d+ could not describe its data: .*b_broken.csv.*sbytes"):
        run_flower(cfg, build(cfg.partition), build_dataset(cfg.data))
    assert not (tmp_path / "metrics.json").exists()
    assert flower_processes(tmp_path / "flower" / "home") == []
