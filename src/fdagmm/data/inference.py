"""A first draft of a headered flow file's schema, from its header and first rows.

Used by ``data=csv`` without ``data.schema`` and by ``python src/schema.py infer FILE``, which
prints the draft as YAML for review and pinning (``data.schema=flows.yaml``). The rules:

- Identifiers are dropped: flow ids, addresses, ports, timestamps (by name, or values that
  look like IP addresses). They do not generalise from one site to another (another
  network's addresses, another day's clock) and they identify hosts, which a federation
  should never learn.
- A column whose sampled values are all numbers (or missing, NaN or infinite) is numeric:
  ``unit`` scaling if they all lie in [0, 1], else log1p(|x|) / log1p(2^32), a 32-bit
  counter's range: a fixed scale, never the records' own maximum. Review it: a unit-aware
  scale (seconds, bytes, packets) is better.
- Any other column is categorical with no declared vocabulary: its values are hashed into
  buckets, so that sites need not agree on, or send, the values they hold.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from fdagmm.data.reading import open_text, split_fields
from fdagmm.data.schema import DEFAULT_HASH_BUCKETS, Categorical, NumericScaling, TableSchema
from fdagmm.errors import DataError

SAMPLE_ROWS = 10_000
# Scale of an inferred log-scaled column: a 32-bit counter.
INFERRED_LOG_SCALE = 2.0**32
# Column names (lower case, letters and digits only) of identifiers: flow ids, addresses,
# ports, timestamps, across NetFlow/IPFIX, CICFlowMeter, Zeek and the benchmarks.
IDENTIFIER_NAMES = re.compile(
    r"^(id|flowid|uid|fuid|.*(srcip|dstip|sourceip|destinationip|srcaddr|dstaddr|ipv4srcaddr|ipv4dstaddr|ipv6srcaddr|ipv6dstaddr"
    r"|idorigh|idresph|idorigp|idrespp|origh|resph|srcport|dstport|sourceport|destinationport|l4srcport|l4dstport|sport|dsport)"
    r"|timestamp|ts|stime|ltime|starttime|endtime|date|time|flowstartmilliseconds|flowendmilliseconds)$"
)
_IP = re.compile(r"^(\d{1,3}\.){3}\d{1,3}$|^[0-9a-fA-F:]*:[0-9a-fA-F:]+$")
_NAN_SPELLINGS = {"", "nan", "-nan", "+nan", "inf", "-inf", "+inf", "infinity", "-infinity", "+infinity"}


def is_identifier(name: str, values: pd.Series) -> bool:
    normalised = re.sub(r"[^a-z0-9]", "", name.lower())
    sample = values.dropna().astype(str).head(100)
    return bool(IDENTIFIER_NAMES.match(normalised)) or (len(sample) > 0 and sample.str.match(_IP).all())


def infer_schema(
    path: Path,
    name: str = "csv",
    label_column: str | None = None,
    benign_labels: list[str] = (),
    drop_columns: list[str] = (),
    non_finite: str = "refuse",
    sample_rows: int = SAMPLE_ROWS,
) -> TableSchema:
    """The draft schema of a headered CSV file (gzip or plain)."""
    if not Path(path).is_file():
        raise DataError(f"no file at {path}: pass a headered CSV file (gzip or plain)")
    with open_text(path) as f:
        header = f.readline()
        columns = [c.strip() for c in split_fields(header)] if header.strip() else []
        if not columns:
            raise DataError(f"{path}: line 1 is empty; a flow file starts with its header")
        sample = pd.read_csv(f, header=None, names=columns, nrows=sample_rows, dtype=str, keep_default_na=False, index_col=False)
    if all(_is_number(c) for c in columns):
        raise DataError(f"{path}: line 1 is numbers, not a header; write a schema YAML for a headerless file (docs/data.md)")
    for given, key in ((drop_columns, "data.drop_columns"), ([label_column] if label_column else [], "data.label_column")):
        unknown = [c for c in given if c not in columns]
        if unknown:
            raise DataError(f"{key}: {unknown} are not columns of {path} (its header: {columns})")
    drop = list(drop_columns)
    numeric: dict[str, NumericScaling] = {}
    categorical: dict[str, Categorical] = {}
    for c in columns:
        if c == label_column or c in drop:
            continue
        values = sample[c]
        if is_identifier(c, values):
            drop.append(c)
            continue
        numbers = pd.to_numeric(values, errors="coerce")
        spelled_nan = values.str.strip().str.lower().isin(_NAN_SPELLINGS)
        if len(values) and (numbers.notna() | spelled_nan).all():
            finite = numbers[np.isfinite(numbers)]
            in_unit = len(finite) > 0 and finite.between(0, 1).all()
            numeric[c] = NumericScaling("unit") if in_unit else NumericScaling("log", scale=INFERRED_LOG_SCALE)
        else:
            categorical[c] = Categorical((), DEFAULT_HASH_BUCKETS)
    return TableSchema(
        name=name,
        columns=tuple(columns),
        numeric=numeric,
        categorical=categorical,
        header=True,
        drop=tuple(drop),
        label=label_column,
        benign_labels=tuple(str(v) for v in benign_labels),
        anomaly="attacks",
        non_finite=non_finite,
    )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
