"""The Python API: a detector with PyOD's contract, and a federation a notebook can run.

``DAGMM`` trains this project's DAGMM on the records it is given, as ``python src/train.py
data=<data> method=pooled`` would on a file of them (the same code, config and checks), and
scores with the exported detector that ``score.py`` reads. Records are a DataFrame with the
data set's columns, or, with ``data="csv"`` (the default), a numeric array (its columns named
``x0``, ``x1``, ...):

>>> import numpy as np
>>> from fdagmm import DAGMM
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(2000, 1)) @ np.ones((1, 4)) + 0.1 * rng.normal(size=(2000, 4))  # four correlated features
>>> detector = DAGMM(contamination=0.05, epochs=2).fit(X)
>>> float(detector.labels_.mean())  # the share of the training records flagged
0.05
>>> detector.predict(np.array([[0.5, 0.5, 0.5, 0.5], [1.0, -1.0, 1.0, -1.0]])).tolist()  # the second breaks the correlation
[0, 1]

``federate`` runs a whole configured federation (``src/train.py``'s, from the same overrides)
and returns its detector and metrics.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from hydra import compose, initialize_config_dir

from fdagmm.config import register_configs
from fdagmm.data.reading import checked_records
from fdagmm.data.schema import TableSchema, load_schema
from fdagmm.detection.detector import Detector
from fdagmm.detection.scoring import score_records
from fdagmm.errors import ConfigError, DataError

# The configs of the source checkout this package is installed from (pip install -e .).
CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def compose_config(overrides: Sequence[str]):
    """The run config ``python src/train.py OVERRIDES`` would run."""
    if not (CONF_DIR / "config.yaml").is_file():
        raise ConfigError(f"no configs at {CONF_DIR}: the Python API runs from a source checkout installed with pip install -e .")
    register_configs()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        return compose(config_name="config", overrides=list(overrides))


class DAGMM:
    """DAGMM as a PyOD detector: ``fit(X)``, ``decision_function(X)`` (energies: higher is more
    anomalous), ``predict(X)`` (0 inlier, 1 anomaly), and after ``fit`` the attributes
    ``decision_scores_`` (the training records' energies), ``threshold_`` (their
    ``1 - contamination`` quantile) and ``labels_``.

    ``data``: the data set whose schema reads the records (``csv``: inferred from them;
    ``nsl_kdd``, ``unsw_nb15``, ...). ``epochs``: training epochs (None: the data set's
    configuration). ``overrides``: any other ``src/train.py`` overrides
    (``["model.net.latent_dim=4"]``). ``output_dir``: keep the training run there (its
    metrics.json, TensorBoard events and model.pt); None: a temporary dir, removed after.
    """

    def __init__(
        self,
        contamination: float = 0.1,
        data: str = "csv",
        epochs: int | None = None,
        seed: int = 0,
        overrides: Sequence[str] = (),
        output_dir: str | Path | None = None,
    ):
        if not 0 < contamination < 0.5:
            raise ConfigError(f"contamination must be in (0, 0.5), got {contamination!r}")
        self.contamination = contamination
        self.data = data
        self.epochs = epochs
        self.seed = seed
        self.overrides = list(overrides)
        self.output_dir = output_dir

    def fit(self, X, y=None) -> DAGMM:
        """Train on every record of ``X`` (unsupervised: ``y`` and a label column are ignored)."""
        frame = _as_frame(X)
        with tempfile.TemporaryDirectory(prefix="fdagmm-fit-") as tmp:
            records = Path(tmp) / "records.csv"
            run_dir = Path(self.output_dir) if self.output_dir is not None else Path(tmp) / "run"
            cfg = compose_config([
                f"data={self.data}", f"data.train_path={records}", "data.test_path=null", "data.test_fraction=null", "data.label_column=null",
                "data.cache_dir=null", "method=pooled", "partition=iid", "partition.num_clients=1",
                f"seed={self.seed}", f"paths.output_dir={run_dir}",
                *([f"fed.rounds={self.epochs}"] if self.epochs is not None else []), *self.overrides,
            ])  # fmt: skip
            _write_records(frame, None if cfg.data.schema is None else load_schema(cfg.data.schema), records)
            _quietly_train(cfg)
            self.detector_ = Detector.load(run_dir)
        self.decision_scores_ = self.decision_function(frame)
        self.threshold_ = float(np.quantile(self.decision_scores_, 1.0 - self.contamination))
        self.labels_ = (self.decision_scores_ > self.threshold_).astype(int)
        self.detector_.threshold, self.detector_.anomaly_ratio = self.threshold_, self.contamination
        return self

    def decision_function(self, X) -> np.ndarray:
        """Each record's energy (float64); a record that cannot be scored is a DataError naming it."""
        return self._scored(X).energy

    def predict(self, X) -> np.ndarray:
        """1 for a record above ``threshold_`` (or with a value far outside the training range), else 0."""
        return self._scored(X).flagged.astype(int)

    def save(self, path: str | Path) -> None:
        """Write the ``model.pt`` that ``score.py`` and ``serve.py`` read (with ``threshold_``)."""
        self._fitted().save(Path(path))

    @classmethod
    def load(cls, path: str | Path) -> DAGMM:
        """A fitted detector from a ``model.pt`` (or a run dir holding one)."""
        detector = Detector.load(path)
        loaded = cls(contamination=detector.anomaly_ratio if 0 < detector.anomaly_ratio < 0.5 else 0.1, data=detector.dataset)
        loaded.detector_ = detector
        loaded.threshold_ = detector.threshold
        return loaded

    def _scored(self, X):
        detector = self._fitted()
        frame = checked_records(_columns(_as_frame(X)), detector.encoder.schema, "X.iloc")
        return score_records(detector, frame, detector.threshold)

    def _fitted(self) -> Detector:
        if not hasattr(self, "detector_"):
            raise ConfigError("this DAGMM is not fitted yet: call fit(X) first, or DAGMM.load(path)")
        return self.detector_


