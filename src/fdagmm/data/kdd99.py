"""Load the KDDCUP99 data set: its schema, reading a file, and scikit-learn's fetcher.

Every loader returns the same frame: the 41 feature columns under scikit-learn's names,
then ``label`` with the trailing dot removed (``normal``, ``smurf``, ...).
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import logging
import re
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fdagmm.data.schema import DatasetSchema
from fdagmm.errors import DataError, first_line

log = logging.getLogger(__name__)

_FEATURES = (
    "duration", "protocol_type", "service", "flag", "src_bytes", "dst_bytes", "land",
    "wrong_fragment", "urgent", "hot", "num_failed_logins", "logged_in", "num_compromised",
    "root_shell", "su_attempted", "num_root", "num_file_creations", "num_shells",
    "num_access_files", "num_outbound_cmds", "is_host_login", "is_guest_login", "count",
    "srv_count", "serror_rate", "srv_serror_rate", "rerror_rate", "srv_rerror_rate",
    "same_srv_rate", "diff_srv_rate", "srv_diff_host_rate", "dst_host_count",
    "dst_host_srv_count", "dst_host_same_srv_rate", "dst_host_diff_srv_rate",
    "dst_host_same_src_port_rate", "dst_host_srv_diff_host_rate", "dst_host_serror_rate",
    "dst_host_srv_serror_rate", "dst_host_rerror_rate", "dst_host_srv_rerror_rate",
)  # fmt: skip

# The vocabulary is the data set's schema (kddcup.names), not what one file or one client
# happens to contain: the 10% file has 66 services, the full data set 70.
_CATEGORIES = {
    "protocol_type": ("icmp", "tcp", "udp"),
    "service": (
        "IRC", "X11", "Z39_50", "aol", "auth", "bgp", "courier", "csnet_ns", "ctf", "daytime",
        "discard", "domain", "domain_u", "echo", "eco_i", "ecr_i", "efs", "exec", "finger",
        "ftp", "ftp_data", "gopher", "harvest", "hostnames", "http", "http_2784", "http_443",
        "http_8001", "imap4", "iso_tsap", "klogin", "kshell", "ldap", "link", "login", "mtp",
        "name", "netbios_dgm", "netbios_ns", "netbios_ssn", "netstat", "nnsp", "nntp", "ntp_u",
        "other", "pm_dump", "pop_2", "pop_3", "printer", "private", "red_i", "remote_job",
        "rje", "shell", "smtp", "sql_net", "ssh", "sunrpc", "supdup", "systat", "telnet",
        "tftp_u", "tim_i", "time", "urh_i", "urp_i", "uucp", "uucp_path", "vmnet", "whois",
    ),
    "flag": ("OTH", "REJ", "RSTO", "RSTOS0", "RSTR", "S0", "S1", "S2", "S3", "SF", "SH"),
}  # fmt: skip
_ATTACK_LABELS = (
    "back", "buffer_overflow", "ftp_write", "guess_passwd", "imap", "ipsweep", "land",
    "loadmodule", "multihop", "neptune", "nmap", "perl", "phf", "pod", "portsweep", "rootkit",
    "satan", "smurf", "spy", "teardrop", "warezclient", "warezmaster",
)  # fmt: skip

# The fixed scaling (data.scaling=schema_log) follows the features' definitions in the KDD Cup
# 1999 task description (kdd.ics.uci.edu/databases/kddcup99/task.html), never a file's values.
# In [0, 1] by definition: the "% of connections ..." rates, and the "1 if ...; 0 otherwise"
# indicators (su_attempted is documented as one, though the files hold some 2s; like any value
# above 1 they encode above 1, unclipped).
_UNIT_INTERVAL = (
    "land", "logged_in", "root_shell", "su_attempted", "is_host_login", "is_guest_login",
    "serror_rate", "srv_serror_rate", "rerror_rate", "srv_rerror_rate", "same_srv_rate",
    "diff_srv_rate", "srv_diff_host_rate", "dst_host_same_srv_rate", "dst_host_diff_srv_rate",
    "dst_host_same_src_port_rate", "dst_host_srv_diff_host_rate", "dst_host_serror_rate",
    "dst_host_srv_serror_rate", "dst_host_rerror_rate", "dst_host_srv_rerror_rate",
)  # fmt: skip
# The others are non-negative counts (seconds, bytes, events, connections) with heavy tails:
# log1p(x) / log1p(scale). A scale is a round number in the feature's unit, a design choice
# rather than a documented maximum (the description bounds none of them): a day of seconds,
# 2^32 bytes (a 32-bit byte counter), a thousand events or connections. A larger value
# encodes above 1, unclipped, so a scale sets the spread of the inputs, not what they may be.
_COUNT_SCALE = 1_000.0
_LOG_SCALES = {
    "duration": 86_400.0, "src_bytes": 2.0**32, "dst_bytes": 2.0**32,
    **dict.fromkeys((
        "wrong_fragment", "urgent", "hot", "num_failed_logins", "num_compromised", "num_root",
        "num_file_creations", "num_shells", "num_access_files", "num_outbound_cmds", "count",
        "srv_count", "dst_host_count", "dst_host_srv_count",
    ), _COUNT_SCALE),
}  # fmt: skip

KDD99 = DatasetSchema(
    name="kdd99",
    features=_FEATURES,
    categories=_CATEGORIES,
    label="label",  # scikit-learn's "labels", with the trailing dot removed
    normal_label="normal",
    attack_labels=_ATTACK_LABELS,
    # File names used by the UCI archive and by scikit-learn's fetcher.
    variant_files={"10_percent": "kddcup.data_10_percent.gz", "full": "kddcup.data.gz"},
    unit_interval=_UNIT_INTERVAL,
    log_scales=_LOG_SCALES,
)


def read_kdd_file(path: str | Path) -> pd.DataFrame:
    """Read a KDDCUP99 CSV file (plain or gzip) with its label column, and check its schema."""
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"KDDCUP99 file not found: {path}. Pass data.path=<file> "
            "(kddcup.data_10_percent.gz or kddcup.data.gz from the UCI KDD archive)"
        )
    n_columns = len(KDD99.features) + 1
    try:
        compression = _compression(path)
        with _open_text(path, compression) as f:
            first = f.readline()
        found = len(first.rstrip("\r\n").split(","))
        if found != n_columns:
            raise DataError(
                f"{path}: line 1 has {found} comma-separated fields, a KDDCUP99 file has "
                f"{n_columns} (41 features and the label): is this the right file?"
            )
        frame = pd.read_csv(
            path, header=None, names=[*KDD99.features, KDD99.label], index_col=False, compression=compression,
            dtype={c: str for c in [*KDD99.categorical_features, KDD99.label]},
            encoding="utf-8", encoding_errors="surrogateescape", **_LINE_BY_LINE,
        )  # fmt: skip
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path} is not a readable CSV or gzip file ({e}): download it again") from e
    except pd.errors.ParserError as e:
        raise DataError(f"{path}: malformed CSV ({first_line(e)}): every line needs {n_columns} fields") from e
    return validate_frame(frame, source=str(path))


def fetch_kdd(variant: str, data_dir: str | Path) -> pd.DataFrame:
    """Load KDDCUP99 through scikit-learn's fetcher, downloading into ``data_dir`` if needed."""
    from sklearn.datasets import fetch_kddcup99

    log.info("Loading KDDCUP99 (%s) through scikit-learn into %s", variant, data_dir)
    try:
        bunch = fetch_kddcup99(
            data_home=str(data_dir), percent10=variant == "10_percent", as_frame=True
        )
    except Exception as e:  # no network, a refused download, a broken cache: all the same fix
        raise DataError(
            f"KDDCUP99 is not in {data_dir} and scikit-learn could not download it "
            f"({type(e).__name__}: {first_line(e)}); download {KDD99.variant_files[variant]} from "
            f"the UCI KDD archive and pass data.path=<file> (or put it in {data_dir}/)"
        ) from e
    frame = bunch.frame.rename(columns={"labels": KDD99.label})
    for column in [*KDD99.categorical_features, KDD99.label]:
        frame[column] = frame[column].str.decode("ascii")
    for column in KDD99.numeric_features:
        frame[column] = pd.to_numeric(frame[column])
    return validate_frame(frame, source=f"scikit-learn's KDDCUP99 ({variant})")


