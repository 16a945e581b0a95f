"""The streaming reader (fdagmm.data.reading) on small files written from a schema: harmless
variants read as the same records; a bad line is a one-line DataError naming its line and
column (training) or is listed while the other lines are read (scoring)."""

import csv
import gzip
import io

import numpy as np
import pandas as pd
import pytest

from fdagmm.data.reading import iter_chunks, read_table, where
from fdagmm.data.schema import TableSchema, load_schema
from fdagmm.errors import DataError

KDD99 = load_schema("kdd99")
NSL = load_schema("nsl_kdd")
UNSW = load_schema("unsw_nb15")
N = 12  # records per generated file


def _value(schema, column: str, i: int) -> str:
    """The text of record ``i``'s ``column``: varied, valid under the schema."""
    if column == schema.label:
        benign = schema.benign_labels[0]
        attacks = schema.attack_labels or ("neptune",)
        return (benign if i % 3 else attacks[i % len(attacks)]) + schema.label_suffix
    if column == schema.attack_category:
        return "Normal" if i % 3 else "Exploits"
    if column in schema.drop:
        return str(1000 + i)
    if column in schema.categorical:
        values = schema.categorical[column].values
        return values[(i + len(column)) % len(values)]
    kind = schema.numeric[column].kind
    if kind == "unit":
        return ["0", "1", "0.25", "0.5"][i % 4]
    if kind == "bound":
        return str(int(schema.numeric[column].low) + i)
    return str(i * 37 + len(column))  # log: a count


def _rows(schema, n: int = N) -> list[list[str]]:
    return [[_value(schema, c, i) for c in schema.columns] for i in range(n)]


def _expected(schema, rows: list[list[str]]) -> pd.DataFrame:
    """The frame read_table must return for ``rows`` (in the schema's column order)."""
    by_column = {c: [row[j] for row in rows] for j, c in enumerate(schema.columns)}
    frame = pd.DataFrame({c: np.array(by_column[c], dtype=np.float64) for c in schema.numeric_features})
    for c in schema.categorical_features:
        frame[c] = pd.Series(by_column[c], dtype=object)
    for c in schema.info_columns:
        values = by_column[c]
        if c == schema.label and schema.label_suffix:
            values = [v.removesuffix(schema.label_suffix) for v in values]
        frame[c] = pd.Series(values, dtype=object)
    return frame


def _text(schema, rows: list[list[str]], columns: list[str] | None = None, ending: str = "\n", quote: bool = False) -> str:
    """A CSV file's text: the header when the schema has one, each row in ``columns``' order."""
    if columns is None:  # as written (a row may have a field too many or too few)
        columns, lines = list(schema.columns), [list(row) for row in rows]
    else:
        order = [list(schema.columns).index(c) for c in columns]
        lines = [[row[j] for j in order] for row in rows]
    if schema.header:
        lines.insert(0, columns)
    if quote:
        return "".join(",".join(f'"{f}"' for f in fields) + ending for fields in lines)
    return "".join(",".join(fields) + ending for fields in lines)


def assert_same_records(frame: pd.DataFrame, expected: pd.DataFrame, **kwargs) -> None:
    """The same columns (in any order), values and types."""
    pd.testing.assert_frame_equal(frame, expected, check_like=True, **kwargs)


def _write(tmp_path, text: str | bytes, name: str = "records.csv"):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def _one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message and "\r" not in message, message
    return message


# Harmless variants: the same records -----------------------------------------------------------


@pytest.mark.parametrize("schema", [KDD99, NSL, UNSW], ids=lambda s: s.name)
def test_plain_file_reads_exactly_its_records(tmp_path, schema):
    rows = _rows(schema)
    table = read_table(_write(tmp_path, _text(schema, rows)), schema)
    assert_same_records(table.frame, _expected(schema, rows))
    assert sorted(table.frame.columns) == sorted([*schema.features, *schema.info_columns])
    assert table.n_dropped == 0 and table.n_clipped == 0
    for c in [*schema.categorical_features, *schema.info_columns]:
        assert table.frame[c].map(type).eq(str).all(), c


