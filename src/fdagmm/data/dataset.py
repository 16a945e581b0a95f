"""A data set as a run uses it: its schema, its files, and the records that train and test.

``build_dataset(cfg.data)`` builds it once from the ``data`` config group (``conf/data/<name>.yaml``
and the same override names for every data set); the datamodule, the partitioners, the Flower
partition writer, the scorer and the exported detector take it, or its schema, from there.

Where a run's test records come from, in this order:

1. ``data.test_path``: a labelled test file; every client is tested on all of it.
2. ``data.test_fraction``: a seeded fraction of the training file's inliers (the class that
   trains: benign traffic, or the attacks under ``anomaly: normal``) and the same fraction of
   its anomalies are the test set, shared by every client; the rest is the training side.
3. Neither: each client's own records are split by the partition (``partition.train_fraction``
   of its inliers train; the rest and its share of the anomalies test): the KDDCUP99 study's
   protocol.

With a test set (1 or 2) only inliers train: the training side's anomalies are left out, and
the run's log says how many. Without labels (``data.label_column=null``) every record trains
and nothing is evaluated.

``data.evaluate_on=validation`` (for choosing a configuration) never reads the test set: a
seeded ``data.validation_fraction`` of the training side's inliers is held out of training
and, with the training side's anomalies, is the test set of the run.
"""

from __future__ import annotations

import copy
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
from fdagmm.seeding import TEST_SPLIT_STREAM, VALIDATION_SPLIT_STREAM, derive_seed

log = logging.getLogger(__name__)

# data.evaluate_on: what a run is tested on.
TEST = "test"
VALIDATION = "validation"
EVALUATION_SETS = (TEST, VALIDATION)


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
        evaluate_on: str = TEST,
        validation_fraction: float = 0.2,
    ):
        if evaluate_on not in EVALUATION_SETS:
            raise ConfigError(f"data.evaluate_on must be one of {', '.join(EVALUATION_SETS)}, got {evaluate_on!r}")
        if test_paths and test_fraction is not None:
            raise ConfigError("data.test_path and data.test_fraction both choose the test set: set one of them to null")
        if not schema.labelled and (test_paths or test_fraction is not None):
            raise ConfigError("an unlabelled data set (data.label_column=null) has nothing to test: set data.test_path and data.test_fraction to null")
        if evaluate_on == VALIDATION and not (test_paths or test_fraction is not None):
            raise ConfigError(
                "data.evaluate_on=validation holds out part of the training side, which needs a test set of its own "
                "(data.test_path or data.test_fraction); without one the partition splits each client's records"
            )
        self.name = name
        self.schema = schema
        self.train_paths = list(train_paths)
        self.test_paths = list(test_paths)
        self.test_fraction = test_fraction
        self.cache_dir = cache_dir
        self.evaluate_on = evaluate_on
        self.validation_fraction = validation_fraction

    def grouped_by(self, column: str) -> ConnectionDataset:
        """This data set, its records read with ``column`` (``TableSchema.group_column``)."""
        grouped = copy.copy(self)
        grouped.schema = self.schema.with_overrides(group_column=column)
        return grouped

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
        if not self.has_test_pool:
            return Pools(train, None)
        if self.test_paths:
            side = train
        else:
            # A seeded share of the inliers and of the anomalies test; the rest is the training side.
            rng = np.random.default_rng(derive_seed(seed, TEST_SPLIT_STREAM))
            test_inliers, side_inliers = _seeded_share(rng, np.flatnonzero(~self.is_anomaly(train)), self.test_fraction)
            test_anomalies, side_anomalies = _seeded_share(rng, np.flatnonzero(self.is_anomaly(train)), self.test_fraction)
            log.info(
                "%s: %d inliers and %d anomalies test (data.test_fraction=%s); %d inliers and %d anomalies are the training side",
                self.name, len(test_inliers), len(test_anomalies), self.test_fraction, len(side_inliers), len(side_anomalies),
            )
            side = train.iloc[np.sort(np.concatenate([side_inliers, side_anomalies]))].reset_index(drop=True)
        if self.evaluate_on == VALIDATION:
            return self._validation(side, seed)
        test = self.read(self.test_paths) if self.test_paths else train.iloc[np.sort(np.concatenate([test_inliers, test_anomalies]))]
        return Pools(self.inliers(side, "data.train_path" if self.test_paths else "the training side"), test.reset_index(drop=True))

    def _validation(self, side: pd.DataFrame, seed: int) -> Pools:
        """The training side's inliers less a seeded share, which tests with its anomalies."""
        anomalies = np.flatnonzero(self.is_anomaly(side))
        if len(anomalies) == 0:
            raise DataError(
                f"{self.name}: data.evaluate_on=validation needs anomalies on the training side to validate against, "
                "and it holds none: give a training file that holds labelled attacks"
            )
        rng = np.random.default_rng(derive_seed(seed, VALIDATION_SPLIT_STREAM))
        held_out, trains = _seeded_share(rng, np.flatnonzero(~self.is_anomaly(side)), self.validation_fraction)
        log.info(
            "%s: validation (the test set is not read): %d inliers train; %d held-out inliers and %d anomalies of the training side test",
            self.name, len(trains), len(held_out), len(anomalies),
        )
        validation = side.iloc[np.sort(np.concatenate([held_out, anomalies]))].reset_index(drop=True)
        return Pools(side.iloc[np.sort(trains)].reset_index(drop=True), validation)

    def inliers(self, frame: pd.DataFrame, source: str) -> pd.DataFrame:
        """The records that train (every record, unlabelled); the log counts those left out."""
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

    def families(self, frame: pd.DataFrame) -> np.ndarray:
        """Each record's label, an attack's family where the schema names a column for it
        (``attack_category``: UNSW-NB15's attack_cat, whose label is only 0 or 1)."""
        labels = self.labels(frame)
        if self.schema.attack_category is None or not self.schema.labelled:
            return labels
        attacks = self.schema.is_anomaly(labels) if self.schema.anomaly == "attacks" else ~self.schema.is_anomaly(labels)
        return np.where(attacks, frame[self.schema.attack_category].to_numpy(dtype=str), labels)

    def is_anomaly(self, frame: pd.DataFrame) -> np.ndarray:
        """Which records are of the anomaly class (all False without labels)."""
        if not self.schema.labelled:
            return np.zeros(len(frame), dtype=bool)
        return self.schema.is_anomaly(frame[self.schema.label].to_numpy(dtype=str))


