"""One streaming reader for every schema: a CSV file (gzip or plain) in chunks of records.

Memory is bounded by the chunk, whatever the file's size. Harmless variants are read as
written: a trailing or stray blank line, CRLF line endings, a UTF-8 byte-order mark, quoted
fields, a headered file's columns in any order. Anything else is a bad line, named with its
number and column: a wrong number of fields, bytes that are not UTF-8, an unbalanced quote, a
number that is not one, a missing value, a label outside a closed label set, a category outside
a closed vocabulary (training only). Training reads are strict (the first bad line stops the
run, ``read_table``); scoring lists bad lines and goes on (``iter_chunks``).

A line is a record: a quoted field may hold commas but not a line break.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import re
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fdagmm.data.schema import TableSchema
from fdagmm.errors import DataError, first_line

# How many lines, at most, decide a headerless file's layout (with or without its label).
FORMAT_LINES = 1000
DEFAULT_CHUNK = 200_000
_NOT_UTF8 = re.compile("[\udc80-\udcff]")
_FLOAT_MAX = np.finfo(np.float64).max


@dataclass
class RecordChunk:
    """Consecutive lines of a file: the records parsed, the bad lines named."""

    line_numbers: np.ndarray  # 1-based line number of each row of ``frame``
    frame: pd.DataFrame  # the schema's features (numbers as float64), then its label columns present
    bad_lines: list[tuple[int, str]] = field(default_factory=list)  # (line number, what is wrong)
    n_dropped: int = 0  # records left out by the schema's non_finite policy (drop, clip)
    n_clipped: int = 0  # records with an infinite value clipped (non_finite: clip)


@dataclass
class Table:
    """A whole file's records, as training reads it."""

    frame: pd.DataFrame
    n_dropped: int = 0
    n_clipped: int = 0


def read_table(path: str | Path, schema: TableSchema, chunk_size: int = DEFAULT_CHUNK) -> Table:
    """Every record of a training file; the first bad line is a one-line DataError."""
    frames, n_dropped, n_clipped = [], 0, 0
    for chunk in iter_chunks(path, schema, chunk_size, training=True):
        if chunk.bad_lines:
            raise DataError(f"{path}: {where(*chunk.bad_lines[0])}")
        frames.append(chunk.frame)
        n_dropped += chunk.n_dropped
        n_clipped += chunk.n_clipped
    if not frames or not sum(len(f) for f in frames):
        raise DataError(f"{path}: no records in the file")
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return Table(frame, n_dropped, n_clipped)


def iter_chunks(path: str | Path, schema: TableSchema, chunk_size: int, training: bool = False) -> Iterator[RecordChunk]:
    """The file's records in chunks of at most ``chunk_size`` lines.

    ``training``: the file must hold the label (when the schema has one), and a category
    outside a closed vocabulary is a bad line; when scoring it is kept (and encodes as
    all-zeros) and the label is optional.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{schema.name} file not found: {path}; pass its path (data.train_path, data.test_path or input=)")
    try:
        with open_text(path) as f:
            if schema.header:
                header_line = f.readline()
                layout = _header_layout(header_line, schema, path, training)
                lines: Iterator[str] = f
                start = 2
            else:
                head = list(itertools.islice(f, FORMAT_LINES))
                layout = _headerless_layout(head, schema, path, training)
                lines = itertools.chain(head, f)
                start = 1
            parser = LineParser(schema, layout, training)
            while chunk := list(itertools.islice(lines, chunk_size)):
                yield parser.parse(chunk, start)
                start += len(chunk)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path} is not a readable CSV or gzip file ({first_line(e)}): check it, or download it again") from e


def stream_parser(first_lines: list[str], schema: TableSchema, source: str) -> tuple[LineParser, bool]:
    """The parser of a stream (standard input, a followed file) that starts with these lines,
    and whether its first line is a header, which a data set with headered files may send (its
    fields are then column names); without one, the columns are laid out as a headerless file's.
    A DataError when none of the lines has a layout of the schema's."""
    if schema.header and first_lines:
        known = {*schema.features, *schema.info_columns, *schema.drop, *([schema.label] if schema.label else [])}
        if {c.strip() for c in split_fields(first_lines[0].removeprefix("\ufeff"))} <= known:
            return LineParser(schema, _header_layout(first_lines[0].removeprefix("\ufeff"), schema, source, False), False), True
    return LineParser(schema, _headerless_layout(first_lines[:FORMAT_LINES], schema, source, False), False), False


