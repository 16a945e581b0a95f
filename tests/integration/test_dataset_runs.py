"""Whole runs on slices of the real NSL-KDD and UNSW-NB15 files and on a CICFlowMeter-style
file derived from UNSW-NB15 (data=csv), one round each, then the exported model scoring
files: its metrics against the run's, headered files by column name in any order, a missing
column refused in one line, and a format-1 model.pt read as KDDCUP99's."""

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers.dataset_files import cic_flow_lines, every_nth, read_lines, write_lines
from hydra import compose, initialize
from sklearn.metrics import roc_auc_score

from fdagmm.data.reading import read_table
from fdagmm.data.schema import load_schema
from fdagmm.detection.detector import MODEL_FILE, Detector
from fdagmm.detection.scoring import score_file
from fdagmm.run.experiment import train

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
NSL = load_schema("nsl_kdd")
UNSW = load_schema("unsw_nb15")


def _cfg(output_dir: Path, *overrides: str):
    with initialize(version_base="1.3", config_path="../../conf"):
        return compose(
            config_name="config",
            overrides=[f"paths.output_dir={output_dir}", "data.cache_dir=null", "trainer.accelerator=cpu", "fed.rounds=1", *overrides],
        )


def _score(run_dir: Path, input_path: Path, output: Path, **options):
    detector = Detector.load(run_dir)
    options = {"threshold": detector.threshold, "chunk_size": 100_000, "on_bad_line": "fail", **options}
    summary = score_file(detector, input_path, output, show_progress=False, **options)
    return summary, pd.read_csv(output, dtype={"out_of_range": str, "label": str}, keep_default_na=False)


# Another process may reduce in float32 with other threads or kernels: an energy's last bit can
# differ and swap a near-tied pair, 1 / (attacks x normal records) ~ 6e-7 of AUROC each. A few
# such swaps, not a wrong model, scaling or mixture.
CROSS_PROCESS_AUROC_TOLERANCE = 1e-5


def _score_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "src/score.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def _assert_one_line_error(result: subprocess.CompletedProcess, *expected: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    for text in expected:
        assert text in lines[0], lines


# NSL-KDD: pooled, tested on KDDTest-21 ---------------------------------------------------------


@pytest.fixture(scope="module")
def nsl_files(nsl_train_path, nsl_test21_path, tmp_path_factory):
    folder = tmp_path_factory.mktemp("nsl")
    train_path = write_lines(folder / "train.txt", every_nth(read_lines(nsl_train_path), 8))  # 3,149 records
    test_path = write_lines(folder / "test21.txt", every_nth(read_lines(nsl_test21_path), 4))  # 2,963 records
    return train_path, test_path


@pytest.fixture(scope="module")
def nsl_run(nsl_files, tmp_path_factory):
    train_path, test_path = nsl_files
    run_dir = tmp_path_factory.mktemp("nsl_run")
    payload = train(_cfg(run_dir, "data=nsl_kdd", "method=pooled", f"data.train_path={train_path}", f"data.test_path={test_path}"))
    return run_dir, payload


