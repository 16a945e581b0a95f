"""Bad configs, failing or broken clients, checkpoints and resume, and the privacy boundary."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize

from fdagmm.federation.checkpoint import CHECKPOINT_FILE, load_checkpoint
from fdagmm.federation.client import Client, ClientUpdate
from fdagmm.config import build, validate_config
from fdagmm.models.dagmm import GMMStats
from fdagmm.errors import ConfigError, DataError
from fdagmm.run.experiment import train
from fdagmm.federation.rounds import FederationError

ROOT = Path(__file__).resolve().parents[2]


def _cfg(data_path, output_dir, *overrides):
    with initialize(version_base="1.3", config_path="../../conf"):
        return compose(
            config_name="config",
            overrides=[f"data.train_path={data_path}", f"paths.output_dir={output_dir}", "scenario=s4",
                       "fed.rounds=2", "trainer.accelerator=cpu", *overrides],
        )  # fmt: skip


@pytest.mark.parametrize(
    "override, message",
    [
        ("partition.common_fractions=[1.2,-0.2]", "partition.common_fractions must be in [0, 1], got [1.2, -0.2]"),
        ("partition.common_fractions=[0.3,0.3]", "sum to 1"),
        ("partition.rare_fractions=[1.0]", "partition.rare_fractions has 1"),
        ("fed.rounds=0", "fed.rounds must be >= 1"),
        ("fed.local_epochs=-1", "fed.local_epochs must be >= 1"),
        ("fed.min_clients=3", "fed.min_clients must be between 1 and the 2 clients that train each round"),
        ("method.eval_client=2", "method.eval_client must be one of the client ids 0..1"),
        ("data.batch_size=0", "data.batch_size must be >= 1"),
        ("eval.threshold_ref=median", "eval.threshold_ref must be own or pooled"),
        ("data.scaling=minmax", "data.scaling must be one of schema_log, federated_minmax, federated_standard, federated_robust, federated_quantile, got 'minmax'"),
    ],
)
def test_impossible_config_values_are_refused_before_any_data_is_read(tmp_path, override, message):
    cfg = _cfg(tmp_path / "does-not-exist.gz", tmp_path, override)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
        train(cfg)  # a data error would mean the data was read first
    assert not (tmp_path / "metrics.json").exists()


def test_a_scenario_that_leaves_a_client_no_records(kdd_slice, tmp_path):
    cfg = _cfg(kdd_slice, tmp_path, "partition.common_fractions=[0.0,1.0]", "partition.rare_fractions=[0.0,1.0]")
    validate_config(cfg, build(cfg.partition))  # valid fractions ...
    with pytest.raises(DataError, match="leaves client 0 with 0 training and 0 test records"):
        train(cfg)  # ... but nothing for client 0


def test_batch_larger_than_a_client_training_set_trains_in_one_batch(kdd_slice, tmp_path):
    payload = train(_cfg(kdd_slice, tmp_path, "data.batch_size=4096"))
    assert payload["partition"]["client0"]["n_train"] < 4096
    assert np.isfinite(payload["final"]["test/auroc"])
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tensorboard" / "client0"))
    events.Reload()
    assert [e.step for e in events.Scalars("train/loss")] == [0, 1]  # one batch per round


def _failing(client_id, round_idx, failure):
    original = Client.update

    def update(self, global_state, r, frozen_mixture=None):
        if self.client_id == client_id and r == round_idx:
            if failure == "raise":
                raise RuntimeError("disk full")
            result = original(self, global_state, r, frozen_mixture)
            result.state["encoder.0.weight"][0, 0] = float("nan")
            return result
        return original(self, global_state, r, frozen_mixture)

    return update


@pytest.mark.parametrize("failure, reason", [("raise", "RuntimeError: disk full"), ("nan", "non-finite weights in encoder.0.weight")])
def test_a_failing_client_is_left_out_of_the_round(kdd_slice, tmp_path, monkeypatch, failure, reason):
    monkeypatch.setattr(Client, "update", _failing(1, 2, failure))
    payload = train(_cfg(kdd_slice, tmp_path, "fed.rounds=3"))
    rounds = {h["round"]: h for h in payload["history"]}
    assert rounds[2]["excluded_clients"] == {"1": reason}
    assert "train/loss/client1" not in rounds[2] and "train/loss/client0" in rounds[2]
    assert "excluded_clients" not in rounds[1] and "excluded_clients" not in rounds[3]
    assert all(np.isfinite(v) for h in payload["history"] for k, v in h.items() if k.startswith("test/"))


def test_too_few_usable_updates_stop_the_run(kdd_slice, tmp_path, monkeypatch):
    monkeypatch.setattr(Client, "update", _failing(1, 2, "raise"))
    with pytest.raises(FederationError, match=r"round 2: only 1 of 2 clients .* fed.min_clients=2 \(client 1: RuntimeError: disk full\)"):
        train(_cfg(kdd_slice, tmp_path, "fed.min_clients=2"))
    assert not (tmp_path / "metrics.json").exists()


def test_privacy_boundary_only_weights_counts_and_statistics_leave_a_client(kdd_slice, tmp_path, monkeypatch):
    """Everything a Client method returns to the driver, checked for record-level content."""
    returned = []
    for name in ("update", "gmm_stats", "train_energies", "evaluate"):
        original = getattr(Client, name)

        def spy(self, *args, _original=original, _name=name, **kwargs):
            result = _original(self, *args, **kwargs)
            returned.append((_name, result))
            return result

        monkeypatch.setattr(Client, name, spy)
    payload = train(_cfg(kdd_slice, tmp_path))
    record_counts = {n for c in payload["partition"].values() for n in (c["n_train"], c["n_test"])}
    kinds = {name for name, _ in returned}
    assert kinds == {"update", "gmm_stats", "evaluate"}  # no per-record energies with threshold_ref=own

    def leaves(obj):
        if isinstance(obj, ClientUpdate):
            assert isinstance(obj.n_samples, int) and isinstance(obj.train_loss, float)
            yield from obj.state.values()
        elif isinstance(obj, GMMStats):
            yield from (obj.s0, obj.s1, obj.s2)
        elif isinstance(obj, dict):
            for value in obj.values():
                yield from leaves(value)
        else:
            yield obj

    for name, result in returned:
        for leaf in leaves(result):
            if isinstance(leaf, (torch.Tensor, np.ndarray)):
                assert not set(leaf.shape) & record_counts, f"{name} returns a per-record array {tuple(leaf.shape)}"
            else:
                assert isinstance(leaf, (int, float)), (name, type(leaf))


def _run(*args, **kwargs):
    return subprocess.Popen(
        [sys.executable, "src/train.py", *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs
    )


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_same_metrics(kdd_slice, tmp_path):
    common = [f"data.train_path={kdd_slice}", "scenario=s4", "fed.rounds=12", "trainer.accelerator=cpu"]
    reference = _run(*common, f"hydra.run.dir={tmp_path / 'reference'}")
    killed_dir = tmp_path / "killed"
    killed = _run(*common, f"hydra.run.dir={killed_dir}")
    log = killed_dir / "train.log"
    deadline = time.monotonic() + 300
    while not (log.is_file() and "round 3/12" in log.read_text()):
        assert killed.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert reference.wait(timeout=300) == 0
    assert not (killed_dir / "metrics.json").exists()  # nothing that looks like a finished run
    assert (killed_dir / CHECKPOINT_FILE).is_file()

    resumed = _run(f"fed.resume={killed_dir}", f"hydra.run.dir={tmp_path / 'resume'}")
    output = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, output
    assert "resuming" in output
    assert (killed_dir / "metrics.json").read_text() == (tmp_path / "reference" / "metrics.json").read_text()


class ArbitraryObject:
    pass


def test_corrupt_and_foreign_checkpoints_are_refused(tmp_path):
    path = tmp_path / CHECKPOINT_FILE
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="is corrupt or not an FDAGMM round checkpoint"):
        load_checkpoint(path, "identity")

    torch.save({"format": 1, "payload": ArbitraryObject()}, path)  # refused by weights_only=True
    with pytest.raises(DataError, match="is corrupt or not an FDAGMM round checkpoint"):
        load_checkpoint(path, "identity")
    torch.save({"format": 99}, path)
    with pytest.raises(DataError, match="of format 2"):
        load_checkpoint(path, "identity")


def test_a_checkpoint_of_another_run_is_refused(kdd_slice, tmp_path):
    train(_cfg(kdd_slice, tmp_path, "seed=1"))
    with pytest.raises(DataError, match="belongs to a run with another config"):
        load_checkpoint(tmp_path / CHECKPOINT_FILE, "another run")


def test_resume_of_a_dir_that_is_not_a_run(tmp_path):
    with pytest.raises(ConfigError, match="no .hydra/config.yaml there"):
        train(_cfg("unused", tmp_path, f"fed.resume={tmp_path}"))


def test_cli_debug_switch_shows_the_traceback(tmp_path):
    args = ["fed.rounds=0", f"hydra.run.dir={tmp_path}"]
    quiet = subprocess.run([sys.executable, "src/train.py", *args], cwd=ROOT, capture_output=True, text=True)
    loud = subprocess.run([sys.executable, "src/train.py", *args, "debug=true"], cwd=ROOT, capture_output=True, text=True)
    assert quiet.returncode == 2 and "Traceback" not in quiet.stderr
    assert loud.returncode != 0 and "ConfigError" in loud.stderr
