"""How the Flower backend runs: its one-message-per-round protocol against the in-process
backend (the apps driven in this process through an in-memory Grid), and the real processes
it starts and what they need from the environment, on a small slice of the real file.

Skipped when Flower is not installed, unless FDAGMM_REQUIRE_FLOWER=1 (set by CI).
"""

import importlib.util
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers.real_data import every_nth_record

if importlib.util.find_spec("flwr") is None and os.environ.get("FDAGMM_REQUIRE_FLOWER") != "1":
    pytest.skip('Flower is not installed: pip install -e ".[flower]"', allow_module_level=True)

from flwr.app import Context, Error, Message, RecordDict  # noqa: E402
from flwr.serverapp import Grid  # noqa: E402
from flwr.supercore.task_identity import TaskIdentity  # noqa: E402
from hydra import compose, initialize  # noqa: E402

from fdagmm.federation.client import Client  # noqa: E402
from fdagmm.federation.flower import client_app, server_app  # noqa: E402
from fdagmm.federation.flower.launcher import LocalFederation, flower_processes  # noqa: E402
from fdagmm.federation.flower.partitions import write_partitions  # noqa: E402
from fdagmm.federation.flower.records import CONFIG_KEY, OUTPUT_DIR_KEY, config_to_json  # noqa: E402
from fdagmm.run.experiment import train  # noqa: E402
from fdagmm.data.dataset import build_dataset
from fdagmm.config import build

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.flower, pytest.mark.slow]
SERVER_NODE = 0


@pytest.fixture(scope="module")
def kdd_tiny(kdd_lines, tmp_path_factory) -> Path:
    """Every 64th record of the real file (7,720 records): enough for both clients of s4."""
    return every_nth_record(kdd_lines, tmp_path_factory.mktemp("data") / "kdd_tiny.csv.gz", 64)


class InMemoryGrid(Grid):
    """A Grid that hands each message to the ClientApp in this process, with one Context per
    node kept across messages (as a SuperNode keeps ``context.state``); a handler's exception
    becomes an error reply, as Flower's runtime makes it. Flower's own Message constructor
    needs the task identity it reads in a ClientApp or ServerApp process."""

    def __init__(self, contexts: dict[int, Context]):
        self.contexts = contexts
        self.replies: dict[str, Message] = {}
        TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, SERVER_NODE, 1

    def set_run(self, run) -> None:
        raise NotImplementedError

    @property
    def run(self):
        raise NotImplementedError

    def create_message(self, *args, **kwargs) -> Message:
        raise NotImplementedError

    def get_node_ids(self) -> list[int]:
        return list(self.contexts)

    def push_messages(self, messages) -> list[str]:
        ids = []
        for msg in messages:
            msg.metadata.__dict__["_message_id"] = msg.object_id
            TaskIdentity.node_id = msg.metadata.dst_node_id
            try:
                reply = client_app.app(msg, self.contexts[msg.metadata.dst_node_id])
            except Exception as e:
                reply = Message(Error(0, f"{type(e).__name__}: {e}"), reply_to=msg)
            finally:
                TaskIdentity.node_id = SERVER_NODE
            self.replies[msg.object_id] = reply
            ids.append(msg.object_id)
        return ids

    def pull_messages(self, message_ids) -> list[Message]:
        return [self.replies.pop(i) for i in list(message_ids) if i in self.replies]

    def send_and_receive(self, messages, *, timeout=None) -> list[Message]:
        return self.pull_messages(self.push_messages(messages))


def _cfg(*overrides: str):
    with initialize(version_base="1.3", config_path="../../conf"):
        return compose(config_name="config", overrides=["data.cache_dir=null", "trainer.accelerator=cpu", *overrides])