def checked_records(columns: dict[str, list | np.ndarray], schema: TableSchema, source: str) -> pd.DataFrame:
    """Records already split into columns (a DataFrame's, a JSON body's), checked as a file's
    lines are, as a frame of ``RecordChunk.frame``'s form. Every record must be scorable: the
    first that is not (a value of the wrong type, a missing number, one the schema's
    non_finite policy would drop), a column the schema does not know or a feature column
    missing is a one-line DataError naming it as ``source[i]``."""
    known = {*schema.features, *schema.info_columns, *schema.drop}
    unknown = [c for c in columns if c not in known]
    if unknown:
        raise DataError(f"{source}: columns the {schema.name} schema does not know: {unknown}")
    missing = [c for c in schema.features if c not in columns]
    if missing:
        raise DataError(f"{source}: the records lack the columns {missing}")
    text_columns = {*schema.categorical_features, *schema.info_columns}
    layout = [c for c in schema.columns if c in columns and c not in schema.drop]
    frame = {}
    for c in layout:
        values = columns[c]
        types = set(map(type, values))
        if c in text_columns:
            if not types <= {str, type(None)}:  # categories and labels are text, as a file's: a number stands for its text
                for i, v in enumerate(values):
                    if not (v is None or isinstance(v, str | int | float | np.integer | np.floating) and not isinstance(v, bool | np.bool_)):
                        raise DataError(where_in(source, i, f"column {c}: {v!r} is neither text nor a number"))
                values = [v if v is None or isinstance(v, str) else None if v != v else str(v) for v in values]  # NaN: missing
            if "" in values:  # an empty field is a missing value, as in a file
                values = [None if v == "" else v for v in values]
            frame[c] = np.array(values, dtype=object)
        elif types <= {int, float, np.float64, np.int64}:
            frame[c] = np.asarray(values, dtype=np.float64)
        else:  # text, null, true/false and the like: checked as a file's text is
            frame[c] = np.array([v if v is None or isinstance(v, str) else str(v) for v in values], dtype=object)
    numbers = np.arange(len(frame[layout[0]]))
    chunk = LineParser(schema, layout, False).checked(pd.DataFrame(frame), numbers, [])
    check_every_record_kept(chunk, numbers, lambda n, why: where_in(source, n, why))
    return chunk.frame


def check_every_record_kept(chunk: RecordChunk, sent, describe) -> None:
    """A one-line DataError naming the first of ``sent`` (record numbers) that ``chunk`` does
    not hold: a bad record, or one the schema's non_finite policy dropped. ``describe(n, why)``
    names it."""
    left_out = set(sent) - set(chunk.line_numbers.tolist()) - {n for n, _ in chunk.bad_lines}
    bad = sorted(chunk.bad_lines + [(n, "a missing or infinite number, which the model leaves out") for n in left_out])
    if bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise DataError(f"{describe(*bad[0])}{more}; nothing was scored")


def where_in(source: str, index: int, why: str) -> str:
    """``records[3], column dur: ...``: a record by its index in what was given."""
    return f"{source}[{index}]{', ' if why.startswith('column ') else ': '}{why}"


def where(line: int, why: str) -> str:
    """``line 7, column dur: ...`` or ``line 7: 44 fields instead of 45``."""
    return f"line {line}, {why}" if why.startswith("column ") else f"line {line}: {why}"


def split_fields(line: str) -> list[str]:
    """A CSV line's fields (quotes honoured)."""
    if '"' not in line:
        return line.rstrip("\r\n").split(",")
    return next(csv.reader([line.rstrip("\r\n")]))


def _header_layout(header_line: str, schema: TableSchema, path: Path, training: bool) -> list[str]:
    """The columns of a headered file, in its order, once checked against the schema."""
    if not header_line.strip():
        raise DataError(f"{path}: line 1 is empty; a {schema.name} file starts with its header")
    if _NOT_UTF8.search(header_line):
        raise DataError(f"{path}: line 1 (the header) holds bytes that are not UTF-8 text")
    columns = [c.strip() for c in split_fields(header_line)]
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if duplicated:
        raise DataError(f"{path}: the header names {duplicated} more than once")
    missing = [c for c in schema.features if c not in columns]
    if training and schema.label is not None and schema.label not in columns:
        missing.append(schema.label)
    known = {*schema.features, *schema.info_columns, *schema.drop}
    unknown = [c for c in columns if c not in known]
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"lacks the columns {missing}")
        if unknown:
            parts.append(f"has columns the schema does not know: {unknown} (read past them with data.drop_columns, or score.py's drop_columns)")
        hint = "; with no label, pass data.label_column=null" if schema.label in missing else ""
        raise DataError(f"{path}: the header does not match the {schema.name} schema: it {' and '.join(parts)}{hint}")
    return columns


