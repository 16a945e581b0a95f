"""Shared fixtures: the real data files (KDDCUP99 10%, NSL-KDD, UNSW-NB15) and slices of them.

The KDDCUP99 file is read from $FDAGMM_KDD_PATH, the others from $FDAGMM_DATA_DIR; both
default to ../shared/data/ beside the project. Tests that need a file are skipped when it is
absent, unless FDAGMM_REQUIRE_DATA=1 (set by CI), where its absence is an error.

Hypothesis (the property-based tests, marked ``fuzz``) runs the ``quick`` profile unless
$HYPOTHESIS_PROFILE names another: ``make fuzz`` runs ``fuzz``, many more examples each.
"""

import gzip
import os
from pathlib import Path

import pandas as pd
import pytest
import torch
from helpers.real_data import every_nth_record
from hypothesis import HealthCheck, settings

from fdagmm.config import register_configs
from fdagmm.data.reading import read_table
from fdagmm.data.schema import load_schema

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
DEFAULT_KDD = SHARED_DATA / "kddcup.data_10_percent.gz"

register_configs()

# No deadline: an example's time depends on the machine's load, not on the code under test.
settings.register_profile("quick", max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("fuzz", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "quick"))


def _required(path: Path, what: str) -> Path:
    if not path.is_file():
        message = f"{what} not found at {path}"
        if os.environ.get("FDAGMM_REQUIRE_DATA") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(autouse=True)
def _torch_threads_restored():
    """A run with torch_threads=N sets the process's thread count, which would change how the
    later tests' floats are summed: each test gets the count it started with back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def kdd_path() -> Path:
    return _required(Path(os.environ.get("FDAGMM_KDD_PATH", DEFAULT_KDD)), "KDDCUP99 10% file (set FDAGMM_KDD_PATH)")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The folder of the NSL-KDD and UNSW-NB15 files ($FDAGMM_DATA_DIR, else ../shared/data)."""
    return Path(os.environ.get("FDAGMM_DATA_DIR", SHARED_DATA))


def _shared(data_dir: Path, name: str) -> Path:
    return _required(data_dir / name, f"{name} (set FDAGMM_DATA_DIR)")


@pytest.fixture(scope="session")
def nsl_train_path(data_dir) -> Path:  # NSL-KDD's official 20% training subset
    return _shared(data_dir, "KDDTrain+_20Percent.txt.gz")


@pytest.fixture(scope="session")
def nsl_test_path(data_dir) -> Path:
    return _shared(data_dir, "KDDTest+.txt.gz")


@pytest.fixture(scope="session")
def nsl_test21_path(data_dir) -> Path:
    return _shared(data_dir, "KDDTest-21.txt.gz")


@pytest.fixture(scope="session")
def unsw_path(data_dir) -> Path:  # UNSW-NB15's official testing set
    return _shared(data_dir, "UNSW_NB15_testing-set.csv.gz")


@pytest.fixture(scope="session")
def kdd_lines(kdd_path) -> list[str]:
    with gzip.open(kdd_path, "rt") as f:
        return f.readlines()


@pytest.fixture(scope="session")
def kdd_frame(kdd_path):
    return read_table(kdd_path, load_schema("kdd99")).frame


@pytest.fixture(scope="session")
def kdd_slice(kdd_lines, tmp_path_factory) -> Path:
    """Every 16th record of the real file (30,877 records, every label of note), as gzip."""
    return every_nth_record(kdd_lines, tmp_path_factory.mktemp("data") / "kdd_slice.csv.gz", 16)


@pytest.fixture(scope="session")
def unsw_scoring_run(unsw_path, tmp_path_factory):
    """A one-round UNSW-NB15 model trained on every 20th record of the file, 600 other records
    (and the header), and score_file's scores for them: what live scoring is checked against."""
    from helpers.dataset_files import every_nth, read_lines, write_lines
    from hydra import compose, initialize_config_dir

    from fdagmm.detection.detector import Detector
    from fdagmm.detection.scoring import score_file
    from fdagmm.run.experiment import train

    folder = tmp_path_factory.mktemp("live")
    lines = read_lines(unsw_path)
    train_path = write_lines(folder / "train.csv", every_nth(lines, 20, header=True))
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        cfg = compose(config_name="config", overrides=[
            f"paths.output_dir={folder / 'run'}", "data=unsw_nb15", f"data.train_path={train_path}", "data.cache_dir=null",
            "trainer.accelerator=cpu", "fed.rounds=1", "model.compile=false",
        ])  # fmt: skip
    train(cfg)
    header, records = lines[0], lines[7::137][:600]
    scored_file = write_lines(folder / "records.csv", [header, *records])
    detector = Detector.load(folder / "run")
    score_file(detector, scored_file, folder / "scores.csv", detector.threshold, 100_000, "fail", show_progress=False)
    return folder / "run", header, records, pd.read_csv(folder / "scores.csv")
