"""The Python API on the real UNSW-NB15 file: a DataFrame of a built-in data set's columns
trains a detector whose energies are score.py's for the same records, and federate runs
src/train.py's federation from the same overrides."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers.dataset_files import every_nth, read_lines, write_lines
from helpers.energies import assert_same_energies

import fdagmm
from fdagmm.detection.detector import Detector
from fdagmm.detection.scoring import score_file
from fdagmm.errors import DataError

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def unsw_frame(unsw_path, tmp_path_factory) -> tuple[pd.DataFrame, Path]:
    """Every 40th record of the file (labels included), as a frame and as a file."""
    path = write_lines(tmp_path_factory.mktemp("api") / "records.csv", every_nth(read_lines(unsw_path), 40, header=True))
    return pd.read_csv(path), path


def test_a_frame_of_a_data_sets_columns_fits_the_model_score_py_reads(unsw_frame, tmp_path):
    frame, path = unsw_frame
    detector = fdagmm.DAGMM(contamination=0.1, data="unsw_nb15", epochs=1, output_dir=tmp_path / "run").fit(frame)
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["n_clients"] == 1  # the run's files are kept
    detector.save(tmp_path / "model.pt")
    summary = score_file(Detector.load(tmp_path / "model.pt"), path, tmp_path / "scores.csv", detector.threshold_, 100_000, "fail", show_progress=False)
    scores = pd.read_csv(tmp_path / "scores.csv")
    assert summary.n_scored == len(frame)
    assert_same_energies(detector.decision_scores_, scores["energy"])
    np.testing.assert_array_equal(detector.predict(frame), scores["is_anomaly"])


def test_a_frame_missing_a_feature_is_named(unsw_frame):
    frame, _ = unsw_frame
    with pytest.raises(DataError, match=r"X.iloc: the records lack the columns \['dur'\]"):
        fdagmm.DAGMM(data="unsw_nb15", epochs=1).fit(frame.drop(columns=["dur"]))


def test_federate_is_train_py_with_the_same_overrides(kdd_slice, tmp_path):
    overrides = [f"data.train_path={kdd_slice}", "scenario=s4", "fed.rounds=1", "trainer.accelerator=cpu", "model.compile=false"]
    detector, metrics = fdagmm.federate(overrides, output_dir=tmp_path / "api")
    subprocess.run([sys.executable, "src/train.py", *overrides, f"hydra.run.dir={tmp_path / 'cli'}"], cwd=ROOT, check=True, capture_output=True)
    by_cli = json.loads((tmp_path / "cli" / "metrics.json").read_text())
    assert json.loads(json.dumps(metrics["final"])) == by_cli["final"]
    assert detector.threshold_ == Detector.load(tmp_path / "cli").threshold
