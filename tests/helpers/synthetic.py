"""Synthetic connection records with KDDCUP99's schema, for tests that need no data file.

Each label has its own random centre for the numeric features and its own favourite
categories, so that attack types are distinguishable and normal records differ from attacks:
enough for a DAGMM to learn something, and for partitions to have every kind of label.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.kdd import KDD99

# Label -> share of the records: two common attacks, a few rare ones, normal traffic.
LABEL_SHARES = {"smurf": 0.4, "neptune": 0.25, "back": 0.04, "satan": 0.04, "ipsweep": 0.03, "teardrop": 0.02, "normal": 0.22}


def synthetic_frame(n: int, seed: int = 0, label_shares: dict[str, float] = LABEL_SHARES) -> pd.DataFrame:
    """``n`` records as the reader returns them: the 41 features, then the label (no dot)."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(list(label_shares), size=n, p=np.array(list(label_shares.values())) / sum(label_shares.values()))
    numeric = KDD99.numeric_features
    frame = pd.DataFrame(index=range(n))
    centres = {label: rng.uniform(0, 100, size=len(numeric)) for label in label_shares}
    values = np.stack([centres[label] for label in labels]) + rng.normal(0, 5, size=(n, len(numeric)))
    for j, column in enumerate(numeric):
        frame[column] = np.abs(values[:, j]).round(2)
    for column, vocabulary in KDD99.categories.items():
        favourite = {label: rng.integers(len(vocabulary)) for label in label_shares}
        codes = np.array([favourite[label] for label in labels])
        noise = rng.random(n) < 0.1
        codes[noise] = rng.integers(len(vocabulary), size=noise.sum())
        frame[column] = np.asarray(vocabulary, dtype=object)[codes]
    frame[KDD99.label] = labels
    return frame[[*KDD99.features, KDD99.label]]


def write_kdd_file(path: Path, n: int, seed: int = 0) -> Path:
    """A gzip KDDCUP99-format file (labels with their trailing dot) of synthetic records."""
    frame = synthetic_frame(n, seed)
    frame[KDD99.label] = frame[KDD99.label] + "."
    with gzip.open(path, "wt") as f:
        frame.to_csv(f, header=False, index=False)
    return path