@pytest.mark.parametrize(
    "overrides",
    [
        ["scenario=s4", "fed.rounds=3"],
        # Sampling among K clients, and personal layers across the delayed test.
        ["partition=iid", "partition.num_clients=3", "strategy=fedper", "fed.clients_per_round=2", "fed.rounds=4"],
        # Sparse evaluation, each client's own mixture, server optimiser state.
        ["scenario=s4", "fed.rounds=3", "eval.every_n_rounds=2", "fed.gmm_stats=local", "strategy=fedadam"],
        # Secure aggregation: the sums the server opens are the in-process backend's, to the bit.
        ["scenario=s4", "fed.rounds=3", "privacy.secure_aggregation=true", "strategy=fedadam", "eval.every_n_rounds=2"],
        # ... with the clients adding the DP noise, and rounds whose Poisson sampling chose one client.
        ["partition=iid", "partition.num_clients=3", "fed.clients_per_round=2", "fed.rounds=3", "privacy=dp", "privacy.delta=0.1",
         "privacy.secure_aggregation=true", "privacy.noise_at=clients", "privacy.insecure_reproducible_noise=true"],
        ["partition=iid", "partition.num_clients=3", "fed.rounds=2", "privacy=record_dp", "privacy.secure_aggregation=true",
         "privacy.insecure_reproducible_noise=true"],
    ],
    ids=["s4", "fedper-sampled-k3", "sparse-local-fedadam", "secagg-fedadam", "secagg-dp-noise-at-clients-k3", "secagg-record-dp-k3"],
)
def test_one_message_per_round_gives_the_inprocess_results(kdd_tiny, tmp_path, overrides):
    """Statistics and tests riding on later messages: the same metrics.json as in process,
    history and per-client results included."""
    _assert_backends_agree(tmp_path, f"data.train_path={kdd_tiny}", *overrides)


def test_a_client_whose_training_fails_is_left_out_as_in_process(kdd_tiny, tmp_path, monkeypatch):
    """Its reply still carries the evaluation parts; the round goes on without its update."""
    update = Client.update

    def failing(self, global_state, round_idx, frozen_mixture=None):
        if self.client_id == 1 and round_idx == 2:
            raise RuntimeError("disk full")
        return update(self, global_state, round_idx, frozen_mixture)

    monkeypatch.setattr(Client, "update", failing)
    metrics = _assert_backends_agree(tmp_path, f"data.train_path={kdd_tiny}", "scenario=s4", "fed.rounds=3")
    assert metrics["history"][1]["excluded_clients"] == {"1": "RuntimeError: disk full"}


def _assert_backends_agree(tmp_path: Path, *overrides: str) -> dict:
    """Run in process, then through the Flower apps over an InMemoryGrid; returns metrics.json."""
    train(_cfg(*overrides, f"paths.output_dir={tmp_path / 'inprocess'}"))
    metrics = _over_flower(tmp_path / "flower", InMemoryGrid, *overrides)
    assert metrics == json.loads((tmp_path / "inprocess" / "metrics.json").read_text())
    return metrics


def _over_flower(out: Path, grid_class: type[InMemoryGrid], *overrides: str) -> dict:
    """A run through the Flower apps over a ``grid_class`` grid; returns metrics.json."""
    cfg = _cfg(*overrides, "fed.backend=flower", f"paths.output_dir={out}")
    paths, _ = write_partitions(build_dataset(cfg.data), build(cfg.partition), cfg.seed, out / "flower" / "partitions")
    run_config = {CONFIG_KEY: config_to_json(cfg), OUTPUT_DIR_KEY: str(out)}
    contexts = {
        100 + k: Context(run_id=1, node_id=100 + k, node_config={"data-path": str(p), "output-dir": str(out)}, state=RecordDict(), run_config=run_config)
        for k, p in enumerate(paths)
    }
    package = logging.getLogger("fdagmm")
    saved = package.handlers[:], package.level, package.propagate  # the ServerApp takes over the package's logging
    try:
        server_app.main(grid_class(contexts), Context(run_id=1, node_id=SERVER_NODE, node_config={}, state=RecordDict(), run_config=run_config))
    finally:
        package.handlers[:], package.level, package.propagate = saved
    metrics = json.loads((out / "metrics.json").read_text())
    timings = json.loads((out / "flower" / "timings.json").read_text())["messages"]
    assert [m["message"] for m in timings] == list(range(1, cfg.fed.rounds + 3))  # one message a round, two to finish
    return metrics


class RecordingGrid(InMemoryGrid):
    """An InMemoryGrid that keeps every reply the server receives: the server's view."""

    seen: list[Message] = []

    def pull_messages(self, message_ids) -> list[Message]:
        replies = super().pull_messages(message_ids)
        RecordingGrid.seen += replies
        return replies


SECURE_K3 = ["partition=iid", "partition.num_clients=3", "fed.rounds=2", "privacy.secure_aggregation=true"]


