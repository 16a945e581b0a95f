"""A data set as a run uses it: its schema, its files, and the records that train and test.

``build_dataset(cfg.data)`` builds it once from the ``data`` config group (``conf/data/<name>.yaml``
and the same override names for every data set); the datamodule, the partitioners, the Flower
partition writer, the scorer and the exported detector take it, or its schema, from there.

Where a run's test records come from, in this order:

1. ``data.test_path``: a labelled test file; every client is tested on all of it.
2. ``data.test_fraction``: a seeded fraction of the training file's inliers (the class that
   trains: benign traffic, or the attacks under ``anomaly: normal``), with every anomaly, is
   the test set, shared by every client; the rest of the inliers train.
3. Neither: each client's own records are split by the partition (``partition.train_fraction``
   of its inliers train; the rest and its share of the anomalies test): the KDDCUP99 study's
   protocol.

With a test set (1 or 2) only inliers train: the training file's anomalies are left out, and
the run's log says how many. Without labels (``data.label_column=null``) every record trains
and nothing is evaluated.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, ListConfig, OmegaConf

from fdagmm.data import kdd99
from fdagmm.data.inference import infer_schema
from fdagmm.data.loading import load_table
from fdagmm.data.schema import KEEP, TableSchema, load_schema
from fdagmm.errors import ConfigError, DataError
from fdagmm.seeding import TEST_SPLIT_STREAM, derive_seed

log = logging.getLogger(__name__)


@dataclass
class Pools:
    """The records a partition splits into clients: ``train`` (for the clients' training sets)
    and ``test`` (every client's test set), or ``test=None`` (each client's own records are
    split into training and test sets)."""

    train: pd.DataFrame
    test: pd.DataFrame | None


class ConnectionDataset:
    """A data set's schema and files; ``pools(seed)`` reads them (through the parse cache)."""

    def __init__(
        self,
        name: str,
        schema: TableSchema,
        train_paths: list[Path],
        test_paths: list[Path] = (),
        test_fraction: float | None = None,
        cache_dir: Path | None = None,
    ):
        if test_paths and test_fraction is not None:
            raise ConfigError("data.test_path and data.test_fraction both choose the test set: set one of them to null")
        if not schema.labelled and (test_paths or test_fraction is not None):
            raise ConfigError("an unlabelled data set (data.label_column=null) has nothing to test: set data.test_path and data.test_fraction to null")
        self.name = name
        self.schema = schema
        self.train_paths = list(train_paths)
        self.test_paths = list(test_paths)
        self.test_fraction = test_fraction
        self.cache_dir = cache_dir

    @property
    def has_test_pool(self) -> bool:
        return bool(self.test_paths) or self.test_fraction is not None

    def read(self, paths: list[Path]) -> pd.DataFrame:
        """Every record of ``paths``, one file after the other."""
        frames = []
        for path in paths:
            kdd99.fetch_if_missing(path, self.schema)
            table = load_table(path, self.schema, self.cache_dir)
            if table.n_dropped or table.n_clipped:
                log.info(
                    "%s: %d records with a missing or non-finite number dropped, %d with an infinite one clipped (non_finite: %s)",
                    path, table.n_dropped, table.n_clipped, self.schema.non_finite,
                )
            frames.append(table.frame)
        return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)

    def pools(self, seed: int) -> Pools:
        train = self.read(self.train_paths)
        if self.test_paths:
            return Pools(self._inliers(train, "data.train_path"), self.read(self.test_paths))
        if self.test_fraction is None:
            return Pools(train, None)
        # A seeded share of the inliers, and every anomaly, test; the other inliers train.
        rng = np.random.default_rng(derive_seed(seed, TEST_SPLIT_STREAM))
        inliers = rng.permutation(np.flatnonzero(~self.is_anomaly(train)))
        n_test = int(round(self.test_fraction * len(inliers)))
        test_rows = np.sort(np.concatenate([inliers[:n_test], np.flatnonzero(self.is_anomaly(train))]))
        train_rows = np.sort(inliers[n_test:])
        log.info(
            "%s: %d inlier records train; %d inliers and %d anomalies test (data.test_fraction=%s)",
            self.name, len(train_rows), n_test, len(test_rows) - n_test, self.test_fraction,
        )
        return Pools(train.iloc[train_rows].reset_index(drop=True), train.iloc[test_rows].reset_index(drop=True))

    def _inliers(self, frame: pd.DataFrame, source: str) -> pd.DataFrame:
        if not self.schema.labelled:
            return frame
        anomalous = self.is_anomaly(frame)
        if anomalous.any():
            log.info("%s: %d of its %d records are anomalies (%s): left out of training", source, anomalous.sum(), len(frame), self.role)
        return frame[~anomalous].reset_index(drop=True)

    @property
    def role(self) -> str:
        """What is flagged: ``attacks`` or (KDDCUP99's benchmark convention) ``normal`` traffic."""
        return self.schema.anomaly

    def labels(self, frame: pd.DataFrame) -> np.ndarray:
        """Each record's label as a string; "" for every record of an unlabelled data set."""
        if not self.schema.labelled:
            return np.full(len(frame), "", dtype=object)
        return frame[self.schema.label].to_numpy(dtype=str)

    def is_anomaly(self, frame: pd.DataFrame) -> np.ndarray:
        """Which records are of the anomaly class (all False without labels)."""
        if not self.schema.labelled:
            return np.zeros(len(frame), dtype=bool)
        return self.schema.is_anomaly(frame[self.schema.label].to_numpy(dtype=str))