def test_nsl_kdd_pooled_run_writes_metrics_with_the_slices_counts(nsl_files, nsl_run):
    train_path, test_path = nsl_files
    run_dir, payload = nsl_run
    on_disk = json.loads((run_dir / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(payload))
    assert on_disk["method"] == "pooled"
    assert 0.0 <= on_disk["final"]["test/auroc"] <= 1.0
    assert all(np.isfinite(v) for v in on_disk["final"].values())
    train_labels = read_table(train_path, NSL).frame["label"]
    test_labels = read_table(test_path, NSL).frame["label"]
    assert len(train_labels) == 3_149 and len(test_labels) == 2_963
    partition = on_disk["partition"]
    # Only the benign records of the training slice train, every one of them once.
    assert sum(c["n_train"] for c in partition.values()) == (train_labels == "normal").sum()
    assert all(c["n_train"] > 0 for c in partition.values())
    # Every client is tested on the whole test file.
    for counts in partition.values():
        assert counts["n_test"] == len(test_labels)
        assert counts["n_test_anomalies"] == (test_labels != "normal").sum()
    detector = Detector.load(run_dir)
    assert detector.dataset == "nsl_kdd" and detector.encoder.schema == NSL


def test_score_cli_on_the_test_file_gives_the_runs_auroc(nsl_files, nsl_run, tmp_path):
    _, test_path = nsl_files
    run_dir, payload = nsl_run
    output = tmp_path / "scores.csv"
    result = _score_cli(f"model={run_dir}", f"input={test_path}", f"output={output}")
    assert result.returncode == 0, result.stderr
    assert "scored 2,963 records" in result.stdout
    scores = pd.read_csv(output, dtype={"label": str})
    assert len(scores) == 2_963 and scores["line"].tolist() == list(range(1, 2_964))
    auroc = roc_auc_score(scores["label"] != "normal", scores["energy"])
    assert auroc == pytest.approx(payload["final"]["test/auroc"], abs=CROSS_PROCESS_AUROC_TOLERANCE)
    # In process: the summary's metrics are the run's.
    summary, _ = _score(run_dir, test_path, tmp_path / "again.csv")
    for key in ("test/auroc", "test/avg_precision", "test/precision", "test/recall", "test/f1"):
        assert summary.metrics[key] == pytest.approx(payload["final"][key], abs=1e-9), key


def test_format_1_model_loads_as_kdd99_and_scores_the_same(nsl_files, nsl_run, tmp_path):
    """A model.pt written before models knew their data set (format 1, with its categorical
    columns under "categories") is a KDDCUP99 model; NSL-KDD's features are KDDCUP99's."""
    _, test_path = nsl_files
    run_dir, _ = nsl_run
    payload = torch.load(run_dir / MODEL_FILE, map_location="cpu", weights_only=True)
    assert payload["format"] == 2 and payload["dataset"] == "nsl_kdd"
    kdd99 = load_schema("kdd99")
    old = {k: v for k, v in payload.items() if k not in ("dataset", "schema", "columns")}
    old["format"] = 1
    old["categories"] = {c: list(kdd99.categorical[c].values) for c in kdd99.categorical_features}
    torch.save(old, tmp_path / MODEL_FILE)
    detector = Detector.load(tmp_path / MODEL_FILE)
    assert detector.dataset == "kdd99"
    assert detector.encoder.schema == kdd99
    assert detector.encoder.dim == Detector.load(run_dir).encoder.dim
    # The NSL-KDD test records as KDDCUP99 lines without their label: the same energies.
    lines = [",".join(line.split(",")[:41]) + "\n" for line in read_lines(test_path)]
    unlabelled = write_lines(tmp_path / "unlabelled.txt", lines)
    _, as_kdd = _score(tmp_path, unlabelled, tmp_path / "kdd.csv")
    _, as_nsl = _score(run_dir, test_path, tmp_path / "nsl.csv")
    assert len(as_kdd) == 2_963
    np.testing.assert_array_equal(as_kdd["energy"].to_numpy(), as_nsl["energy"].to_numpy())


# UNSW-NB15: Dirichlet clients, the seeded benign split -----------------------------------------


@pytest.fixture(scope="module")
def unsw_slice(unsw_path, tmp_path_factory) -> Path:
    """The header and every 20th record (4,117 records, benign and attacks)."""
    return write_lines(tmp_path_factory.mktemp("unsw") / "slice.csv", every_nth(read_lines(unsw_path), 20, header=True))


@pytest.fixture(scope="module")
def unsw_run(unsw_slice, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("unsw_run")
    payload = train(_cfg(run_dir, "data=unsw_nb15", "partition=dirichlet", "partition.num_clients=5", f"data.train_path={unsw_slice}"))
    return run_dir, payload


def test_unsw_nb15_dirichlet_run_with_five_clients(unsw_slice, unsw_run):
    run_dir, payload = unsw_run
    on_disk = json.loads((run_dir / "metrics.json").read_text())
    assert on_disk["n_clients"] == 5 and on_disk["scenario"].startswith("dirichlet_k5")
    assert sorted(on_disk["partition"]) == [f"client{k}" for k in range(5)]
    assert sorted(on_disk["per_client"]) == [f"client{k}" for k in range(5)]
    assert 0.0 <= on_disk["final"]["test/auroc"] <= 1.0
    labels = read_table(unsw_slice, UNSW).frame["label"]
    n_benign, n_attacks = int((labels == "0").sum()), int((labels == "1").sum())
    assert n_benign + n_attacks == 4_117 and n_benign > 0 and n_attacks > 0
    # data.test_fraction=0.5 of the benign records and of the attacks test
    n_test_benign, n_test_attacks = int(round(0.5 * n_benign)), int(round(0.5 * n_attacks))
    assert sum(c["n_train"] for c in on_disk["partition"].values()) == n_benign - n_test_benign
    for counts in on_disk["partition"].values():
        assert counts["n_test"] == n_test_benign + n_test_attacks
        assert counts["n_test_anomalies"] == n_test_attacks
    assert Detector.load(run_dir).encoder.schema == UNSW


def test_headered_file_with_shuffled_columns_scores_identically(unsw_slice, unsw_run, tmp_path):
    run_dir, _ = unsw_run
    lines = read_lines(unsw_slice)
    table = [line.rstrip("\n").split(",") for line in lines]
    order = np.random.default_rng(7).permutation(len(table[0]))
    assert list(order) != list(range(len(order)))
    shuffled = write_lines(tmp_path / "shuffled.csv", [",".join(row[j] for j in order) + "\n" for row in table])
    summary, original = _score(run_dir, unsw_slice, tmp_path / "original.csv")
    shuffled_summary, reordered = _score(run_dir, shuffled, tmp_path / "reordered.csv")
    assert len(original) == 4_117
    pd.testing.assert_frame_equal(reordered, original)
    assert shuffled_summary.metrics == summary.metrics and summary.metrics is not None


def test_file_lacking_a_column_is_refused_in_one_line(unsw_slice, unsw_run, tmp_path):
    run_dir, _ = unsw_run
    table = [line.rstrip("\n").split(",") for line in read_lines(unsw_slice)]
    j = table[0].index("sttl")
    lacking = write_lines(tmp_path / "lacking.csv", [",".join(row[:j] + row[j + 1 :]) + "\n" for row in table])
    output = tmp_path / "scores.csv"
    result = _score_cli(f"model={run_dir}", f"input={lacking}", f"output={output}")
    _assert_one_line_error(result, "lacks the columns ['sttl']", str(lacking))
    assert not output.exists()


# data=csv: a site's own flow file, nothing but overrides -----------------------------------------


@pytest.fixture(scope="module")
def flow_lines(unsw_path) -> list[str]:
    return every_nth(read_lines(unsw_path), 20, header=True)


def test_csv_data_set_with_only_overrides_trains(flow_lines, tmp_path):
    flows = write_lines(tmp_path / "flows.csv", cic_flow_lines(flow_lines))
    payload = train(
        _cfg(tmp_path / "run", "data=csv", f"data.train_path={flows}", "data.label_column=Label", "data.benign_labels=[BENIGN]",
             "data.drop_columns=[Flow ID,Timestamp]", "partition.num_clients=3")
    )  # fmt: skip
    assert 0.0 <= payload["final"]["test/auroc"] <= 1.0
    assert payload["n_clients"] == 3
    labels = [line.rstrip("\n").rsplit(",", 1)[1] for line in flow_lines[1:]]
    n_benign = labels.count("0")
    partition = payload["partition"].values()
    # No test file: each client's own records split; every record trains or tests, once.
    assert sum(c["n_train"] + c["n_test"] - c["n_test_anomalies"] for c in partition) == n_benign
    assert sum(c["n_test_anomalies"] for c in partition) == len(labels) - n_benign
    schema = Detector.load(tmp_path / "run").encoder.schema
    assert {"Flow ID", "Timestamp", "Src IP", "Id"} <= set(schema.drop)
    assert schema.categorical_features == ["Protocol", "Service", "State"]
    assert schema.label == "Label" and len(schema.features) == 42


def test_unlabelled_csv_data_set_trains_and_says_it_measured_nothing(flow_lines, tmp_path, caplog):
    flows = write_lines(tmp_path / "flows.csv", cic_flow_lines(flow_lines, labelled=False))
    with caplog.at_level(logging.INFO):
        payload = train(_cfg(tmp_path / "run", "data=csv", f"data.train_path={flows}", "data.label_column=null", "partition.num_clients=2"))
    # No detection metric; only the threshold model.pt flags at (set on training energies).
    assert set(payload["final"]) <= {"test/threshold"}, payload["final"]
    assert all(set(m) <= {"test/threshold"} for m in payload["per_client"].values())
    assert sum(c["n_train"] for c in payload["partition"].values()) == len(flow_lines) - 1  # every record trains
    assert all(c["n_test"] == 0 for c in payload["partition"].values())
    said = [r.getMessage() for r in caplog.records if "data.label_column=null" in r.getMessage()]
    assert len(said) == 1 and "no labels" in said[0] and "model.pt" in said[0], caplog.text
    # Its model scores the file (no labels: no metrics).
    summary, scores = _score(tmp_path / "run", flows, tmp_path / "scores.csv")
    assert summary.metrics is None and len(scores) == len(flow_lines) - 1
    assert np.isfinite(scores["energy"]).all()
