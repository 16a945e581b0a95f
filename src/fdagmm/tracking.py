"""Where a run's results go: TensorBoard, metrics.json and the terminal, for both backends."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_only
from rich.console import Console
from rich.table import Table
from torch.utils.tensorboard.summary import hparams as hparams_summary

from fdagmm.serialization import atomic_file


log = logging.getLogger(__name__)

# Metrics shown in the per-round progress line.
PROGRESS_METRICS = ("test/auroc", "test/f1", "privacy/epsilon")
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
    """Histograms of the test energies (all, anomalies, inliers) and a PR curve."""
    if len(energy) == 0:  # unlabelled records: no test set
        return
    writer = logger.experiment
    writer.add_histogram("test/energy", energy, step)
    writer.add_histogram("test/energy_anomalies", energy[is_anomaly], step)
    writer.add_histogram("test/energy_inliers", energy[~is_anomaly], step)
    # add_pr_curve wants scores in [0, 1]: the energy's rank is a monotone map there.
    rank = np.argsort(np.argsort(energy)) / max(len(energy) - 1, 1)
    writer.add_pr_curve("test/pr_curve", torch.from_numpy(is_anomaly), torch.from_numpy(rank), step)
    writer.flush()


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON so that ``path`` either holds the whole document or does not exist."""
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2) + "\n")


def print_metrics_table(
    title: str, rows: dict[str, dict[str, float]], console: Console | None = None, row_label: str | None = None
) -> None:
    """One row per entry of ``rows`` (a single unnamed row when ``row_label`` is None)."""
    table = Table(title=title)
    if row_label is not None:
        table.add_column(row_label)
    for label in TABLE_METRICS.values():
        table.add_column(label, justify="right")
    for name, metrics in rows.items():
        cells = [f"{metrics[key]:.4f}" for key in TABLE_METRICS]
        table.add_row(*([name] if row_label is not None else []), *cells)
    (console or Console()).print(table)


def summarise_clients(per_client: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """The mean over clients and the worst (lowest) client value of each metric; thresholds
    differ per client by design and are left out."""
    keys = [k for k in next(iter(per_client.values())) if k != "test/threshold"]
    values = {k: np.array([m[k] for m in per_client.values()]) for k in keys}
    return {
        "mean": {k: float(v.mean()) for k, v in values.items()},
        "worst": {k: float(v.min()) for k, v in values.items()},
    }



def evaluated_round(round_idx: int, every_n_rounds: int, total_rounds: int) -> bool:
    """Whether the test metrics are measured after this round: every n-th round and the last."""
    return round_idx % every_n_rounds == 0 or round_idx == total_rounds


class RoundLog:
    """Each round's record: metrics.json's history, the server's TensorBoard scalars and a
    progress line; with ``privacy_metrics`` (differential privacy), the round's privacy
    scalars (``ClientLevelDP.round_metrics``: the epsilon spent so far, the update's and the
    noise's norms)."""

    def __init__(
        self,
        total_rounds: int,
        every_n_rounds: int,
        server_logger: ContinuousStepLogger,
        privacy_metrics: Callable[[int], dict[str, float]] | None = None,
    ):
        self.total_rounds = total_rounds
        self.every_n_rounds = every_n_rounds
        self.server_logger = server_logger
        self.privacy_metrics = privacy_metrics
        self.history: list[dict[str, Any]] = []
        self.started = time.perf_counter()

    def evaluates(self, round_idx: int) -> bool:
        return evaluated_round(round_idx, self.every_n_rounds, self.total_rounds)

    def record(self, round_idx: int, train_losses: dict[str, float], metrics: dict[str, float], **extra: Any) -> None:
        if self.privacy_metrics is not None:
            metrics = {**metrics, **self.privacy_metrics(round_idx)}
        losses = {f"train/loss/{name}": loss for name, loss in train_losses.items()}
        self.history.append({"round": round_idx, **losses, **metrics, **extra})
        self.server_logger.log_metrics({**losses, **metrics}, step=round_idx)
        log.info(
            "round %d/%d  %s  %s  (%.0f s)",
            round_idx,
            self.total_rounds,
            "  ".join(f"{name} loss {loss:.4g}" for name, loss in train_losses.items()),
            "  ".join(f"{key} {metrics[key]:.4f}" for key in PROGRESS_METRICS if key in metrics),
            time.perf_counter() - self.started,
        )


def write_results(
    output_dir: Path,
    run: dict[str, Any],
    hparams: dict[str, Any],
    rounds: RoundLog,
    final_by_ref: dict[str, dict[str, float]],
    threshold_ref: str,
    per_client: dict[str, dict[str, float]],
    counts: dict[str, dict[str, int]],
) -> dict[str, Any]:
    """HParams and per-client scalars for TensorBoard, and metrics.json in the run dir;
    returns metrics.json's payload. ``run`` names the run (method, partition, seed, ...)."""
    final = final_by_ref[threshold_ref]
    clients = summarise_clients(per_client)
    scalars = {f"{key}/{name}": value for name, metrics in {**per_client, **clients}.items() for key, value in metrics.items()}
    rounds.server_logger.log_metrics(scalars, step=rounds.total_rounds)
    log_hparams(rounds.server_logger, hparams, final)
    payload = {
        **run,
        "final": final,
        "final_by_threshold_ref": final_by_ref,
        "per_client": per_client,
        "clients_mean": clients["mean"],
        "clients_worst": clients["worst"],
        "history": rounds.history,
        "partition": counts,
    }
    write_json_atomic(output_dir / "metrics.json", payload)
    log.info("done in %.0f s; results in %s", time.perf_counter() - rounds.started, output_dir)
    return payload
