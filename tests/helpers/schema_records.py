"""Hypothesis strategies for CSV files of any ``TableSchema``: well-formed records as the
schema defines them, written the ways real files are (a header in any column order or none,
CRLF or CR endings, a byte-order mark, quoted fields, stray blank lines, gzip), optionally
with one defect in one record, and what a reader must make of them.

A ``SchemaFile`` is the file's bytes, the field text of each record by column, the 1-based
line of each record, and (when damaged) the line and column of its one defect. From it,
``expected_frame`` is the frame ``read_table`` must return for the undamaged file: the
schema's features (numbers as float64, as Python's ``float`` reads their text), then the
label and attack category columns the file has.

A record holds its columns' plain values (``plain_value``: 0, the first declared category,
the first benign label) except a few drawn columns (``records_of``), whose values are drawn
per column kind:

- numeric: finite numbers as files write them (integers up to 2^70, any finite float's repr,
  the ends of float64, ``1.``, ``.5``, ``+3``, ``1E5``, ``-0``);
- categorical: the declared vocabulary, and (a column with hash buckets, or none declared)
  any non-empty text without a line break: commas and quotes included (quoted as CSV does);
- label: a benign or declared attack label (any text when the set is open), with the
  schema's ``label_suffix``; attack category: any non-empty text;
- dropped columns: any text, empty included; a headered file may leave them out.

``table_schemas`` draws the schemas themselves.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field

import hypothesis.strategies as st
import numpy as np
import pandas as pd

from fdagmm.data.schema import Categorical, NumericScaling, TableSchema

# Finite numbers as a file writes them (the float each stands for is ``float(text)``).
NUMBER_TEXTS = st.one_of(
    st.integers(0, 1000).map(str),
    st.integers(-(2**70), 2**70).map(str),
    st.floats(0, 1).map(lambda x: repr(round(x, 2))),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(["1e308", "-1e308", "1.7976931348623157e308", "5e-324", "-0", "-0.0", "1.", ".5", "+3", "1E5", "0.1", "007"]),
)
# A field's text: no line break (a line is a record), no NUL, no surrogate, no byte-order mark.
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00\ufeff"), max_size=8)
NON_EMPTY_TEXT = TEXT.filter(lambda s: s != "")
# Text that is not a number, nor a spelling of a missing or non-finite one: a reader names it.
_NAN_SPELLINGS = {"", "nan", "-nan", "+nan", "inf", "-inf", "+inf", "infinity", "-infinity", "+infinity"}
NOT_NUMBERS = st.one_of(
    st.sampled_from(["abc", "0x1F", "--1", "1e", "1.2.3", "NA", "None", "True", "#", "1-2", "١٢x", "5 apples"]),
    st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_.]{0,6}\Z").filter(lambda s: s.lower().lstrip("+-") not in _NAN_SPELLINGS),
)
LINE_ENDINGS = ("\n", "\r\n", "\r")
DEFECTS = ("extra field", "missing field", "not a number")


@dataclass
class SchemaFile:
    data: bytes
    columns: list[str]  # the file's columns in its order (its header's, else the schema's)
    records: list[dict[str, str]]  # each record's field text by column, as drawn
    record_lines: list[int]  # each record's 1-based line number
    defect: str | None = None  # one of DEFECTS, or None: every record well-formed
    defect_line: int | None = None
    defect_column: str | None = None  # the column of a "not a number" defect
    n_fields: dict[int, int] = field(default_factory=dict)  # line -> fields, for the damaged line

    def expected_frame(self, schema: TableSchema) -> pd.DataFrame:
        """What ``read_table`` returns for the records (the damaged one, if any, left out)."""
        records = [r for r, line in zip(self.records, self.record_lines) if line != self.defect_line]
        frame = pd.DataFrame(
            {c: np.array([float(r[c]) for r in records], dtype=np.float64) for c in schema.numeric_features}, index=range(len(records))
        )
        for c in [*schema.categorical_features, *(c for c in schema.info_columns if c in self.columns)]:
            values = [r[c] for r in records]
            if c == schema.label and schema.label_suffix:
                values = [v.removesuffix(schema.label_suffix) for v in values]
            frame[c] = pd.Series(values, dtype=object)
        return frame


def column_values(schema: TableSchema, column: str) -> st.SearchStrategy[str]:
    """The text of a well-formed value of ``column``."""
    if column == schema.label:
        if schema.attack_labels is not None:
            labels = st.sampled_from([*schema.benign_labels, *schema.attack_labels])
        else:
            labels = st.one_of(st.sampled_from(schema.benign_labels), NON_EMPTY_TEXT)
        return labels.map(lambda v: v + schema.label_suffix)
    if column == schema.attack_category:
        return NON_EMPTY_TEXT
    if column in schema.drop:
        return st.one_of(st.integers(0, 10**6).map(str), TEXT)
    if column in schema.categorical:
        cat = schema.categorical[column]
        declared = [st.sampled_from(cat.values)] if cat.values else []
        return st.one_of(*declared, *([NON_EMPTY_TEXT] if cat.hash_buckets else []))
    return NUMBER_TEXTS


def plain_value(schema: TableSchema, column: str) -> str:
    """A column's simplest well-formed value: what a record holds where nothing was drawn."""
    if column == schema.label:
        return schema.benign_labels[0] + schema.label_suffix
    if column in schema.categorical and schema.categorical[column].values:
        return schema.categorical[column].values[0]
    if column in schema.categorical or column == schema.attack_category:
        return "x"
    return "0"