def _variants(schema, rows):
    text = _text(schema, rows)
    variants = {
        "trailing blank line": text + "\n",
        "trailing blank line, CRLF": _text(schema, rows, ending="\r\n") + "\r\n",
        "CRLF": _text(schema, rows, ending="\r\n"),
        "no final line ending": text.rstrip("\n"),
        "UTF-8 BOM": "\ufeff" + text,
        "quoted fields": _text(schema, rows, quote=True),
        "stray blank line": text.replace("\n", "\n\n", 3),
        "gzip": gzip.compress(text.encode()),
        "BOM, CRLF, gzip": gzip.compress(("\ufeff" + _text(schema, rows, ending="\r\n")).encode("utf-8")),
    }
    if schema.header:
        shuffled = list(schema.columns)
        np.random.default_rng(0).shuffle(shuffled)
        variants["columns in another order"] = _text(schema, rows, columns=shuffled)
        variants["reversed columns, BOM, CRLF"] = "\ufeff" + _text(schema, rows, columns=list(reversed(schema.columns)), ending="\r\n")
    return variants


@pytest.mark.parametrize("schema", [KDD99, NSL, UNSW], ids=lambda s: s.name)
def test_harmless_variants_read_as_the_same_records(tmp_path, schema):
    rows = _rows(schema)
    plain = read_table(_write(tmp_path, _text(schema, rows), "plain.csv"), schema).frame
    assert_same_records(plain, _expected(schema, rows))
    for name, text in _variants(schema, rows).items():
        table = read_table(_write(tmp_path, text), schema)
        pd.testing.assert_frame_equal(table.frame, plain, obj=name)  # identical, column order included


def test_kdd_file_ending_with_one_blank_line_is_accepted(tmp_path):
    """A regression: a KDD-format file whose last line is blank was refused."""
    rows = _rows(KDD99, 5)
    path = _write(tmp_path, _text(KDD99, rows) + "\n")
    table = read_table(path, KDD99)
    assert len(table.frame) == 5
    assert_same_records(table.frame, _expected(KDD99, rows))
    # Scoring too: every record read, no bad line, the blank line 6 neither.
    chunks = list(iter_chunks(path, KDD99, chunk_size=2))
    assert [int(n) for c in chunks for n in c.line_numbers] == [1, 2, 3, 4, 5]
    assert [b for c in chunks for b in c.bad_lines] == []


def test_a_one_record_kdd_file_with_a_trailing_blank_line(tmp_path):
    rows = _rows(KDD99, 1)
    table = read_table(_write(tmp_path, _text(KDD99, rows) + "\n"), KDD99)
    assert_same_records(table.frame, _expected(KDD99, rows))


def test_quoted_field_may_hold_a_comma(tmp_path):
    """A hashed category with a comma in it, quoted: one field, read as written."""
    rows = _rows(UNSW, 4)
    j = list(UNSW.columns).index("proto")
    rows[2][j] = "tcp,v6"
    text = "".join(",".join(f'"{f}"' if "," in f else f for f in fields) + "\n" for fields in [list(UNSW.columns), *rows])
    frame = read_table(_write(tmp_path, text), UNSW).frame
    assert list(frame["proto"]) == [r[j] for r in rows]
    assert_same_records(frame, _expected(UNSW, rows))


def test_chunk_size_does_not_change_the_records(tmp_path):
    rows = _rows(UNSW, 25)
    path = _write(tmp_path, _text(UNSW, rows))
    whole = read_table(path, UNSW).frame
    assert len(whole) == 25
    assert_same_records(read_table(path, UNSW, chunk_size=4).frame, whole)
    chunks = list(iter_chunks(path, UNSW, chunk_size=4, training=True))
    assert [len(c.frame) for c in chunks] == [4] * 6 + [1]
    assert np.concatenate([c.line_numbers for c in chunks]).tolist() == list(range(2, 27))  # line 1 is the header


def test_headered_file_may_hold_the_schemas_dropped_columns_or_not(tmp_path):
    """id is dropped by the UNSW schema: a file without it reads the same records."""
    rows = _rows(UNSW)
    without_id = [c for c in UNSW.columns if c != "id"]
    frame = read_table(_write(tmp_path, _text(UNSW, rows, columns=without_id)), UNSW).frame
    assert_same_records(frame, _expected(UNSW, rows))


# Bad files and lines: one line naming the line and column --------------------------------------


def test_header_missing_a_column_names_it(tmp_path):
    rows = _rows(UNSW)
    columns = [c for c in UNSW.columns if c != "sttl"]
    path = _write(tmp_path, _text(UNSW, rows, columns=columns))
    with pytest.raises(DataError) as e:
        read_table(path, UNSW)
    message = _one_line(e)
    assert "lacks the columns ['sttl']" in message and str(path) in message