def build_dataset(data: DictConfig) -> ConnectionDataset:
    """The data set the ``data`` config group describes (its schema with the run's overrides)."""
    train_paths = _paths(data.train_path, "data.train_path")
    if not train_paths:
        raise ConfigError(f"data.train_path is not set: pass data.train_path=<file> (or a list of files) for data={data.name}")
    overrides: dict[str, Any] = {
        "label_column": KEEP if OmegaConf.is_missing(data, "label_column") else data.label_column,
        "benign_labels": KEEP if data.benign_labels is None else list(data.benign_labels),
        "drop_columns": list(data.drop_columns),
        "non_finite": KEEP if data.non_finite is None else data.non_finite,
    }
    if data.schema is not None:
        schema = load_schema(data.schema).with_overrides(**overrides)
    else:
        if overrides["label_column"] is KEEP:
            raise ConfigError(
                f"data={data.name} with no data.schema infers one from {train_paths[0]}: name its label column "
                "(data.label_column=<column>, or null for unlabelled records), or pass data.schema=<schema YAML>"
            )
        schemas = [_inferred(path, data.name, overrides) for path in train_paths]
        for path, other in zip(train_paths[1:], schemas[1:]):
            difference = schemas[0].first_difference(other)
            if difference:
                raise DataError(f"{train_paths[0]} and {path} do not share one schema ({difference}): every site must train with the same schema; pin one with data.schema=<file>")
        schema = schemas[0]
    return ConnectionDataset(
        name=data.name,
        schema=schema,
        train_paths=train_paths,
        test_paths=_paths(data.test_path, "data.test_path"),
        test_fraction=data.test_fraction,
        cache_dir=None if data.cache_dir is None else Path(data.cache_dir),
    )


def _inferred(path: Path, name: str, overrides: dict[str, Any]) -> TableSchema:
    if not path.is_file():
        raise DataError(f"data.train_path: no file at {path}")
    return infer_schema(
        path, name=name, label_column=overrides["label_column"],
        benign_labels=[] if overrides["benign_labels"] is KEEP else overrides["benign_labels"],
        drop_columns=overrides["drop_columns"],
        non_finite="refuse" if overrides["non_finite"] is KEEP else overrides["non_finite"],
    )  # fmt: skip


def _paths(value: Any, key: str) -> list[Path]:
    """A file or a list of files, as a list."""
    if value is None:
        return []
    if isinstance(value, (list, tuple, ListConfig)):
        return [Path(str(v)) for v in value]
    if isinstance(value, str):
        return [Path(value)]
    raise ConfigError(f"{key} must be a file or a list of files, got {value!r}")
