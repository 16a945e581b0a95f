"""Encode KDDCUP99 records as model inputs: one-hot categories and scaled numbers.

The category vocabulary is fixed by the schema (``KDD99.categories``). How the numbers are
scaled is ``data.scaling`` (``federation_scaling``), the same in both backends:

- ``schema_log`` (the default): bounds fixed by the data set's schema (``KDD99.unit_interval``
  and ``KDD99.log_scales``), counts on a log scale. Nothing about any client's records is
  needed, so nothing crosses a client's boundary for it.
- ``federated_minmax`` (the study's): each training client reports ``ScalingStats`` of its
  own training records (per-feature min, max and a count) and the server combines them into
  exactly the bounds of the union. Those minima and maxima are values of real records.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fdagmm.data.kdd99 import KDD99
from fdagmm.data.schema import DatasetSchema

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
    def of(cls, frame: pd.DataFrame) -> ScalingStats:
        if len(frame) == 0:
            raise ValueError("scaling statistics of an empty set of records")
        values = frame[KDD99.numeric_features].to_numpy(dtype=np.float64)
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
    def of_schema(cls, schema: DatasetSchema) -> Scaling:
        """``schema_log``: [0, 1] for the features in [0, 1] by definition, [0, log1p(scale)]
        after log1p for the counts; no record is looked at."""
        names = schema.numeric_features
        unknown = set(names) - set(schema.unit_interval) - set(schema.log_scales)
        if unknown:
            raise ValueError(f"{schema.name}'s schema gives no fixed scaling for {sorted(unknown)}")
        log_scaled = np.array([n in schema.log_scales for n in names])
        maximum = np.array([np.log1p(schema.log_scales[n]) if n in schema.log_scales else 1.0 for n in names])
        return cls(np.zeros(len(names)), maximum, log_scaled)


# data.scaling: the federation's scaling of the numeric features.
SCHEMA_LOG = "schema_log"
FEDERATED_MINMAX = "federated_minmax"
SCALINGS = (SCHEMA_LOG, FEDERATED_MINMAX)


def needs_client_stats(scaling: str) -> bool:
    """Whether the scaling is made of the training clients' ``ScalingStats``."""
    return scaling == FEDERATED_MINMAX


def federation_scaling(scaling: str, client_stats: Callable[[], list[ScalingStats]]) -> Scaling:
    """The federation's ``Scaling`` by its name; ``client_stats`` (the training clients'
    statistics) is called only by a scaling that needs them."""
    if scaling == FEDERATED_MINMAX:
        return Scaling.of_stats(ScalingStats.combine(client_stats()))
    if scaling == SCHEMA_LOG:
        return Scaling.of_schema(KDD99)
    raise ValueError(f"unknown scaling {scaling!r}: one of {', '.join(SCALINGS)}")


class FeatureEncoder:
    """Records -> float32 matrix: scaled numeric features, then one-hot categories.

    A category value outside the vocabulary encodes as all-zeros in its column's block; a
    numeric value out of range (``out_of_range``) as the bound it is beyond.
    """

    def __init__(self, scaling: Scaling, categories: dict[str, list[str]] = KDD99.categories):
        self.scaling = scaling
        self.categories = categories
        # Halves: (x/2 - min/2) / (max/2 - min/2) gives the floats of (x - min) / (max - min)
        # (subnormal numbers aside), and stays finite for training values as far apart as
        # -1e308 and 1e308.
        self._half_minimum = scaling.minimum / 2
        half_span = scaling.maximum / 2 - self._half_minimum
        # A feature constant over the training records (num_outbound_cmds in the 10% file), or
        # spanning less than a float64 can halve, maps to x - min rather than dividing by ~0.
        self._half_span = np.where(half_span > 0, half_span, 0.5)
        self._offsets = np.cumsum([len(KDD99.numeric_features)] + [len(v) for v in categories.values()])

    @property
    def dim(self) -> int:
        return int(self._offsets[-1])

    @property
    def feature_names(self) -> list[str]:
        return [*KDD99.numeric_features] + [f"{c}={v}" for c, vocab in self.categories.items() for v in vocab]

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        out = np.zeros((len(frame), self.dim), dtype=np.float32)
        out[:, : len(KDD99.numeric_features)] = np.clip(self._scaled(frame), -OUT_OF_RANGE, OUT_OF_RANGE)
        rows = np.arange(len(frame))
        for offset, (column, vocabulary) in zip(self._offsets[:-1], self.categories.items()):
            codes = pd.Index(vocabulary).get_indexer(frame[column])
            known = codes >= 0  # a value outside the vocabulary stays all-zeros
            out[rows[known], offset + codes[known]] = 1.0
        return out

    def out_of_range(self, frame: pd.DataFrame) -> np.ndarray:
        """(records, numeric features) bool: the values further than ``OUT_OF_RANGE`` spans
        outside the scaling range (federated_minmax: the training range). With schema_log only
        a feature in [0, 1] by definition can be: log1p keeps any float64 count below 710."""
        return np.abs(self._scaled(frame)) > OUT_OF_RANGE

    def _scaled(self, frame: pd.DataFrame) -> np.ndarray:
        """Numeric features scaled to the scaling range, in float64 (may overflow to +-inf)."""
        log_scaled = self.scaling.log_scaled
        # A copy when it is changed in place: to_numpy may return a view of the frame's block.
        numeric = frame[KDD99.numeric_features].to_numpy(dtype=np.float64, copy=bool(log_scaled.any()))
        if log_scaled.any():
            logs = numeric[:, log_scaled]
            numeric[:, log_scaled] = np.sign(logs) * np.log1p(np.abs(logs))
        with np.errstate(over="ignore"):
            return (numeric / 2 - self._half_minimum) / self._half_span

    def unknown_counts(self, frame: pd.DataFrame) -> dict[str, int]:
        """Per categorical column, how many records hold a value outside the vocabulary."""
        return {c: int((~frame[c].isin(vocab)).sum()) for c, vocab in self.categories.items()}