def test_header_missing_the_label_names_it_when_training_only(tmp_path):
    rows = _rows(UNSW)
    columns = [c for c in UNSW.columns if c != "label"]
    path = _write(tmp_path, _text(UNSW, rows, columns=columns))
    with pytest.raises(DataError) as e:
        read_table(path, UNSW)
    message = _one_line(e)
    assert "lacks the columns ['label']" in message and "data.label_column=null" in message
    # Scoring reads an unlabelled file.
    frame = pd.concat([c.frame for c in iter_chunks(path, UNSW, chunk_size=100)])
    assert "label" not in frame and len(frame) == N


def test_unknown_extra_column_is_named(tmp_path):
    rows = [[*row, "x"] for row in _rows(UNSW)]
    text = "".join(",".join(fields) + "\n" for fields in [[*UNSW.columns, "Flow ID"], *rows])
    with pytest.raises(DataError) as e:
        read_table(_write(tmp_path, text), UNSW)
    message = _one_line(e)
    assert "does not know: ['Flow ID']" in message and "data.drop_columns" in message


def test_duplicated_header_column_is_named(tmp_path):
    rows = [[*row, row[1]] for row in _rows(UNSW)]
    text = "".join(",".join(fields) + "\n" for fields in [[*UNSW.columns, "dur"], *rows])
    with pytest.raises(DataError, match=r"names \['dur'\] more than once"):
        read_table(_write(tmp_path, text), UNSW)


@pytest.mark.parametrize("schema", [NSL, UNSW], ids=lambda s: s.name)
@pytest.mark.parametrize("change, why", [(-1, "{n} fields instead of {m}"), (+1, "{n} fields instead of {m}")])
def test_too_few_or_too_many_fields_name_the_line(tmp_path, schema, change, why):
    rows = _rows(schema)
    rows[4] = rows[4][:-1] if change < 0 else [*rows[4], "0"]
    path = _write(tmp_path, _text(schema, rows))
    line = 5 + schema.header  # the header is line 1
    with pytest.raises(DataError) as e:
        read_table(path, schema)
    m = len(schema.columns)
    assert _one_line(e) == f"{path}: line {line}: " + why.format(n=m + change, m=m)


def test_label_outside_a_closed_label_set_names_the_line_and_label(tmp_path):
    rows = _rows(KDD99)
    rows[6][-1] = "martian."
    path = _write(tmp_path, _text(KDD99, rows))
    with pytest.raises(DataError) as e:
        read_table(path, KDD99)
    message = _one_line(e)
    assert message.startswith(f"{path}: line 7: unknown label 'martian'"), message
    assert "smurf" in message  # lists the schema's labels


def test_unsw_label_outside_zero_and_one_is_refused(tmp_path):
    rows = _rows(UNSW)
    rows[2][list(UNSW.columns).index("label")] = "2"
    with pytest.raises(DataError, match=r": line 4: unknown label '2'"):
        read_table(_write(tmp_path, _text(UNSW, rows)), UNSW)


def test_open_label_set_takes_any_label(tmp_path):
    rows = _rows(NSL)
    rows[6][list(NSL.columns).index("label")] = "mscan"  # only in KDDTest+
    frame = read_table(_write(tmp_path, _text(NSL, rows)), NSL).frame
    assert frame["label"].iloc[6] == "mscan"


@pytest.mark.parametrize("schema, column", [(NSL, "src_bytes"), (UNSW, "sbytes"), (UNSW, "ct_srv_dst")], ids=str)
@pytest.mark.parametrize("value", ["abc", "0x1F", "1e", "--1", "NA"])
def test_non_numeric_value_names_line_and_column(tmp_path, schema, column, value):
    rows = _rows(schema)
    rows[3][list(schema.columns).index(column)] = value
    path = _write(tmp_path, _text(schema, rows))
    with pytest.raises(DataError) as e:
        read_table(path, schema)
    assert _one_line(e) == f"{path}: line {4 + schema.header}, column {column}: {value!r} is not a number"


def test_unknown_category_in_a_closed_vocabulary_is_refused_in_training_only(tmp_path):
    rows = _rows(NSL)
    rows[1][list(NSL.columns).index("service")] = "quantum_rpc"
    path = _write(tmp_path, _text(NSL, rows))
    with pytest.raises(DataError) as e:
        read_table(path, NSL)
    assert _one_line(e).startswith(f"{path}: line 2, column service: unknown value 'quantum_rpc'")
    frame = pd.concat([c.frame for c in iter_chunks(path, NSL, chunk_size=100)], ignore_index=True)
    assert len(frame) == N and frame["service"].iloc[1] == "quantum_rpc"


