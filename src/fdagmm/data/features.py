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
- ``federated_standard``, ``federated_robust``, ``federated_quantile``: first the schema's
  scaling, then a map fitted to the union of the training clients' records from statistics
  that add up over clients: per-feature sums and sums of squares (standardised: mean 0,
  standard deviation 1), or a histogram of ``HISTOGRAM_BINS`` bins over the schema's range
  (robust: median 0, inter-quartile range 1; quantile: each value's estimated rank in the
  union, in [0, 1]). No single record's value is sent, but a histogram bin holding one
  record places that record within 1/``HISTOGRAM_BINS`` of the schema's range.
"""

from __future__ import annotations

import dataclasses
import functools
import zlib
from collections.abc import Callable
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


# Bins of the histogram that federated_robust and federated_quantile are fitted to, over [0, 1]
# of the schema's scaling (values beyond fall in the end bins).
HISTOGRAM_BINS = 256


@dataclass(frozen=True)
class ScalingStats:
    """What one client's ``n_records`` records tell the server for a scaling made of records:
    only the fields that scaling needs are set (the rest, None, are not sent).

    ``minimum``/``maximum``: per feature, of the raw values (federated_minmax). ``total``,
    ``total_squares``: per feature, sums over the records of the schema-scaled value and its
    square (federated_standard). ``histogram``: (features, ``HISTOGRAM_BINS``) counts of the
    schema-scaled values (federated_robust, federated_quantile).
    """

    minimum: np.ndarray | None
    maximum: np.ndarray | None
    n_records: int
    total: np.ndarray | None = None
    total_squares: np.ndarray | None = None
    histogram: np.ndarray | None = None

    @classmethod
    def of(cls, frame: pd.DataFrame, schema: TableSchema, scaling: str) -> ScalingStats:
        """The statistics ``scaling`` needs of these records."""
        if len(frame) == 0:
            raise ValueError("scaling statistics of an empty set of records")
        if scaling == FEDERATED_MINMAX:
            values = frame[schema.numeric_features].to_numpy(dtype=np.float64)
            return cls(values.min(axis=0), values.max(axis=0), len(frame))
        units = Scaling.of_schema(schema).linear(frame[schema.numeric_features].to_numpy(dtype=np.float64))
        if scaling == FEDERATED_STANDARD:
            return cls(None, None, len(frame), total=units.sum(axis=0), total_squares=np.square(units).sum(axis=0))
        if scaling in (FEDERATED_ROBUST, FEDERATED_QUANTILE):
            bins = np.clip((units * HISTOGRAM_BINS).astype(np.int64), 0, HISTOGRAM_BINS - 1)
            histogram = np.stack([np.bincount(column, minlength=HISTOGRAM_BINS) for column in bins.T])
            return cls(None, None, len(frame), histogram=histogram)
        raise ValueError(f"scaling {scaling!r} is made of no client statistic")

    @classmethod
    def combine(cls, parts: list[ScalingStats]) -> ScalingStats:
        """The statistics of the union of the disjoint record sets behind ``parts``."""

        def summed(name: str) -> np.ndarray | None:
            return None if getattr(parts[0], name) is None else np.sum([getattr(p, name) for p in parts], axis=0)

        has_range = parts[0].minimum is not None
        return cls(
            np.min([p.minimum for p in parts], axis=0) if has_range else None,
            np.max([p.maximum for p in parts], axis=0) if has_range else None,
            sum(p.n_records for p in parts),
            total=summed("total"),
            total_squares=summed("total_squares"),
            histogram=summed("histogram"),
        )


@dataclass(frozen=True)
class Scaling:
    """How the encoder scales the numeric features: a feature in ``log_scaled`` first becomes
    sign(x) log1p(|x|); then [``minimum``, ``maximum``] (in those units) maps to [0, 1]. With a
    ``cdf`` (features, ``HISTOGRAM_BINS`` + 1), that value, clipped to [0, 1], then maps to the
    rank the cdf interpolates for it (federated_quantile)."""

    minimum: np.ndarray
    maximum: np.ndarray
    log_scaled: np.ndarray  # bool per numeric feature
    cdf: np.ndarray | None = None

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

    def after_schema(self, offset: np.ndarray, unit: np.ndarray) -> Scaling:
        """This (the schema's) scaling, then (u - ``offset``) / ``unit`` on its output u."""
        span = self.maximum - self.minimum
        return Scaling(self.minimum + offset * span, self.minimum + (offset + unit) * span, self.log_scaled)

    def linear(self, numeric: np.ndarray) -> np.ndarray:
        """(records, numeric features) float64 -> the log and linear steps (may overflow to +-inf)."""
        if self.log_scaled.any():
            numeric = numeric.copy()
            logs = numeric[:, self.log_scaled]
            numeric[:, self.log_scaled] = np.sign(logs) * np.log1p(np.abs(logs))
        # Halves: (x/2 - min/2) / (max/2 - min/2) gives the floats of (x - min) / (max - min)
        # (subnormal numbers aside), and stays finite for training values as far apart as
        # -1e308 and 1e308.
        half_minimum = self.minimum / 2
        half_span = self.maximum / 2 - half_minimum
        # A feature constant over the training records (num_outbound_cmds in the 10% file), or
        # spanning less than a float64 can halve, maps to x - min rather than dividing by ~0.
        half_span = np.where(half_span > 0, half_span, 0.5)
        with np.errstate(over="ignore"):
            return (numeric / 2 - half_minimum) / half_span


def _quantile_of_cdf(cdf: np.ndarray, q: float) -> np.ndarray:
    """Per feature, the value in [0, 1] below which a share ``q`` of the records lie
    (``_cdf_of_histogram``), interpolated linearly within the bin."""
    edges = np.linspace(0.0, 1.0, HISTOGRAM_BINS + 1)
    return np.array([np.interp(q, row, edges) for row in cdf])


def _cdf_of_histogram(histogram: np.ndarray) -> np.ndarray:
    """(features, bins) counts -> (features, bins + 1) share of records below each bin edge."""
    cumulative = np.concatenate([np.zeros((len(histogram), 1)), np.cumsum(histogram, axis=1)], axis=1)
    return cumulative / cumulative[:, -1:]


# data.scaling: the federation's scaling of the numeric features.
SCHEMA_LOG = "schema_log"
FEDERATED_MINMAX = "federated_minmax"
FEDERATED_STANDARD = "federated_standard"
FEDERATED_ROBUST = "federated_robust"
FEDERATED_QUANTILE = "federated_quantile"
SCALINGS = (SCHEMA_LOG, FEDERATED_MINMAX, FEDERATED_STANDARD, FEDERATED_ROBUST, FEDERATED_QUANTILE)
# A fitted unit (standard deviation, inter-quartile range) this small, in the schema's
# [0, 1], leaves the feature in the schema's units: a feature constant over the training
# records (or nearly) would otherwise be blown up by ~1/0.
MIN_FITTED_UNIT = 1e-6


def needs_client_stats(scaling: str) -> bool:
    """Whether the scaling is made of the training clients' ``ScalingStats``."""
    return scaling != SCHEMA_LOG


def federation_scaling(scaling: str, schema: TableSchema, client_stats: Callable[[], list[ScalingStats]]) -> Scaling:
    """The federation's ``Scaling`` by its name; ``client_stats`` (the training clients'
    statistics) is called only by a scaling that needs them."""
    if scaling not in SCALINGS:
        raise ValueError(f"unknown scaling {scaling!r}: one of {', '.join(SCALINGS)}")
    base = Scaling.of_schema(schema)
    if scaling == SCHEMA_LOG:
        return base
    stats = ScalingStats.combine(client_stats())
    if scaling == FEDERATED_MINMAX:
        return Scaling.of_stats(stats)
    if scaling == FEDERATED_STANDARD:
        mean = stats.total / stats.n_records
        variance = np.maximum(stats.total_squares / stats.n_records - np.square(mean), 0.0)
        return base.after_schema(mean, _fitted_unit(np.sqrt(variance)))
    if scaling == FEDERATED_ROBUST:
        cdf = _cdf_of_histogram(stats.histogram)
        quartiles = [_quantile_of_cdf(cdf, q) for q in (0.25, 0.5, 0.75)]
        return base.after_schema(quartiles[1], _fitted_unit(quartiles[2] - quartiles[0]))
    return dataclasses.replace(base, cdf=_cdf_of_histogram(stats.histogram))  # federated_quantile


def _fitted_unit(unit: np.ndarray) -> np.ndarray:
    return np.where(unit > MIN_FITTED_UNIT, unit, 1.0)


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
        numeric = np.clip(self._scaled(frame), -OUT_OF_RANGE, OUT_OF_RANGE)
        if self.scaling.cdf is not None:
            numeric = quantile_ranks(numeric, self.scaling.cdf)
        out[:, : len(self.numeric_features)] = numeric
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
        """Numeric features scaled linearly to the scaling range, in float64 (may overflow to +-inf)."""
        return self.scaling.linear(frame[self.numeric_features].to_numpy(dtype=np.float64))

    def unknown_counts(self, frame: pd.DataFrame) -> dict[str, int]:
        """Per categorical column without hash buckets, how many records hold a value outside
        its vocabulary (they encode as all-zeros; a hashed column encodes every value)."""
        return {c: int((~frame[c].isin(cat.values)).sum()) for c, cat in self.categories.items() if not cat.hash_buckets}


@functools.cache
def _vocabulary_index(values: tuple[str, ...]) -> pd.Index:
    """A vocabulary's hash table, built once (scoring one record at a time would rebuild it per record)."""
    return pd.Index(values)


def category_codes(values: pd.Series, cat: Categorical) -> np.ndarray:
    """Each value's position in its column's block: its index in the vocabulary, else
    len(vocabulary) + its hash bucket, else -1 (no buckets)."""
    codes = _vocabulary_index(cat.values).get_indexer(values) if cat.values else np.full(len(values), -1)
    unknown = codes < 0
    if cat.hash_buckets and unknown.any():
        # Hash each distinct value once; crc32 is the same in every process and on every site.
        found, uniques = pd.factorize(values[unknown].astype(str))
        buckets = np.array([zlib.crc32(v.encode("utf-8", "surrogateescape")) % cat.hash_buckets for v in uniques], dtype=np.int64)
        codes = codes.copy()
        codes[unknown] = len(cat.values) + buckets[found]
    return codes


def quantile_ranks(units: np.ndarray, cdf: np.ndarray) -> np.ndarray:
    """(records, features) values in the schema's [0, 1] (clipped there) -> their ranks under
    each feature's ``cdf`` over ``HISTOGRAM_BINS`` equal bins."""
    edges = np.linspace(0.0, 1.0, cdf.shape[1])
    clipped = np.clip(units, 0.0, 1.0)
    return np.stack([np.interp(clipped[:, j], edges, cdf[j]) for j in range(cdf.shape[0])], axis=1)
