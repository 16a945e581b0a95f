"""End to end through the real Hydra config, on a slice of the real file."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize
from hydra.utils import instantiate
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from fdagmm.run.experiment import train

ROOT = Path(__file__).resolve().parents[2]
METRICS = {"test/precision", "test/recall", "test/f1", "test/auroc", "test/avg_precision", "test/threshold", "test/auroc_reconstruction"}


def _cfg(data_path, output_dir, *overrides):
    with initialize(version_base="1.3", config_path="../../conf"):
        return compose(
            config_name="config",
            overrides=[
                f"data.train_path={data_path}",
                f"paths.output_dir={output_dir}",
                "scenario=s4",
                "fed.rounds=2",
                "trainer.accelerator=cpu",
                *overrides,
            ],
        )


def _events(run_dir, name) -> EventAccumulator:
    accumulator = EventAccumulator(str(run_dir / "tensorboard" / name), size_guidance={"scalars": 0})
    accumulator.Reload()
    return accumulator


def test_federated_run_writes_metrics_and_tensorboard(kdd_slice, tmp_path):
    payload = train(_cfg(kdd_slice, tmp_path))
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(payload))
    assert set(on_disk["final"]) == METRICS
    assert [h["round"] for h in on_disk["history"]] == [1, 2]
    assert on_disk["history"][-1]["test/auroc"] == on_disk["final"]["test/auroc"]
    assert {"train/loss/client0", "train/loss/client1"} <= set(on_disk["history"][0])
    assert 0.0 <= on_disk["final"]["test/auroc"] <= 1.0
    assert on_disk["partition"]["client0"]["n_train"] > 0

    # Each client's loss curve runs on one axis across the two rounds' Trainers (whose own
    # step counters restart at 0), a point every log_every_n_steps = 10 steps of each round.
    for k in (0, 1):
        client = _events(tmp_path, f"client{k}")
        steps = [e.step for e in client.Scalars("train/loss")]
        n_train = on_disk["partition"][f"client{k}"]["n_train"]
        per_round = -(-n_train // 1024)
        assert steps == [r * per_round + s for r in range(2) for s in range(0, per_round, 10)], k
    server = _events(tmp_path, "server")
    assert [e.step for e in server.Scalars("test/auroc")] == [1, 2]
    assert server.Scalars("test/auroc")[-1].value == pytest.approx(on_disk["final"]["test/auroc"])
    assert "_hparams_/session_start_info" in server.PluginTagToContent("hparams")
    # The evaluated client logs the distribution of its own test energies.
    evaluated = _events(tmp_path, "client0")
    assert {"test/energy", "test/energy_anomalies", "test/energy_inliers"} <= set(evaluated.Tags()["histograms"])
    assert "test/pr_curve" in evaluated.PluginTagToContent("pr_curves")


def test_same_seed_gives_identical_metrics(kdd_slice, tmp_path):
    train(_cfg(kdd_slice, tmp_path / "a", "seed=3"))
    train(_cfg(kdd_slice, tmp_path / "b", "seed=3"))
    train(_cfg(kdd_slice, tmp_path / "c", "seed=4"))
    a, b, c = ((tmp_path / r / "metrics.json").read_text() for r in "abc")
    assert a == b
    assert a != c


@pytest.mark.parametrize(
    "method, eval_client, losses",
    [("local", 0, {"train/loss/train"}), ("pooled", 0, {"train/loss/train"}), ("remote", 1, {"train/loss/train"})],
)
def test_centralised_baselines(kdd_slice, tmp_path, method, eval_client, losses):
    payload = train(_cfg(kdd_slice, tmp_path, f"method={method}", "fed.local_epochs=2"))
    assert payload["method"] == method and payload["eval_client"] == eval_client
    assert [h["round"] for h in payload["history"]] == [1, 2]  # evaluated every local_epochs epochs
    assert losses <= set(payload["history"][0])
    steps = [e.step for e in _events(tmp_path, "train").Scalars("train/loss")]
    n_train = {
        "local": payload["partition"]["client0"]["n_train"],
        "remote": payload["partition"]["client1"]["n_train"],
        "pooled": payload["partition"]["client0"]["n_train"] + payload["partition"]["client1"]["n_train"],
    }[method]
    assert steps == list(range(0, 4 * -(-n_train // 1024), 10))  # rounds x local epochs x batches


def test_local_mixture_and_pooled_threshold_change_the_scores(kdd_slice, tmp_path):
    base = train(_cfg(kdd_slice, tmp_path / "base", "eval.compare_threshold_refs=true"))
    local = train(_cfg(kdd_slice, tmp_path / "local", "fed.gmm_stats=local"))["final"]
    pooled = train(_cfg(kdd_slice, tmp_path / "pooled", "eval.threshold_ref=pooled"))["final"]
    assert local["test/auroc"] != base["final"]["test/auroc"]  # another mixture, other energies
    assert pooled["test/auroc"] == base["final"]["test/auroc"]  # same energies ...
    assert pooled["test/threshold"] != base["final"]["test/threshold"]  # ... another threshold
    # Asked to, a run also reports its final model under both threshold references.
    assert base["final_by_threshold_ref"]["own"] == base["final"]
    assert base["final_by_threshold_ref"]["pooled"] == pooled


def _cli(*args, cwd=ROOT):
    return subprocess.run(
        [sys.executable, "src/train.py", *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
def test_cli_runs_with_overrides(kdd_slice, tmp_path):
    result = _cli(
        "scenario=s4", "fed.rounds=1", "method=local", f"data.train_path={kdd_slice}", f"hydra.run.dir={tmp_path}"
    )
    assert result.returncode == 0, result.stderr
    payload = json.loads((tmp_path / "metrics.json").read_text())
    assert payload["method"] == "local" and payload["scenario"] == "s4"
    assert "AUROC" in result.stdout
    assert (tmp_path / ".hydra" / "config.yaml").is_file()


@pytest.mark.slow
@pytest.mark.parametrize(
    "override, expected",
    [
        ("fed.rounds=0", "fed.rounds must be >= 1"),
        ("data.train_path=/nonexistent/kdd.gz", "kdd99 file not found: /nonexistent/kdd.gz"),
        ("eval.anomaly_ratio=1.5", "eval.anomaly_ratio must be in (0, 1)"),
        ("method=federated", "unknown method 'federated': choose one of autoencoder_local, autoencoder_pooled, ecod_local, ecod_pooled, fdagmm, iforest_local, iforest_pooled, local, pca_local, pca_pooled, pooled, remote"),
        ("fed.backend=grpc", "fed.backend must be inprocess or flower, got 'grpc'"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(kdd_slice, tmp_path, override, expected):
    result = _cli(f"data.train_path={kdd_slice}", override, f"hydra.run.dir={tmp_path}")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], lines
    assert not (tmp_path / "metrics.json").exists()


def test_gpu_is_used_when_there_is_one():
    """The default trainer.accelerator=auto picks CUDA where it exists (checked on a GPU machine)."""
    with initialize(version_base="1.3", config_path="../../conf"):
        cfg = compose(config_name="config")
    assert cfg.trainer.accelerator == "auto"
    trainer = instantiate(cfg.trainer, max_epochs=1, logger=False)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert trainer.strategy.root_device.type == expected


def test_evaluation_every_n_rounds(kdd_slice, tmp_path):
    payload = train(_cfg(kdd_slice, tmp_path, "fed.rounds=5", "eval.every_n_rounds=2"))
    evaluated = [h["round"] for h in payload["history"] if "test/auroc" in h]
    assert evaluated == [2, 4, 5]  # every second round and the last
    assert [h["round"] for h in payload["history"]] == [1, 2, 3, 4, 5]  # losses every round
    assert payload["final"]["test/auroc"] == payload["history"][-1]["test/auroc"]
    # Evaluating leaves training alone: `make strategies` measures seed 0 every round, seeds 1-4 once.
    every_round = train(_cfg(kdd_slice, tmp_path / "every_round", "fed.rounds=5", "eval.every_n_rounds=1"))
    assert every_round["final"] == payload["final"]
