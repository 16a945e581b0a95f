"""Encode connection records as model inputs: scaled numbers, then one block per category.

The category vocabularies are fixed by the data set's schema: a declared value is one-hot, a
value outside the vocabulary is hashed into the column's buckets (or, with none, encodes as
all-zeros). How the numbers are scaled is ``data.scaling`` (``federation_scaling``), the
same in both backends:

- ``schema_log`` (the default): bounds fixed by the data set's schema (``unit``, ``log`` or
  ``bound`` per column), counts on a log scale. Nothing about any client's records is
  needed, so nothing crosses a client's boundary for it.
- ``federated_minmax`` (the study's): each training client reports ``ScalingStats`` of its
  own training records (per-feature min, max and a count) and the server combines them into
  exactly the bounds of the union. Those minima and maxima are values of real records.
"""

from __future__ import annotations

from collections.abc import Callable
import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fdagmm.data.schema import Categorical, TableSchema

# A scaled value (scaling range = [0, 1]) beyond this bound, 1e12 spans outside the
# range, is out of range: the encoder clips it there, so that the network sees a finite input
# whose square still fits float32 (1e308 bytes would overflow to inf, and the energy to NaN).
# No real record comes near: KDDCUP99's largest value is 1.4e9 bytes, and a method trained on
# smurf and neptune alone (dst_bytes always 0) sees normal traffic at 5e6 training spans.
OUT_OF_RANGE = 1e12

# Which records set the min-max scaling bounds: "train", the training records of the clients
# a method trains on (the study's rule: nothing but training data); "all", every record of
# every client, test records included (the DAGMM paper's preprocessing of KDDCUP99, which
# normalises the whole data set before splitting it).
SCALING_RECORDS = ("train", "all")


@dataclass(frozen=True)
class ScalingStats:
    """Per-feature minimum and maximum of the numeric features over ``n_records`` records."""

    minimum: np.ndarray
    maximum: np.ndarray
    n_records: int

    @classmethod
    def of(cls, frame: pd.DataFrame, numeric_features: list[str]) -> ScalingStats:
        if len(frame) == 0:
            raise ValueError("scaling statistics of an empty set of records")
        values = frame[numeric_features].to_numpy(dtype=np.float64)
        return cls(values.min(axis=0), values.max(axis=0), len(frame))

    @classmethod
    def combine(cls, parts: list[ScalingStats]) -> ScalingStats:
        """The statistics of the union of the disjoint record sets behind ``parts``."""
        return cls(
            np.min([p.minimum for p in parts], axis=0),
            np.max([p.maximum for p in parts], axis=0),
            sum(p.n_records for p in parts),
        )


@dataclass(frozen=True)
class Scaling:
    """How the encoder scales the numeric features: a feature in ``log_scaled`` first becomes
    sign(x) log1p(|x|); then [``minimum``, ``maximum``] (in those units) maps to [0, 1]."""

    minimum: np.ndarray
    maximum: np.ndarray
    log_scaled: np.ndarray  # bool per numeric feature

    @classmethod
    def of_stats(cls, stats: ScalingStats) -> Scaling:
        """``federated_minmax``: the records' own range, linear."""
        return cls(stats.minimum, stats.maximum, np.zeros(len(stats.minimum), dtype=bool))

    @classmethod
    def of_schema(cls, schema: TableSchema) -> Scaling:
        """``schema_log``: [0, 1] for the features in [0, 1] by definition, [0, log1p(scale)]
        after log1p for the counts, [low, high] for a declared bound; no record is looked at."""
        specs = [schema.numeric[n] for n in schema.numeric_features]
        log_scaled = np.array([s.kind == "log" for s in specs], dtype=bool)
        minimum = np.array([s.low if s.kind == "bound" else 0.0 for s in specs], dtype=np.float64)
        maximum = np.array(
            [np.log1p(s.scale) if s.kind == "log" else s.high if s.kind == "bound" else 1.0 for s in specs], dtype=np.float64
        )
        return cls(minimum, maximum, log_scaled)


# data.scaling: the federation's scaling of the numeric features.
SCHEMA_LOG = "schema_log"
FEDERATED_MINMAX = "federated_minmax"
SCALINGS = (SCHEMA_LOG, FEDERATED_MINMAX)


def needs_client_stats(scaling: str) -> bool:
    """Whether the scaling is made of the training clients' ``ScalingStats``."""
    return scaling == FEDERATED_MINMAX


def federation_scaling(scaling: str, schema: TableSchema, client_stats: Callable[[], list[ScalingStats]]) -> Scaling:
    """The federation's ``Scaling`` by its name; ``client_stats`` (the training clients'
    statistics) is called only by a scaling that needs them."""
    if scaling == FEDERATED_MINMAX:
        return Scaling.of_stats(ScalingStats.combine(client_stats()))
    if scaling == SCHEMA_LOG:
        return Scaling.of_schema(schema)
    raise ValueError(f"unknown scaling {scaling!r}: one of {', '.join(SCALINGS)}")


