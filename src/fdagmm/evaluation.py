"""Score records with a trained DAGMM and measure detection on a client's test set.

Positive class: the `normal` records (DAGMM's convention on KDDCUP99). A record is flagged
when its energy exceeds the (1 - anomaly_ratio) quantile of a reference set's energies.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.metrics import average_precision_score, precision_recall_fscore_support, roc_auc_score
from torch import Tensor

from fdagmm.dagmm import DAGMM, GaussianMixture, GMMStats, gmm_sufficient_stats, mixture_from_stats, sample_energy
from fdagmm.datamodule import ClientData

# Rows per forward pass when scoring: large for speed, bounded for memory.
SCORING_CHUNK = 65536


@torch.no_grad()
def latent(net: DAGMM, x: Tensor) -> tuple[Tensor, Tensor]:
    """z and gamma of every row of ``x`` (dropout off, on the net's device), float64 on the CPU."""
    device = next(net.parameters()).device
    was_training = net.training
    net.eval()
    zs, gammas = [], []
    for chunk in x.split(SCORING_CHUNK):
        out = net(chunk.to(device))
        zs.append(out.z.double().cpu())
        gammas.append(out.gamma.double().cpu())
    net.train(was_training)
    return torch.cat(zs), torch.cat(gammas)


def dataset_gmm_stats(net: DAGMM, x: Tensor) -> GMMStats:
    """Sufficient statistics of a whole record set in one pass (what a client reports)."""
    return gmm_sufficient_stats(*latent(net, x))


def energies(net: DAGMM, x: Tensor, mixture: GaussianMixture, cov_jitter: float) -> np.ndarray:
    z, _ = latent(net, x)
    return sample_energy(z, mixture, cov_jitter).numpy()


def anomaly_threshold(reference_energy: np.ndarray, anomaly_ratio: float) -> float:
    return float(np.quantile(reference_energy, 1.0 - anomaly_ratio))


def detection_metrics(
    is_anomaly: np.ndarray, energy: np.ndarray, threshold: float
) -> dict[str, float]:
    precision, recall, f1, _ = precision_recall_fscore_support(
        is_anomaly, energy > threshold, average="binary", zero_division=0
    )
    return {
        "test/precision": float(precision),
        "test/recall": float(recall),
        "test/f1": float(f1),
        "test/auroc": float(roc_auc_score(is_anomaly, energy)),
        "test/avg_precision": float(average_precision_score(is_anomaly, energy)),
        "test/threshold": threshold,
    }


THRESHOLD_REFS = ("own", "pooled")


@dataclass
class Evaluation:
    metrics: dict[str, float]  # with the threshold from the first of the requested references
    metrics_by_threshold_ref: dict[str, dict[str, float]]  # every requested reference
    test_energy: np.ndarray
    test_is_anomaly: np.ndarray


def evaluate_model(
    net: DAGMM,
    clients: list[ClientData],
    mixture_clients: list[int],
    eval_client: int,
    threshold_refs: tuple[str, ...],
    anomaly_ratio: float,
    cov_jitter: float,
    device: torch.device,
) -> Evaluation:
    """Fit the scoring mixture, threshold and measure ``net`` on ``eval_client``'s test set.

    The mixture comes from the summed statistics of ``mixture_clients``' training sets (each
    client computes its own). A threshold reference is ``own`` (the evaluated client's
    training and test records) or ``pooled`` (every client's training records and the
    evaluated client's test records); thresholds change P, R and F1, not AUROC or AP.
    """
    net.to(device)
    stats = [dataset_gmm_stats(net, clients[k].train_x) for k in mixture_clients]
    mixture = mixture_from_stats(sum(stats[1:], stats[0]))
    target = clients[eval_client]
    test_energy = energies(net, target.test_x, mixture, cov_jitter)
    needed = [target] if threshold_refs == ("own",) else clients
    train_energy = {c.client_id: energies(net, c.train_x, mixture, cov_jitter) for c in needed}
    references = {
        "own": [train_energy[eval_client], test_energy],
        "pooled": [*train_energy.values(), test_energy],
    }
    by_ref = {
        ref: detection_metrics(
            target.test_is_anomaly,
            test_energy,
            anomaly_threshold(np.concatenate(references[ref]), anomaly_ratio),
        )
        for ref in threshold_refs
    }
    return Evaluation(
        metrics=by_ref[threshold_refs[0]],
        metrics_by_threshold_ref=by_ref,
        test_energy=test_energy,
        test_is_anomaly=target.test_is_anomaly,
    )
