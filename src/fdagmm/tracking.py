"""Where a run's results go: TensorBoard, metrics.json and the terminal."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_only
from rich.console import Console
from rich.table import Table
from torch.utils.tensorboard.summary import hparams as hparams_summary

# Final metrics shown in the terminal table, in this order.
TABLE_METRICS = {
    "test/precision": "precision",
    "test/recall": "recall",
    "test/f1": "F1",
    "test/auroc": "AUROC",
    "test/avg_precision": "avg precision",
}


class ContinuousStepLogger(TensorBoardLogger):
    """A TensorBoard logger whose steps continue across Trainers.

    Each federated round builds a fresh Trainer whose step counter restarts at 0; the driver
    adds each round's steps to ``step_offset`` so a client's curve runs on one axis.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.step_offset = 0

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        super().log_metrics(metrics, None if step is None else step + self.step_offset)


def log_hparams(logger: TensorBoardLogger, hparams: dict[str, Any], final: dict[str, float]) -> None:
    """The run's settings with its final metrics, for TensorBoard's HParams tab.

    The tab reads each metric's last value from the scalars already logged per round.
    """
    for summary in hparams_summary(hparams, metric_dict=final):
        logger.experiment.file_writer.add_summary(summary)
    logger.experiment.flush()


def log_score_distribution(
    logger: TensorBoardLogger, energy: np.ndarray, is_anomaly: np.ndarray, step: int
) -> None:
    """Histograms of the test energies (all, normal, attack records) and a PR curve."""
    writer = logger.experiment
    writer.add_histogram("test/energy", energy, step)
    writer.add_histogram("test/energy_normal_records", energy[is_anomaly], step)
    writer.add_histogram("test/energy_attack_records", energy[~is_anomaly], step)
    # add_pr_curve wants scores in [0, 1]: the energy's rank is a monotone map there.
    rank = np.argsort(np.argsort(energy)) / max(len(energy) - 1, 1)
    writer.add_pr_curve("test/pr_curve", torch.from_numpy(is_anomaly), torch.from_numpy(rank), step)
    writer.flush()


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON so that ``path`` either holds the whole document or does not exist."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, path)


def print_metrics_table(title: str, metrics: dict[str, float], console: Console | None = None) -> None:
    table = Table(title=title)
    for label in TABLE_METRICS.values():
        table.add_column(label, justify="right")
    table.add_row(*(f"{metrics[key]:.4f}" for key in TABLE_METRICS))
    (console or Console()).print(table)