def _headerless_layout(head: list[str], schema: TableSchema, path: Path, training: bool) -> list[str]:
    """A headerless file's columns: the schema's, or (scoring an unlabelled file) those up to
    its last feature, whichever most of the first lines (the first record breaks a tie) have."""
    full = list(schema.columns)
    last_feature = max(full.index(c) for c in schema.features)
    short = full[: last_feature + 1]
    layouts = [full] if (training and schema.label is not None and schema.label not in short) else [full, short]
    records = [line for line in head if line.strip()]
    if not records:
        return full
    counts = Counter(len(split_fields(line)) for line in records)
    first = len(split_fields(records[0]))
    first_line = next(i for i, line in enumerate(head, start=1) if line.strip())
    best = max(layouts, key=lambda layout: (counts[len(layout)], first == len(layout)))
    if not counts[len(best)]:
        expected = " or ".join(str(len(layout)) for layout in layouts)
        raise DataError(
            f"{path}: line {first_line} has {first} comma-separated fields, and none of the first {len(records)} lines has "
            f"the {expected} of a {schema.name} file: is this the right file and data set?"
        )
    return best


class LineParser:
    """Parses lines of one layout into records, checking them against the schema (``parse``),
    or records already split into columns (``checked``)."""

    def __init__(self, schema: TableSchema, layout: list[str], training: bool):
        self.schema = schema
        self.layout = layout
        self.training = training
        self.numeric = schema.numeric_features
        self.numeric_set = set(self.numeric)
        text_columns = {*schema.categorical_features, *schema.info_columns}
        self.text = [c for c in layout if c in text_columns]
        features = set(schema.features)
        self.kept = [*(c for c in schema.columns if c in features), *(c for c in schema.info_columns if c in layout)]  # file order
        self.closed = {
            c: frozenset(cat.values) for c, cat in schema.categorical.items()
            if training and not cat.hash_buckets and c in self.text
        }  # fmt: skip
        labels = None if schema.attack_labels is None else frozenset([*schema.benign_labels, *schema.attack_labels])
        self.closed_labels = labels if schema.label in layout else None

    def parse(self, lines: list[str], start: int) -> RecordChunk:
        numbers = np.arange(start, start + len(lines))
        blank = np.array([not line.strip() for line in lines], dtype=bool)
        utf8 = np.array([not _NOT_UTF8.search(line) for line in lines], dtype=bool)
        quoted = np.array(['"' in line for line in lines], dtype=bool)
        balanced = np.array([not q or line.count('"') % 2 == 0 for line, q in zip(lines, quoted)], dtype=bool)
        # A comma count for a line without quotes; the csv module only where quotes may hide commas.
        counts = np.array([
            0 if not ok else len(split_fields(line)) if q else line.count(",") + 1
            for line, ok, q in zip(lines, utf8 & balanced, quoted)
        ])  # fmt: skip
        n = len(self.layout)
        well_formed = ~blank & utf8 & balanced & (counts == n)
        bad = [(int(k), "bytes that are not UTF-8 text") for k in numbers[~blank & ~utf8]]
        bad += [(int(k), "an unbalanced quote") for k in numbers[~blank & utf8 & ~balanced]]
        bad += [(int(k), f"{c} fields instead of {n}") for k, c, ok in zip(numbers, counts, ~blank & utf8 & balanced) if ok and c != n]
        text = "".join(line if line.endswith("\n") else line + "\n" for line, ok in zip(lines, well_formed) if ok)
        if not text:
            empty = pd.DataFrame({c: pd.Series(dtype=np.float64 if c in self.numeric_set else object) for c in self.kept})
            return RecordChunk(numbers[:0], empty, sorted(bad))
        frame = pd.read_csv(
            io.StringIO(text), header=None, names=self.layout, index_col=False, usecols=self.kept,
            dtype={c: str for c in self.text}, keep_default_na=False, na_values=[""], skipinitialspace=False,
        )  # fmt: skip
        numbers = numbers[well_formed]
        # A numeric column whose every value here is a true/false word comes back as bools: read
        # it again as text, so that the check names each value as written.
        words = [c for c in self.numeric if pd.api.types.is_bool_dtype(frame[c])]
        if words:
            frame[words] = pd.read_csv(io.StringIO(text), header=None, names=self.layout, index_col=False, usecols=words,
                                       dtype=str, keep_default_na=False, na_values=[""])[words]  # fmt: skip
        return self.checked(frame, numbers, bad)

    def checked(self, frame: pd.DataFrame, numbers: np.ndarray, bad: list[tuple[int, str]]) -> RecordChunk:
        """The records of ``frame`` (the layout's columns, numbers as numbers or text) that pass
        the schema's checks; each other one is a bad line (its number, what is wrong)."""
        schema = self.schema
        checks: list[tuple[str, np.ndarray, str]] = []  # (column, records failing, why): a record's first failure is its reason
        matrix = np.empty((len(frame), len(self.numeric)))
        not_a_number = np.zeros((len(frame), len(self.numeric)), dtype=bool)
        dtypes = frame.dtypes.to_dict()
        read_as_numbers = [pd.api.types.is_numeric_dtype(dtypes[c]) for c in self.numeric]
        numbers_already = [j for j, ok in enumerate(read_as_numbers) if ok]
        if numbers_already:  # in one block: a frame's columns one at a time cost more than the parsing
            matrix[:, numbers_already] = frame[[self.numeric[j] for j in numbers_already]].to_numpy(dtype=np.float64)
        for j, (c, ok) in enumerate(zip(self.numeric, read_as_numbers)):
            if not ok:
                matrix[:, j], not_a_number[:, j] = _to_numbers(frame[c])
        missing_number = np.isnan(matrix) & ~not_a_number
        infinite = np.isinf(matrix)
        for j, c in enumerate(self.numeric):
            checks.append((c, not_a_number[:, j], "column {column}: {value!r} is not a number"))
            if schema.non_finite == "refuse":
                checks.append((c, missing_number[:, j] | infinite[:, j], "column {column}: missing or non-finite value ({value})"))
        for c in self.text:
            checks.append((c, frame[c].isna().to_numpy(), "column {column}: missing value"))
        for c, vocabulary in self.closed.items():
            unknown = ~frame[c].isin(vocabulary).to_numpy() & frame[c].notna().to_numpy()
            why = "column {column}: unknown value {value!r} (not in the %s schema's vocabulary): are the columns shifted?" % schema.name
            checks.append((c, unknown, why))
        if schema.label in frame:
            if schema.label_suffix:
                frame[schema.label] = frame[schema.label].str.removesuffix(schema.label_suffix)
            if self.closed_labels is not None:
                unknown = ~frame[schema.label].isin(self.closed_labels).to_numpy() & frame[schema.label].notna().to_numpy()
                why = "unknown label {value!r}; the %s schema's labels are %s" % (schema.name, sorted(self.closed_labels))
                checks.append((schema.label, unknown, why))
        problems = np.column_stack([failing for _, failing, _ in checks]) if checks else np.zeros((len(frame), 0), dtype=bool)
        invalid = problems.any(axis=1)
        for i in np.flatnonzero(invalid):
            column, _, why = checks[int(problems[i].argmax())]
            bad.append((int(numbers[i]), why.format(column=column, value=frame[column].iloc[i])))
        # non_finite drop: records with a missing or infinite number; clip: infinities to the
        # largest finite float of their sign, records with a missing number dropped.
        drop = np.zeros(len(frame), dtype=bool)
        n_clipped = 0
        if schema.non_finite != "refuse":
            drop = missing_number.any(axis=1) | (infinite.any(axis=1) if schema.non_finite == "drop" else False)
            if schema.non_finite == "clip":
                n_clipped = int((infinite.any(axis=1) & ~drop & ~invalid).sum())
                matrix = np.clip(matrix, -_FLOAT_MAX, _FLOAT_MAX)
        keep = ~invalid & ~drop
        # A new frame, column by column (assigning into ``frame`` splits its blocks one column at
        # a time); text as plain Python strings, whatever pandas' default string type.
        kept = pd.DataFrame(matrix[keep], columns=self.numeric)
        for c in self.kept:
            if c not in self.numeric_set:
                kept[c] = pd.Series(frame[c].to_numpy(dtype=object)[keep], dtype=object)
        kept = kept[self.kept]
        return RecordChunk(numbers[keep], kept, sorted(bad), int((drop & ~invalid).sum()), n_clipped)


def _to_numbers(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """A text column as float64 (NaN where missing, +-inf beyond float64's range or written so),
    and which values are text that is not a number."""
    # As text: pandas reads an integer beyond uint64 as a Python int, which to_numeric cannot
    # convert to a float (OverflowError), and mixes it with the column's strings.
    text = values.astype(object).where(values.notna(), "").astype(str)
    numbers = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)
    stripped = text.str.strip().str.lower()
    written_nan = stripped.isin(["", "nan", "-nan", "+nan"]).to_numpy()
    return numbers, np.isnan(numbers) & ~written_nan


def open_text(path: Path) -> io.TextIOBase:
    """The file as text, gzip or plain whatever its name, a byte-order mark dropped; a byte
    that is not UTF-8 becomes a lone surrogate that the checks report with its line."""
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    if gzipped:
        return gzip.open(path, "rt", encoding="utf-8-sig", errors="surrogateescape")
    return open(path, encoding="utf-8-sig", errors="surrogateescape")