def test_unknown_category_of_a_hashed_column_is_read_in_training(tmp_path):
    rows = _rows(UNSW)
    rows[1][list(UNSW.columns).index("proto")] = "sctp-over-carrier-pigeon"
    frame = read_table(_write(tmp_path, _text(UNSW, rows)), UNSW).frame
    assert frame["proto"].iloc[1] == "sctp-over-carrier-pigeon"


@pytest.mark.parametrize("value", ["nan", "NaN", "", "inf", "-inf", "1e400"])
def test_missing_or_non_finite_number_is_refused_naming_line_and_column(tmp_path, value):
    assert UNSW.non_finite == "refuse"
    rows = _rows(UNSW)
    rows[5][list(UNSW.columns).index("dur")] = value
    path = _write(tmp_path, _text(UNSW, rows))
    with pytest.raises(DataError) as e:
        read_table(path, UNSW)
    message = _one_line(e)
    assert message.startswith(f"{path}: line 7, column dur: missing or non-finite value"), message


def test_missing_category_is_refused(tmp_path):
    rows = _rows(UNSW)
    rows[0][list(UNSW.columns).index("state")] = ""
    with pytest.raises(DataError, match=r": line 2, column state: missing value"):
        read_table(_write(tmp_path, _text(UNSW, rows)), UNSW)


def _non_finite_rows(schema):
    """Rows 2 and 5 with a missing number, rows 3 and 7 with an infinite one (7 twice)."""
    rows = _rows(schema)
    dur, sbytes = list(schema.columns).index("dur"), list(schema.columns).index("sbytes")
    rows[2][dur] = "nan"
    rows[5][sbytes] = ""
    rows[3][dur] = "inf"
    rows[7][dur], rows[7][sbytes] = "-inf", "1e999"
    return rows


def test_non_finite_drop_drops_and_counts(tmp_path):
    schema = UNSW.with_overrides(non_finite="drop")
    rows = _non_finite_rows(schema)
    table = read_table(_write(tmp_path, _text(schema, rows)), schema)
    assert table.n_dropped == 4 and table.n_clipped == 0
    kept = [r for i, r in enumerate(rows) if i not in (2, 3, 5, 7)]
    assert_same_records(table.frame, _expected(schema, kept))


def test_non_finite_clip_clips_infinities_drops_missing_and_counts(tmp_path):
    schema = UNSW.with_overrides(non_finite="clip")
    rows = _non_finite_rows(schema)
    path = _write(tmp_path, _text(schema, rows))
    table = read_table(path, schema)
    assert table.n_dropped == 2 and table.n_clipped == 2
    assert len(table.frame) == N - 2
    numbers = table.frame[schema.numeric_features].to_numpy()
    assert np.isfinite(numbers).all()
    biggest = np.finfo(np.float64).max
    # Rows 3 and 7 of the file are rows 2 and 5 of the frame (rows 2 and 5 dropped).
    assert table.frame["dur"].iloc[2] == biggest
    assert table.frame["dur"].iloc[5] == -biggest and table.frame["sbytes"].iloc[5] == biggest
    kept = [r for i, r in enumerate(rows) if i not in (2, 5)]
    expected = _expected(schema, kept)
    others = [c for c in expected.columns if c not in ("dur", "sbytes")]
    assert_same_records(table.frame[others], expected[others])
    # Scoring counts the same, per chunk.
    chunks = list(iter_chunks(path, schema, chunk_size=3))
    assert sum(c.n_dropped for c in chunks) == 2 and sum(c.n_clipped for c in chunks) == 2
    assert np.concatenate([c.line_numbers for c in chunks]).tolist() == [k + 2 for k in range(N) if k not in (2, 5)]


def test_non_finite_policy_does_not_excuse_text_in_a_number(tmp_path):
    schema = UNSW.with_overrides(non_finite="drop")
    rows = _rows(schema)
    rows[1][list(schema.columns).index("dur")] = "abc"
    with pytest.raises(DataError, match=r": line 3, column dur: 'abc' is not a number"):
        read_table(_write(tmp_path, _text(schema, rows)), schema)


def test_first_bad_line_is_named_whichever_chunk_it_is_in(tmp_path):
    rows = _rows(NSL, 30)
    rows[17][4] = "x"  # src_bytes
    rows[25] = rows[25][:10]
    path = _write(tmp_path, _text(NSL, rows))
    for chunk_size in (1, 7, 100):
        with pytest.raises(DataError, match=r": line 18, column src_bytes: 'x' is not a number$"):
            read_table(path, NSL, chunk_size=chunk_size)


