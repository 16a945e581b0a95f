"""Shared fixtures: the real KDDCUP99 10% file and small slices of it.

The file is read from $FDAGMM_KDD_PATH, else from ../shared/data/ beside the project. Tests
that need it are skipped when it is absent, unless FDAGMM_REQUIRE_DATA=1 (set by CI), where
its absence is an error.

Hypothesis (the property-based tests, marked ``fuzz``) runs the ``quick`` profile unless
$HYPOTHESIS_PROFILE names another: ``make fuzz`` runs ``fuzz``, many more examples each.
"""

import gzip
import os
from pathlib import Path

import pytest
from helpers.real_data import every_nth_record
from hypothesis import HealthCheck, settings

from fdagmm.config import register_configs
from fdagmm.data.kdd99 import read_kdd_file

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_KDD = ROOT.parent / "shared" / "data" / "kddcup.data_10_percent.gz"

register_configs()

# No deadline: an example's time depends on the machine's load, not on the code under test.
settings.register_profile("quick", max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("fuzz", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "quick"))


@pytest.fixture(scope="session")
def kdd_path() -> Path:
    path = Path(os.environ.get("FDAGMM_KDD_PATH", DEFAULT_KDD))
    if not path.is_file():
        message = f"KDDCUP99 10% file not found at {path}; set FDAGMM_KDD_PATH"
        if os.environ.get("FDAGMM_REQUIRE_DATA") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def kdd_lines(kdd_path) -> list[str]:
    with gzip.open(kdd_path, "rt") as f:
        return f.readlines()


@pytest.fixture(scope="session")
def kdd_frame(kdd_path):
    return read_kdd_file(kdd_path)


@pytest.fixture(scope="session")
def kdd_slice(kdd_lines, tmp_path_factory) -> Path:
    """Every 16th record of the real file (30,877 records, every label of note), as gzip."""
    return every_nth_record(kdd_lines, tmp_path_factory.mktemp("data") / "kdd_slice.csv.gz", 16)