class FeatureEncoder:
    """Records -> float32 matrix: scaled numeric features, then a block per categorical column.

    A categorical column's block is its vocabulary (one-hot), then its hash buckets: a value
    outside the vocabulary sets the bucket its hash falls in, or, with no buckets, leaves the
    block all-zeros. A numeric value out of range (``out_of_range``) encodes as the bound it is
    beyond.
    """

    def __init__(self, scaling: Scaling, schema: TableSchema):
        self.scaling = scaling
        self.schema = schema
        self.numeric_features = schema.numeric_features
        self.categories: dict[str, Categorical] = {c: schema.categorical[c] for c in schema.categorical_features}
        # Halves: (x/2 - min/2) / (max/2 - min/2) gives the floats of (x - min) / (max - min)
        # (subnormal numbers aside), and stays finite for training values as far apart as
        # -1e308 and 1e308.
        self._half_minimum = scaling.minimum / 2
        half_span = scaling.maximum / 2 - self._half_minimum
        # A feature constant over the training records (num_outbound_cmds in the 10% file), or
        # spanning less than a float64 can halve, maps to x - min rather than dividing by ~0.
        self._half_span = np.where(half_span > 0, half_span, 0.5)
        widths = [len(cat.values) + cat.hash_buckets for cat in self.categories.values()]
        self._offsets = np.cumsum([len(self.numeric_features), *widths])

    @property
    def dim(self) -> int:
        return int(self._offsets[-1])

    @property
    def feature_names(self) -> list[str]:
        blocks = [
            [f"{c}={v}" for v in cat.values] + [f"{c}#{b}" for b in range(cat.hash_buckets)] for c, cat in self.categories.items()
        ]
        return [*self.numeric_features, *(name for block in blocks for name in block)]

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        out = np.zeros((len(frame), self.dim), dtype=np.float32)
        out[:, : len(self.numeric_features)] = np.clip(self._scaled(frame), -OUT_OF_RANGE, OUT_OF_RANGE)
        rows = np.arange(len(frame))
        for offset, (column, cat) in zip(self._offsets[:-1], self.categories.items()):
            codes = category_codes(frame[column], cat)
            known = codes >= 0  # no bucket for a value outside the vocabulary: all-zeros
            out[rows[known], offset + codes[known]] = 1.0
        return out

    def out_of_range(self, frame: pd.DataFrame) -> np.ndarray:
        """(records, numeric features) bool: the values further than ``OUT_OF_RANGE`` spans
        outside the scaling range (federated_minmax: the training range). A log-scaled feature
        never is: log1p keeps any float64 count below 710."""
        return np.abs(self._scaled(frame)) > OUT_OF_RANGE

    def _scaled(self, frame: pd.DataFrame) -> np.ndarray:
        """Numeric features scaled to the scaling range, in float64 (may overflow to +-inf)."""
        log_scaled = self.scaling.log_scaled
        # A copy when it is changed in place: to_numpy may return a view of the frame's block.
        numeric = frame[self.numeric_features].to_numpy(dtype=np.float64, copy=bool(log_scaled.any()))
        if log_scaled.any():
            logs = numeric[:, log_scaled]
            numeric[:, log_scaled] = np.sign(logs) * np.log1p(np.abs(logs))
        with np.errstate(over="ignore"):
            return (numeric / 2 - self._half_minimum) / self._half_span

    def unknown_counts(self, frame: pd.DataFrame) -> dict[str, int]:
        """Per categorical column without hash buckets, how many records hold a value outside
        its vocabulary (they encode as all-zeros; a hashed column encodes every value)."""
        return {c: int((~frame[c].isin(cat.values)).sum()) for c, cat in self.categories.items() if not cat.hash_buckets}


def category_codes(values: pd.Series, cat: Categorical) -> np.ndarray:
    """Each value's position in its column's block: its index in the vocabulary, else
    len(vocabulary) + its hash bucket, else -1 (no buckets)."""
    codes = pd.Index(cat.values).get_indexer(values) if cat.values else np.full(len(values), -1)
    unknown = codes < 0
    if cat.hash_buckets and unknown.any():
        # Hash each distinct value once; crc32 is the same in every process and on every site.
        found, uniques = pd.factorize(values[unknown].astype(str))
        buckets = np.array([zlib.crc32(v.encode("utf-8", "surrogateescape")) % cat.hash_buckets for v in uniques], dtype=np.int64)
        codes = codes.copy()
        codes[unknown] = len(cat.values) + buckets[found]
    return codes