def test_empty_file_and_empty_header_are_refused(tmp_path):
    with pytest.raises(DataError, match="no records"):
        read_table(_write(tmp_path, "\n"), NSL)
    with pytest.raises(DataError, match="line 1 is empty"):
        read_table(_write(tmp_path, "\n" + _text(UNSW, _rows(UNSW))), UNSW)
    with pytest.raises(DataError, match="no records"):
        read_table(_write(tmp_path, ",".join(UNSW.columns) + "\n"), UNSW)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DataError, match="nsl_kdd file not found: .*nope.csv"):
        read_table(tmp_path / "nope.csv", NSL)


def test_not_utf8_and_unbalanced_quote_name_the_line(tmp_path):
    rows = _rows(UNSW)
    text = _text(UNSW, rows).encode()
    lines = text.split(b"\n")
    lines[3] = lines[3].replace(b",tcp,", b",t\xffcp,", 1) if b",tcp," in lines[3] else lines[3][:5] + b"\xff" + lines[3][5:]
    with pytest.raises(DataError, match=r": line 4: bytes that are not UTF-8 text"):
        read_table(_write(tmp_path, b"\n".join(lines)), UNSW)
    lines = _text(UNSW, rows).split("\n")
    lines[2] = '"' + lines[2]
    with pytest.raises(DataError, match=r": line 3: an unbalanced quote"):
        read_table(_write(tmp_path, "\n".join(lines)), UNSW)


# Scoring: bad lines listed, the others read -----------------------------------------------------


def test_scoring_lists_bad_lines_and_reads_the_others(tmp_path):
    rows = _rows(UNSW, 20)
    columns = list(UNSW.columns)
    bad = {
        2: ("sbytes", "abc"),  # file line 4 (line 1 is the header)
        7: ("dur", "nan"),  # file line 9
        10: None,  # file line 12: a field short
        14: ("label", "7"),  # file line 16
    }
    for i, change in bad.items():
        if change is None:
            rows[i] = rows[i][:-1]
        else:
            rows[i][columns.index(change[0])] = change[1]
    path = _write(tmp_path, _text(UNSW, rows))
    chunks = list(iter_chunks(path, UNSW, chunk_size=5))
    listed = [b for c in chunks for b in c.bad_lines]
    assert [n for n, _ in listed] == [4, 9, 12, 16]
    reasons = dict(listed)
    assert reasons[4] == "column sbytes: 'abc' is not a number"
    assert reasons[9].startswith("column dur: missing or non-finite value")
    assert reasons[12] == f"{len(columns) - 1} fields instead of {len(columns)}"
    assert reasons[16].startswith("unknown label '7'")
    assert where(4, reasons[4]) == "line 4, column sbytes: 'abc' is not a number"
    assert where(12, reasons[12]) == f"line 12: {len(columns) - 1} fields instead of {len(columns)}"
    # Every other line read, with its own line number and values.
    numbers = np.concatenate([c.line_numbers for c in chunks]).tolist()
    good = [i for i in range(20) if i not in bad]
    assert numbers == [i + 2 for i in good]
    frame = pd.concat([c.frame for c in chunks], ignore_index=True)
    assert_same_records(frame, _expected(UNSW, [rows[i] for i in good]))
    # Training stops at the first.
    with pytest.raises(DataError, match=r": line 4, column sbytes"):
        read_table(path, UNSW)


def test_scoring_a_headerless_file_without_its_label(tmp_path):
    rows = _rows(NSL)
    unlabelled = [row[:41] for row in rows]  # the 41 features, no label, no difficulty
    text = "".join(",".join(r) + "\n" for r in unlabelled)
    path = _write(tmp_path, text)
    frame = pd.concat([c.frame for c in iter_chunks(path, NSL, chunk_size=100)], ignore_index=True)
    expected = _expected(NSL, rows).drop(columns=["label"])
    assert_same_records(frame, expected)
    with pytest.raises(DataError):
        read_table(path, NSL)  # training needs the label


def test_quoted_fields_match_the_csv_module(tmp_path):
    """The reader's fields are the csv module's, for a line with quoted commas."""
    rows = _rows(UNSW, 3)
    rows[1][list(UNSW.columns).index("service")] = 'a "b", c'
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([list(UNSW.columns), *rows])
    frame = read_table(_write(tmp_path, buffer.getvalue()), UNSW).frame
    assert frame["service"].iloc[1] == 'a "b", c'
    assert_same_records(frame, _expected(UNSW, rows))