@pytest.mark.parametrize("stage", ["unmask", "mask"])
def test_a_client_that_drops_out_of_the_secure_sums(kdd_tiny, tmp_path, monkeypatch, stage):
    """Client 2 fails a step of message 2's sums (its update of round 2, its statistics of
    round 1). After masking (unmask) its inputs still count: the in-process run's results. Before
    (mask) the round goes on with the other two, and says why client 2 is missing."""
    from fdagmm.federation.flower import secure_sums

    step = secure_sums.client_step

    def failing(msg, context):
        if context.node_id == 102 and msg.content["config"]["stage"] == stage and msg.metadata.group_id == "2":
            raise ConnectionError("connection lost")
        return step(msg, context)

    monkeypatch.setattr(secure_sums, "client_step", failing)
    if stage == "unmask":
        _assert_backends_agree(tmp_path, f"data.train_path={kdd_tiny}", *SECURE_K3)
        return
    metrics = _over_flower(tmp_path, InMemoryGrid, f"data.train_path={kdd_tiny}", *SECURE_K3)
    assert metrics["history"][1]["excluded_clients"] == {"2": "dropped out of the secure sum before its masked input"}
    assert "excluded_clients" not in metrics["history"][0]


def test_under_secure_aggregation_the_server_sees_keys_ciphertexts_masked_vectors_and_shares(kdd_tiny, tmp_path, monkeypatch):
    """Every reply of a run: no weights, statistics or training loss of a client; public keys,
    encrypted shares, masked vectors that look uniformly random, and Shamir shares."""
    monkeypatch.setattr(RecordingGrid, "seen", [])
    _over_flower(tmp_path, RecordingGrid, f"data.train_path={kdd_tiny}", *SECURE_K3)
    by_kind: dict[str, int] = {}
    for reply in RecordingGrid.seen:
        content = reply.content
        for name in content:
            assert name not in ("arrays", "gmm-stats"), name
        if "metrics" in content:
            assert "train-loss" not in content["metrics"]
        for name in (n for n in content if n.startswith("secagg-")):
            assert set(content[name]) == {"share-key", "mask-key", "layout"}
            by_kind["keys"] = by_kind.get("keys", 0) + 1
        for name in (n for n in content if n.startswith("sum-")):
            record = content[name]
            if "masked" in record:
                bits = np.unpackbits(np.frombuffer(bytes(record["masked"]), dtype=np.uint8))
                assert abs(bits.mean() - 0.5) < 5 * 0.5 / np.sqrt(bits.size)
                by_kind["masked"] = by_kind.get("masked", 0) + 1
            else:
                assert set(record) in ({"to", "ciphertexts"}, {"ids", "shares"})
                by_kind[str(sorted(record))] = by_kind.get(str(sorted(record)), 0) + 1
    # Three clients' updates in messages 1 and 2, their statistics of rounds 1 and 2 in messages 2 and 3.
    assert by_kind == {"keys": 12, "masked": 12, "['ciphertexts', 'to']": 12, "['ids', 'shares']": 12}


def _train(run_dir: Path, data: Path, env: dict[str, str], *overrides: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            [sys.executable, "src/train.py", "fed.backend=flower", "scenario=s4", f"data.train_path={data}",
             "data.cache_dir=null", "trainer.accelerator=cpu", f"hydra.run.dir={run_dir}", *overrides],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
        )
    finally:  # a run killed by the timeout cannot stop its own processes
        for pid in flower_processes(run_dir / "flower" / "home"):
            os.kill(pid, signal.SIGKILL)


def test_runs_with_the_venv_python_called_directly(kdd_tiny, tmp_path):
    """`.venv/bin/python src/train.py ...` with the venv's bin/ not on PATH (cron, IDEs,
    systemd): every Flower executable, and whatever those start, is found beside the interpreter."""
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    dirs = [d for d in env.get("PATH", "").split(os.pathsep) if d and not (Path(d) / "flower-superexec").exists()]
    env["PATH"] = os.pathsep.join(dirs) or os.defpath
    assert shutil.which("flower-superexec", path=env["PATH"]) is None  # what the test is about

    result = _train(tmp_path, kdd_tiny, env, "fed.rounds=1")
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert [r["round"] for r in metrics["history"]] == [1]
    assert flower_processes(tmp_path / "flower" / "home") == []


def test_the_local_clientapps_share_the_cores_unless_told_otherwise(tmp_path, monkeypatch):
    """SuperNodes on one machine train at once: each ClientApp gets cores/K torch threads
    (at least 1), not a thread per core each; a thread count the user set is kept."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    partitions = [tmp_path / f"client{k}.pt" for k in range(4)]
    assert LocalFederation(tmp_path, partitions, tmp_path, 60.0).env["OMP_NUM_THREADS"] == "4"
    assert LocalFederation(tmp_path, partitions * 8, tmp_path, 60.0).env["OMP_NUM_THREADS"] == "1"
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert LocalFederation(tmp_path, partitions, tmp_path, 60.0).env["OMP_NUM_THREADS"] == "3"