def _seeded_share(rng: np.random.Generator, rows: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """``round(fraction * len(rows))`` of ``rows`` drawn at random, and the others."""
    rows = rng.permutation(rows)
    n = int(round(fraction * len(rows)))
    return rows[:n], rows[n:]


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
        # .get: configs saved before these keys existed (an exported model.pt's) still build.
        "anomaly": KEEP if data.get("anomaly") is None else data.anomaly,
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
        evaluate_on=data.get("evaluate_on", TEST),
        validation_fraction=data.get("validation_fraction", 0.2),
    )


def _inferred(path: Path, name: str, overrides: dict[str, Any]) -> TableSchema:
    if not path.is_file():
        raise DataError(f"data.train_path: no file at {path}")
    schema = infer_schema(
        path, name=name, label_column=overrides["label_column"],
        benign_labels=[] if overrides["benign_labels"] is KEEP else overrides["benign_labels"],
        drop_columns=overrides["drop_columns"],
        non_finite="refuse" if overrides["non_finite"] is KEEP else overrides["non_finite"],
    )  # fmt: skip
    return schema.with_overrides(anomaly=overrides["anomaly"])


def _paths(value: Any, key: str) -> list[Path]:
    """A file or a list of files, as a list."""
    if value is None:
        return []
    if isinstance(value, (list, tuple, ListConfig)):
        return [Path(str(v)) for v in value]
    if isinstance(value, str):
        return [Path(value)]
    raise ConfigError(f"{key} must be a file or a list of files, got {value!r}")