@st.composite
def records_of(draw, schema: TableSchema, columns: list[str], max_drawn: int = 6) -> dict[str, str]:
    """One well-formed record (field text by column): a few of its columns drawn, the others
    their plain value (fewer draws: faster, and shorter counterexamples)."""
    record = {c: plain_value(schema, c) for c in columns}
    column_value = st.sampled_from(columns).flatmap(lambda c: column_values(schema, c).map(lambda v: (c, v)))
    record.update(draw(st.lists(column_value, max_size=max_drawn)))
    return record


def csv_field(text: str, quote: bool) -> str:
    """A field as CSV writes it: quoted (quotes doubled) when asked or when it must be."""
    if quote or any(c in text for c in ',"'):
        return '"' + text.replace('"', '""') + '"'
    return text


@st.composite
def schema_files(draw, schema: TableSchema, labelled: bool = True, defect: str | None = None, min_records: int = 1, max_records: int = 8) -> SchemaFile:
    """A file of ``schema``'s records (``labelled``: with its label column), ``defect`` (one of
    ``DEFECTS``) in one record of it if asked."""
    if schema.header:
        optional = [c for c in (*schema.drop, schema.attack_category) if c is not None and c != schema.label]
        left_out = draw(st.sets(st.sampled_from(optional))) if optional else set()
        columns = [c for c in schema.columns if c not in left_out and (labelled or c != schema.label)]
        columns = draw(st.permutations(columns))
    else:
        columns = list(schema.columns)
        if not labelled:  # a headerless file without its label ends with its last feature
            columns = columns[: max(columns.index(c) for c in schema.features) + 1]
    n = draw(st.integers(min_records, max_records))
    records = [draw(records_of(schema, columns)) for _ in range(n)]
    quote_all = draw(st.booleans())
    rows = [[csv_field(r[c], quote_all) for c in columns] for r in records]

    damaged = draw(st.integers(0, n - 1)) if defect else None
    defect_column = None
    if defect == "extra field":
        at = draw(st.integers(0, len(columns)))
        rows[damaged].insert(at, csv_field(draw(st.one_of(NUMBER_TEXTS, TEXT)), quote_all))
    elif defect == "missing field":
        del rows[damaged][draw(st.integers(0, len(columns) - 1))]
    elif defect == "not a number":
        defect_column = draw(st.sampled_from([c for c in columns if c in schema.numeric_features]))
        records[damaged][defect_column] = draw(NOT_NUMBERS)
        rows[damaged][columns.index(defect_column)] = csv_field(records[damaged][defect_column], quote_all)
    elif defect is not None:
        raise ValueError(f"unknown defect {defect!r}")

    lines = [",".join(row) for row in rows]
    # Stray blank lines before records (after the header: a headered file's line 1 is its header).
    blanks_before = [draw(st.sampled_from([0, 0, 0, 1])) for _ in range(n)]
    text_lines, record_lines = [], []
    if schema.header:
        text_lines.append(",".join(csv_field(c, False) for c in columns))
    for line, blanks in zip(lines, blanks_before):
        text_lines += [draw(st.sampled_from(["", " "])) for _ in range(blanks)]
        text_lines.append(line)
        record_lines.append(len(text_lines))
    ending = draw(st.sampled_from(LINE_ENDINGS))
    text = ending.join(text_lines)
    text += draw(st.sampled_from(["", ending, ending + ending]))  # no final ending, one, a blank last line
    data = (("\ufeff" if draw(st.booleans()) else "") + text).encode("utf-8")
    if draw(st.booleans()):
        data = gzip.compress(data)
    defect_line = None if damaged is None else record_lines[damaged]
    return SchemaFile(
        data, list(columns), records, record_lines, defect, defect_line, defect_column,
        {} if damaged is None else {defect_line: len(rows[damaged])},
    )  # fmt: skip


_NAMES = st.from_regex(r"\A[a-z][a-z0-9_]{0,6}\Z")


@st.composite
def table_schemas(draw, max_columns: int = 8) -> TableSchema:
    """Any valid schema: numeric columns of each scaling, categorical ones with a vocabulary,
    hash buckets or both, dropped columns, a label (closed or open set, a suffix or none)
    and an attack category anywhere, a header or none."""
    names = draw(st.lists(_NAMES, min_size=2, max_size=max_columns, unique=True))
    roles = {name: draw(st.sampled_from(["numeric", "numeric", "categorical", "drop"])) for name in names}
    roles[draw(st.sampled_from(names))] = draw(st.sampled_from(["numeric", "categorical"]))  # at least one feature
    others = [c for c in names if roles[c] == "drop"]
    label = draw(st.sampled_from([None, *others])) if others else None
    attack_category = draw(st.sampled_from([None, *(c for c in others if c != label)])) if others else None
    numeric, categorical = {}, {}
    for c in names:
        if roles[c] == "numeric":
            kind = draw(st.sampled_from(["unit", "log", "bound"]))
            numeric[c] = {"unit": NumericScaling("unit"), "log": NumericScaling("log", scale=1000.0), "bound": NumericScaling("bound", low=-5.0, high=5.0)}[kind]
        elif roles[c] == "categorical":
            values = tuple(draw(st.lists(st.from_regex(r"\A[A-Za-z0-9_-]{1,5}\Z"), max_size=4, unique=True)))
            buckets = draw(st.integers(0 if values else 1, 4))
            categorical[c] = Categorical(values, buckets)
    benign = ("benign",) if label else ()
    return TableSchema(
        name="fuzzed",
        columns=tuple(names),
        numeric=numeric,
        categorical=categorical,
        header=draw(st.booleans()),
        drop=tuple(c for c in others if c not in (label, attack_category)),
        label=label,
        benign_labels=benign,
        attack_labels=draw(st.sampled_from([None, ("attack", "probe")])) if label else None,
        attack_category=attack_category,
        label_suffix=draw(st.sampled_from(["", "."])) if label else "",
    )
