"""The readers on generated KDDCUP99-shaped files: a one-line error that names a damaged line,
or every line accounted for, with finite numbers."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from helpers.kdd_fuzz import KDDFile, assert_one_line_naming_a_line, kdd_files

from helpers.kdd import KDD99, iter_record_chunks, read_kdd_file
from fdagmm.errors import DataError

pytestmark = pytest.mark.fuzz


@pytest.fixture(scope="module")
def path(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz") / "traffic.csv"


def _assert_finite_numbers(frame: pd.DataFrame) -> None:
    assert np.isfinite(frame[KDD99.numeric_features].to_numpy(dtype=np.float64)).all()


@given(file=kdd_files(), chunk_size=st.integers(1, 8))
def test_scoring_reader_parses_or_reports_every_line(path, file, chunk_size):
    path.write_bytes(file.data)
    try:
        chunks = list(iter_record_chunks(path, chunk_size))
    except DataError as e:  # only a file none of whose first lines is a record
        assert_one_line_naming_a_line(e, file.damaged)
        return
    parsed = [int(n) for c in chunks for n in c.line_numbers]
    bad = [n for c in chunks for n, _ in c.bad_lines]
    assert len(parsed + bad) == len(set(parsed + bad))  # no line twice
    assert set(range(1, file.n_lines + 1)) - set(parsed + bad) <= file.damaged  # only a blank line is passed over
    assert set(bad) <= file.damaged
    for chunk in chunks:
        assert len(chunk.frame) == len(chunk.line_numbers)
        _assert_finite_numbers(chunk.frame)
        for column in [*KDD99.categorical_features, *([KDD99.label] if KDD99.label in chunk.frame else [])]:
            assert chunk.frame[column].map(type).eq(str).all(), column


@given(file=kdd_files(labelled=True))
@example(file=KDDFile(b"", 0, {1}))  # one blank line without an ending: no line, no record
def test_training_reader_reads_every_record_or_names_a_damaged_line(path, file):
    path.write_bytes(file.data)
    try:
        frame = read_kdd_file(path)
    except DataError as e:
        if str(e).endswith(": no records in the file"):
            # Only blank lines (or none): every line the file has is a damaged one.
            assert file.n_lines <= len(file.damaged), str(e)
            return
        assert_one_line_naming_a_line(e, file.damaged)
        return
    assert file.n_lines - len(file.damaged) <= len(frame) <= file.n_lines  # a blank line is no record
    _assert_finite_numbers(frame)
    for column, vocabulary in KDD99.categories.items():
        assert frame[column].isin(vocabulary).all()
    assert frame[KDD99.label].isin(KDD99.known_labels).all()