def federate(overrides: Sequence[str] = (), output_dir: str | Path | None = None) -> tuple[DAGMM, dict[str, Any]]:
    """Run the federation ``python src/train.py OVERRIDES`` runs; return its detector (the
    evaluated client's ``model.pt``, as ``DAGMM``) and its metrics (metrics.json's payload).

    ``output_dir``: the run dir (None: ``outputs/runs/<date_time>_<method>_<partition>_seed<seed>``,
    as train.py names it).
    """
    from fdagmm.run.experiment import train

    cfg = compose_config([*overrides, "paths.output_dir=."])
    if output_dir is None:
        output_dir = Path("outputs/runs") / f"{time.strftime('%Y-%m-%d_%H-%M-%S')}_{cfg.method.name}_{cfg.partition.name}_seed{cfg.seed}"
    cfg = compose_config([*overrides, f"paths.output_dir={output_dir}"])
    payload = train(cfg)
    return DAGMM.load(output_dir), payload


def _quietly_train(cfg) -> None:
    """One training run with its per-round lines at WARNING: a notebook's ``fit`` prints nothing."""
    from fdagmm.run.experiment import train

    logger = logging.getLogger("fdagmm")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        train(cfg)
    finally:
        logger.setLevel(level)


def _as_frame(X) -> pd.DataFrame:
    if isinstance(X, pd.DataFrame):
        return X
    array = np.asarray(X)
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.number):
        raise DataError(f"X must be a DataFrame with the data set's columns or a 2-d numeric array, got shape {array.shape} of {array.dtype}")
    return pd.DataFrame(array.astype(np.float64), columns=[f"x{j}" for j in range(array.shape[1])])


def _columns(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """A DataFrame's columns as arrays (text columns as Python objects), as ``checked_records`` takes them."""
    return {str(c): frame[c].to_numpy(dtype=np.float64 if pd.api.types.is_float_dtype(frame[c]) else object) for c in frame.columns}


def _write_records(frame: pd.DataFrame, schema: TableSchema | None, path: Path) -> None:
    """The records as a file of the data set (``schema``; None: a CSV whose schema is inferred),
    features only: unsupervised training reads no label."""
    if schema is None:
        frame.to_csv(path, index=False)
        return
    checked_records(_columns(frame), schema, "X.iloc")  # a bad record is named by its row, not its line in a temporary file
    features = [c for c in schema.columns if c in schema.features]
    if schema.header:
        frame[features].to_csv(path, index=False)
    else:
        # A headerless file's columns are positional: the schema's, up to its last feature.
        last = max(schema.columns.index(c) for c in features)
        missing = [c for c in schema.columns[: last + 1] if c not in frame]
        if missing:
            raise DataError(f"X lacks the columns {missing} of the {schema.name} schema")
        frame[list(schema.columns[: last + 1])].to_csv(path, index=False, header=False)
