"""The exported detector and src/score.py: exact energies, unseen values, bad lines, chunks."""

import gzip
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize

from fdagmm.federation import client as client_module
from fdagmm.config import build
from fdagmm.detection.detector import MODEL_FILE, Detector
from fdagmm.errors import DataError
from fdagmm.run.experiment import train
from helpers.kdd import KDD99, read_kdd_file
from fdagmm.detection.scoring import score_file

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trained(kdd_slice, kdd_lines, tmp_path_factory):
    """A short FDAGMM run, the energies it computed for client 0's test records, and those records."""
    run_dir = tmp_path_factory.mktemp("run")
    with initialize(version_base="1.3", config_path="../../conf"):
        cfg = compose(
            config_name="config",
            overrides=[f"data.train_path={kdd_slice}", f"paths.output_dir={run_dir}", "scenario=s4", "fed.rounds=2", "trainer.accelerator=cpu"],
        )  # fmt: skip
    calls = []
    original = client_module.energies

    def spy(net, x, mixture, cov_jitter):
        result = original(net, x, mixture, cov_jitter)
        calls.append((x, result))
        return result

    mp = pytest.MonkeyPatch()
    mp.setattr(client_module, "energies", spy)
    try:
        payload = train(cfg)
    finally:
        mp.undo()
    n_test = payload["partition"]["client0"]["n_test"]
    test_energy = [e for x, e in calls if len(x) == n_test][-1]  # the final model's
    labels = read_kdd_file(kdd_slice)[KDD99.label].to_numpy(dtype=str)
    split = build(cfg.partition).split(labels, labels == KDD99.normal_label, cfg.seed)[0]
    lines = [kdd_lines[::16][i] for i in split.test_idx]
    return run_dir, test_energy, lines, payload


def _score(run_dir, lines, tmp_path, name="in.csv", **kwargs):
    path = tmp_path / name
    path.write_text("".join(lines))
    out = tmp_path / "scores.csv"
    detector = Detector.load(run_dir)
    options = {"threshold": detector.threshold, "chunk_size": 100_000, "on_bad_line": "fail", **kwargs}
    summary = score_file(detector, path, out, show_progress=False, **options)
    return summary, pd.read_csv(out)


# Bit-identical on the CI machine; other CPUs and torch builds differ in the last bit of a
# float64 matrix product (seen on a 16-core Xeon with torch 2.11: 1e-15 relative).
FLOAT64_ROUNDING = 1e-12


def test_exported_model_reproduces_the_training_runs_test_energies(trained, tmp_path):
    run_dir, test_energy, lines, payload = trained
    summary, scores = _score(run_dir, lines, tmp_path)
    np.testing.assert_allclose(scores["energy"].to_numpy(), test_energy, rtol=FLOAT64_ROUNDING, atol=0)
    np.testing.assert_array_equal(scores["line"], np.arange(1, len(lines) + 1))
    # The saved threshold flags what the run flagged: the same metrics as metrics.json.
    for key in ("test/precision", "test/recall", "test/f1", "test/auroc", "test/avg_precision"):
        assert summary.metrics[key] == pytest.approx(payload["final"][key], abs=1e-12), key
    assert summary.n_flagged == int((test_energy > payload["final"]["test/threshold"]).sum())


def test_a_file_without_labels_scores_the_same(trained, tmp_path):
    run_dir, test_energy, lines, _ = trained
    unlabelled = [line.rsplit(",", 1)[0] + "\n" for line in lines]
    summary, scores = _score(run_dir, unlabelled, tmp_path)
    assert summary.metrics is None and "label" not in scores
    np.testing.assert_allclose(scores["energy"].to_numpy(), test_energy, rtol=FLOAT64_ROUNDING, atol=0)


def test_unseen_categories_are_zeros_and_counted(trained, tmp_path):
    run_dir, _, lines, _ = trained
    changed = list(lines[:50])
    for i in (3, 7):
        f = changed[i].split(",")
        f[2] = "quantum_rpc"  # a service the schema does not have
        changed[i] = ",".join(f)
    summary, scores = _score(run_dir, changed, tmp_path)
    assert summary.unknown_categories == {"protocol_type": 0, "service": 2, "flag": 0}
    assert len(scores) == 50 and np.isfinite(scores["energy"]).all()


@pytest.mark.parametrize("defect", ["1,2,3\n", "0,tcp,http,SF,abc" + ",0" * 37 + ",normal.\n"])
def test_malformed_line_fails_or_is_skipped(trained, tmp_path, defect):
    run_dir, _, lines, _ = trained
    broken = [*lines[:10], defect, *lines[10:20]]
    with pytest.raises(DataError, match="line 11: .*pass on_bad_line=skip"):
        _score(run_dir, broken, tmp_path)
    assert not (tmp_path / "scores.csv").exists()  # nothing half-written
    summary, scores = _score(run_dir, broken, tmp_path, on_bad_line="skip")
    assert [n for n, _ in summary.bad_lines] == [11]
    assert list(scores["line"]) == [*range(1, 11), *range(12, 22)]


def test_chunked_scoring_equals_one_chunk(trained, tmp_path):
    run_dir, _, lines, _ = trained
    (tmp_path / "one").mkdir(), (tmp_path / "chunked").mkdir()
    _, one = _score(run_dir, lines, tmp_path / "one")
    _, chunked = _score(run_dir, lines, tmp_path / "chunked", chunk_size=97)
    assert len(lines) > 97 * 3
    pd.testing.assert_frame_equal(one, chunked)


def test_threshold_for_another_anomaly_ratio(trained):
    detector = Detector.load(trained[0])
    assert detector.threshold_for(detector.anomaly_ratio) == pytest.approx(detector.threshold, rel=1e-3)
    assert detector.threshold_for(0.05) > detector.threshold_for(0.2) > detector.threshold_for(0.5)


def test_missing_or_corrupt_model(tmp_path):
    with pytest.raises(DataError, match="no model at"):
        Detector.load(tmp_path)
    (tmp_path / MODEL_FILE).write_bytes(b"garbage")
    with pytest.raises(DataError, match="corrupt or not an FDAGMM model"):
        Detector.load(tmp_path)


@pytest.mark.slow
def test_score_cli(trained, tmp_path):
    run_dir, _, lines, _ = trained
    data = tmp_path / "traffic.csv.gz"
    data.write_bytes(gzip.compress("".join(lines).encode()))
    out = tmp_path / "scores.csv"
    result = subprocess.run(
        [sys.executable, "src/score.py", f"model={run_dir}", f"input={data}", f"output={out}", "anomaly_ratio=0.1"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"scored {len(lines):,} records" in result.stdout and "AUROC" in result.stdout
    assert len(pd.read_csv(out)) == len(lines)
    bad = subprocess.run([sys.executable, "src/score.py", f"model={tmp_path}", f"input={data}"], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.startswith("error: no model at")