# Found by the property tests (test_reading_fuzz.py) ----------------------------------------------


@pytest.mark.parametrize("chunk_size", [1, 2, 4, 5])
def test_chunk_boundaries_do_not_change_the_frame_of_a_file_ending_with_a_blank_line(tmp_path, chunk_size):
    """A chunk that holds only blank lines (here: the trailing blank line, alone in the last
    chunk when the records fill the chunks before it) must not change the frame's types."""
    rows = _rows(KDD99, 4)
    path = _write(tmp_path, _text(KDD99, rows) + "\n")
    table = read_table(path, KDD99, chunk_size=chunk_size)
    assert_same_records(table.frame, _expected(KDD99, rows))
    assert (table.frame[KDD99.numeric_features].dtypes == np.float64).all()


def test_stray_blank_lines_filling_a_chunk_do_not_change_the_frame(tmp_path):
    rows = _rows(UNSW, 6)
    lines = _text(UNSW, rows).splitlines(keepends=True)
    path = _write(tmp_path, "".join([*lines[:4], "\n", "\n", "\n", *lines[4:]]))
    assert_same_records(read_table(path, UNSW, chunk_size=3).frame, _expected(UNSW, rows))


@pytest.mark.parametrize("spelling", ["True", "False", "true", "FALSE"])
def test_a_boolean_word_in_a_numeric_column_is_not_a_number_whatever_the_other_lines_hold(tmp_path, spelling):
    """Mixed with numbers, 'True' is refused as not a number; it must be so on every line too
    (pandas reads a column of nothing but True/False as booleans, which are numbers to it)."""
    j = list(UNSW.columns).index("sbytes")
    mixed = _rows(UNSW, 3)
    mixed[1][j] = spelling
    with pytest.raises(DataError, match=rf": line 3, column sbytes: '{spelling}' is not a number"):
        read_table(_write(tmp_path, _text(UNSW, mixed)), UNSW)
    every = _rows(UNSW, 3)
    for row in every:
        row[j] = spelling
    with pytest.raises(DataError, match=rf": line 2, column sbytes: '{spelling}' is not a number"):
        read_table(_write(tmp_path, _text(UNSW, every)), UNSW)


def test_a_headerless_file_that_is_not_the_data_set_names_its_first_records_line(tmp_path):
    """A blank line 1, then a record of the wrong width on line 2: the message names line 2."""
    fields = _rows(KDD99, 1)[0] + ["extra"]
    path = _write(tmp_path, "\n" + ",".join(fields) + "\n")
    with pytest.raises(DataError) as e:
        read_table(path, KDD99)
    message = _one_line(e)
    assert "43 comma-separated fields" in message
    assert "line 2" in message and "line 1 " not in message, message


def test_a_schema_with_no_numeric_column_reads_its_records(tmp_path):
    """Every feature categorical (a flow file whose kept columns are all text): valid."""
    schema = TableSchema.from_dict({
        "name": "text_only", "header": True, "columns": ["proto", "service", "verdict"],
        "categorical": {"proto": ["tcp", "udp"], "service": {"hash_buckets": 4}},
        "label": "verdict", "benign_labels": ["ok"],
    })  # fmt: skip
    path = _write(tmp_path, "proto,service,verdict\ntcp,http,ok\nudp,dns,bad\n")
    frame = read_table(path, schema).frame
    expected = pd.DataFrame({"proto": ["tcp", "udp"], "service": ["http", "dns"], "verdict": ["ok", "bad"]}, dtype=object)
    assert_same_records(frame, expected)


def test_label_moved_onto_the_attack_category_column_is_read_once(tmp_path):
    """data=unsw_nb15 data.label_column=attack_cat 'data.benign_labels=[Normal]': the attack
    family as the label. The frame must hold the column once (a duplicated column breaks every
    use of frame[label])."""
    schema = UNSW.with_overrides(label_column="attack_cat", benign_labels=["Normal"])
    rows = _rows(UNSW)
    frame = read_table(_write(tmp_path, _text(UNSW, rows)), schema).frame
    assert frame.columns.is_unique, list(frame.columns)
    assert frame["attack_cat"].tolist() == [r[list(UNSW.columns).index("attack_cat")] for r in rows]
    assert "label" not in frame
