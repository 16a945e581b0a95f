"""The reader (fdagmm.data.reading) on files generated from a schema (helpers.schema_records),
for every built-in schema and for drawn ones: a well-formed file reads as exactly its records
(same values, same count, same line numbers), and one defect in one record (a field too many,
a field too few, a number that is not one) is named with its line, in one line."""

import re

import pandas as pd
import pytest
from helpers.schema_records import DEFECTS, schema_files, table_schemas
from hypothesis import given
from hypothesis import strategies as st

from fdagmm.data.reading import iter_chunks, read_table, where
from fdagmm.data.schema import load_schema
from fdagmm.errors import DataError

pytestmark = pytest.mark.fuzz

BUILT_IN = ["kdd99", "nsl_kdd", "unsw_nb15"]
SCHEMAS = {name: load_schema(name) for name in BUILT_IN}
# The built-in schemas as runs override them: unlabelled, more columns dropped, another policy.
SCHEMAS["unsw_nb15 unlabelled"] = SCHEMAS["unsw_nb15"].with_overrides(label_column=None)
SCHEMAS["nsl_kdd unlabelled"] = SCHEMAS["nsl_kdd"].with_overrides(label_column=None)
SCHEMAS["unsw_nb15 attack_cat label"] = SCHEMAS["unsw_nb15"].with_overrides(label_column="attack_cat", benign_labels=["Normal"], drop_columns=["sttl"])
SCHEMAS["nsl_kdd non_finite=clip"] = SCHEMAS["nsl_kdd"].with_overrides(non_finite="clip", drop_columns=["service"])


@pytest.fixture(scope="module")
def path(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz") / "records.csv"


def _read_chunks(path, schema, chunk_size, training=False):
    chunks = list(iter_chunks(path, schema, chunk_size, training=training))
    # A chunk of blank or bad lines only has no records: a scorer skips it (score_file does).
    frames = [c.frame for c in chunks if len(c.frame)]
    frame = pd.concat(frames, ignore_index=True) if frames else None
    lines = [int(n) for c in chunks for n in c.line_numbers]
    bad = [b for c in chunks for b in c.bad_lines]
    return frame, lines, bad, chunks


def _check_well_formed(path, schema, file, chunk_size):
    path.write_bytes(file.data)
    expected = file.expected_frame(schema)
    table = read_table(path, schema, chunk_size=chunk_size)
    pd.testing.assert_frame_equal(table.frame, expected, check_exact=True, check_like=True)
    assert len(table.frame) == len(file.records)
    assert table.n_dropped == 0 and table.n_clipped == 0
    # Scoring reads the same records, each with its own line number, and names no line.
    frame, lines, bad, _ = _read_chunks(path, schema, chunk_size)
    assert bad == []
    assert lines == file.record_lines
    pd.testing.assert_frame_equal(frame, expected, check_exact=True, check_like=True)


@pytest.mark.parametrize("name", list(SCHEMAS))
@given(data=st.data(), chunk_size=st.integers(1, 9))
def test_well_formed_file_reads_as_exactly_its_records(path, name, data, chunk_size):
    schema = SCHEMAS[name]
    _check_well_formed(path, schema, data.draw(schema_files(schema)), chunk_size)


@given(data=st.data(), chunk_size=st.integers(1, 9))
def test_any_schemas_well_formed_file_reads_as_exactly_its_records(path, data, chunk_size):
    schema = data.draw(table_schemas())
    _check_well_formed(path, schema, data.draw(schema_files(schema)), chunk_size)


@pytest.mark.parametrize("name", BUILT_IN)
@given(data=st.data(), chunk_size=st.integers(1, 9))
def test_unlabelled_file_scores_as_exactly_its_records(path, name, data, chunk_size):
    schema = SCHEMAS[name]
    file = data.draw(schema_files(schema, labelled=False))
    path.write_bytes(file.data)
    frame, lines, bad, _ = _read_chunks(path, schema, chunk_size)
    assert bad == [] and lines == file.record_lines
    assert schema.label not in frame
    pd.testing.assert_frame_equal(frame, file.expected_frame(schema), check_exact=True, check_like=True)


def _assert_names_the_defect(message: str, file, schema) -> None:
    assert "\n" not in message and "\r" not in message, message
    named = re.search(r"\bline (\d+)\b", message)
    assert named, f"names no line: {message}"
    assert int(named.group(1)) == file.defect_line, f"blames line {named.group(1)}, not the damaged {file.defect_line}: {message}"
    if file.defect == "not a number":
        value = file.records[file.record_lines.index(file.defect_line)][file.defect_column]
        assert f"line {file.defect_line}, column {file.defect_column}: {value!r} is not a number" in message, message
    else:
        fields = file.n_fields[file.defect_line]
        assert (
            f"line {file.defect_line}: {fields} fields instead of {len(file.columns)}" in message
            # A headerless file whose only record is damaged does not look like the data set at all.
            or f"line {file.defect_line} has {fields} comma-separated fields" in message
        ), message


@pytest.mark.parametrize("name", BUILT_IN)
@pytest.mark.parametrize("defect", DEFECTS)
@given(data=st.data(), chunk_size=st.integers(1, 9))
def test_one_defect_is_named_with_its_line_when_training(path, name, defect, data, chunk_size):
    schema = SCHEMAS[name]
    file = data.draw(schema_files(schema, defect=defect))
    path.write_bytes(file.data)
    with pytest.raises(DataError) as e:
        read_table(path, schema, chunk_size=chunk_size)
    _assert_names_the_defect(str(e.value), file, schema)


@pytest.mark.parametrize("name", BUILT_IN)
@pytest.mark.parametrize("defect", DEFECTS)
@given(data=st.data(), chunk_size=st.integers(1, 9))
def test_scoring_lists_the_damaged_line_and_reads_every_other(path, name, defect, data, chunk_size):
    schema = SCHEMAS[name]
    # Three records at least: the majority of a headerless file's lines says its layout.
    file = data.draw(schema_files(schema, defect=defect, min_records=3))
    path.write_bytes(file.data)
    frame, lines, bad, _ = _read_chunks(path, schema, chunk_size)
    assert [n for n, _ in bad] == [file.defect_line]
    _assert_names_the_defect(where(*bad[0]), file, schema)
    assert lines == [n for n in file.record_lines if n != file.defect_line]
    pd.testing.assert_frame_equal(frame, file.expected_frame(schema), check_exact=True, check_like=True)
