"""Encode KDDCUP99 records as model inputs: one-hot categories and min-max scaled numbers.

The category vocabulary is fixed by the schema (``kdd.CATEGORIES``). The scaling bounds are
fitted on training records only; in a federation each client reports ``ScalingStats`` of its
own training records (per-feature min, max and a count) and the server combines them, which
gives exactly the bounds of the union without any record leaving a client.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from fdagmm.data.kdd99 import KDD99

# A scaled value (training range = [0, 1]) beyond this bound, 1e12 training spans outside the
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


class FeatureEncoder:
    """Records -> float32 matrix: scaled numeric features, then one-hot categories.

    A category value outside the vocabulary encodes as all-zeros in its column's block; a
    numeric value out of range (``out_of_range``) as the bound it is beyond.
    """

    def __init__(self, scaling: ScalingStats, categories: dict[str, list[str]] = KDD99.categories):
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
        """(records, numeric features) bool: the values further than ``OUT_OF_RANGE`` training
        spans outside the training range."""
        return np.abs(self._scaled(frame)) > OUT_OF_RANGE

    def _scaled(self, frame: pd.DataFrame) -> np.ndarray:
        """Numeric features scaled to the training range, in float64 (may overflow to +-inf)."""
        numeric = frame[KDD99.numeric_features].to_numpy(dtype=np.float64)
        with np.errstate(over="ignore"):
            return (numeric / 2 - self._half_minimum) / self._half_span

    def unknown_counts(self, frame: pd.DataFrame) -> dict[str, int]:
        """Per categorical column, how many records hold a value outside the vocabulary."""
        return {c: int((~frame[c].isin(vocab)).sum()) for c, vocab in self.categories.items()}