def validate_frame(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Check types, missing values, categories and labels; strip the label's trailing dot."""
    for column in KDD99.numeric_features:
        values = frame[column]
        numbers = _to_numbers(values)
        invalid = ~np.isfinite(numbers)
        if invalid.any():
            bad = int(np.flatnonzero(invalid)[0])
            value = values.iloc[bad]
            if pd.notna(value) and np.isnan(numbers[bad]):
                raise DataError(f"{source}: line {bad + 1}, column {column}: {value!r} is not a number")
            raise DataError(f"{source}: line {bad + 1}, column {column}: missing or non-finite value ({value})")
        if not pd.api.types.is_numeric_dtype(values):
            frame[column] = numbers
    for column in [*KDD99.categorical_features, KDD99.label]:
        missing = frame[column].isna().to_numpy()
        if missing.any():
            bad = int(np.flatnonzero(missing)[0])
            raise DataError(f"{source}: line {bad + 1}, column {column}: missing value")
    for column, vocabulary in KDD99.categories.items():
        unknown = ~frame[column].isin(vocabulary).to_numpy()
        if unknown.any():
            bad = int(np.flatnonzero(unknown)[0])
            raise DataError(
                f"{source}: line {bad + 1}, column {column}: unknown value "
                f"{frame[column].iloc[bad]!r} (not in the KDDCUP99 schema): are the columns shifted?"
            )
    frame[KDD99.label] = frame[KDD99.label].str.rstrip(".")
    unknown = ~frame[KDD99.label].isin(KDD99.known_labels).to_numpy()
    if unknown.any():
        bad = int(np.flatnonzero(unknown)[0])
        raise DataError(
            f"{source}: line {bad + 1}: unknown label {frame[KDD99.label].iloc[bad]!r}; "
            f"known labels: normal and the 22 attack types of the KDDCUP99 training data"
        )
    return frame


@dataclass
class RecordChunk:
    """Consecutive lines of a file to score: the well-formed ones parsed, the others named."""

    line_numbers: np.ndarray  # 1-based line number of each row of ``frame``
    frame: pd.DataFrame  # KDD99.features (and KDD99.label, without its dot, if the file has labels)
    bad_lines: list[tuple[int, str]] = field(default_factory=list)  # (line number, what is wrong)


def iter_record_chunks(path: str | Path, chunk_size: int) -> Iterator[RecordChunk]:
    """Read a KDDCUP99-format file (gzip or CSV, with or without the label) in chunks.

    Memory is bounded by ``chunk_size`` whatever the file's size. Whether the file has labels
    is what most of its first ``FORMAT_LINES`` lines say, so that one odd first line is
    reported like any other. A line with the wrong number of fields, bytes that are not UTF-8,
    a missing or non-numeric number or a missing category is reported in ``bad_lines``
    instead of parsed. Category values outside the schema are kept (the encoder maps them to
    all-zeros); so are labels outside the training data's.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"input file not found: {path}")
    try:
        compression = _compression(path)
        with _open_text(path, compression) as f:
            head = list(itertools.islice(f, FORMAT_LINES))
            columns = _columns_of(head, path)
            lines = itertools.chain(head, f)
            start = 1
            while chunk := list(itertools.islice(lines, chunk_size)):
                yield _parse_chunk(chunk, start, columns)
                start += len(chunk)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path} is not a readable CSV or gzip file ({first_line(e)})") from e


def _columns_of(head: list[str], path: Path) -> list[str]:
    """The features, and the label if most of the records among ``head`` (a file's first
    lines; line 1 breaks a tie) have one; a DataError if none of them has a record's fields.
    An empty file has no records, with or without labels."""
    n_features = len(KDD99.features)
    fields = [line.count(",") + 1 for line in head]
    counts = Counter(fields)
    if head and not counts[n_features] and not counts[n_features + 1]:
        raise DataError(
            f"{path}: line 1 has {fields[0]} fields, and none of the first {len(head)} lines has a "
            f"record's {n_features} features, optionally followed by the label"
        )
    labelled = bool(head) and (counts[n_features + 1], fields[0] > n_features) > (counts[n_features], fields[0] == n_features)
    return [*KDD99.features, KDD99.label] if labelled else list(KDD99.features)


def _parse_chunk(lines: list[str], start: int, columns: list[str]) -> RecordChunk:
    numbers = np.arange(start, start + len(lines))
    counts = np.array([line.count(",") + 1 for line in lines])
    # Bytes that are not UTF-8 were read as lone surrogates (``_open_text``).
    utf8 = np.array([not _NOT_UTF8.search(line) for line in lines], dtype=bool)
    well_formed = (counts == len(columns)) & utf8
    bad = [(int(n), f"{c} fields instead of {len(columns)}") for n, c, ok in zip(numbers, counts, utf8) if ok and c != len(columns)]
    bad += [(int(n), "bytes that are not UTF-8 text") for n in numbers[~utf8]]
    text = "".join(line for line, ok in zip(lines, well_formed) if ok)
    if not text:
        return RecordChunk(numbers[:0], pd.DataFrame(columns=columns), sorted(bad))
    frame = pd.read_csv(
        io.StringIO(text), header=None, names=columns, index_col=False,
        dtype={c: str for c in [*KDD99.categorical_features, *columns[len(KDD99.features):]]}, **_LINE_BY_LINE,
    )  # fmt: skip
    numbers = numbers[well_formed]
    numeric = np.column_stack([_to_numbers(frame[column]) for column in KDD99.numeric_features])
    texts = [*KDD99.categorical_features, *columns[len(KDD99.features):]]
    # (records, columns): what is wrong where; a record's first problem, in column order, is its reason.
    problems = np.hstack([~np.isfinite(numeric), frame[texts].isna().to_numpy()])
    reasons = [f"column {c}: missing or not a finite number" for c in KDD99.numeric_features] + [f"column {c}: missing value" for c in texts]
    invalid = problems.any(axis=1)
    bad += [(int(numbers[i]), reasons[problems[i].argmax()]) for i in np.flatnonzero(invalid)]
    frame[KDD99.numeric_features] = numeric
    frame = frame[~invalid].reset_index(drop=True)
    if KDD99.label in frame:
        frame[KDD99.label] = frame[KDD99.label].str.rstrip(".")
    return RecordChunk(numbers[~invalid], frame, sorted(bad))


# How many lines, at most, decide whether a file to score has labels.
FORMAT_LINES = 1000
# pandas reading one record per line, as the line numbers count them: a quote is a character
# like any other (not the start of a field that spans lines), and a blank line is a record.
_LINE_BY_LINE = {"quoting": csv.QUOTE_NONE, "skip_blank_lines": False}
_NOT_UTF8 = re.compile("[\udc80-\udcff]")


def _to_numbers(values: pd.Series) -> np.ndarray:
    """A column as float64: NaN where a value is not a number, +-inf beyond float64's range."""
    if pd.api.types.is_numeric_dtype(values):
        return values.to_numpy(dtype=np.float64)
    # As text: pandas reads an integer beyond uint64 as a Python int, which to_numeric cannot
    # convert to a float (OverflowError), and mixes it with the column's strings.
    return pd.to_numeric(values.astype(str), errors="coerce").to_numpy(dtype=np.float64)


def _open_text(path: Path, compression: str | None) -> io.TextIOBase:
    """The file as text; a byte that is not UTF-8 becomes a lone surrogate that the checks
    report with its line, rather than an error for the whole file."""
    if compression:
        return gzip.open(path, "rt", encoding="utf-8", errors="surrogateescape")
    return open(path, encoding="utf-8", errors="surrogateescape")


def _compression(path: Path) -> str | None:
    """``"gzip"`` for a gzip file whatever its name, else None (plain text)."""
    with open(path, "rb") as f:
        return "gzip" if f.read(2) == b"\x1f\x8b" else None

