"""Score records with a trained DAGMM and measure detection: the functions a client runs.

Positive class: the data set's anomaly class (``is_anomaly``: attacks, or normal traffic under
KDDCUP99's benchmark convention). A record is flagged when its energy exceeds the
(1 - anomaly_ratio) quantile of a reference set's energies. Without labels (no test record)
only the threshold is measured.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from sklearn.metrics import average_precision_score, precision_recall_fscore_support, roc_auc_score
from torch import Tensor

from fdagmm.models.dagmm import DAGMM, GaussianMixture, GMMStats, gmm_sufficient_stats, sample_energy

# Rows per forward pass when scoring: on a GPU, more rows per pass means fewer kernel
# launches (float64 keeps a record's energy independent of the chunking either way).
SCORING_CHUNK = {"cpu": 8192, "cuda": 131_072}

# A DAGMM run's ablation metric: the AUROC of its reconstruction error alone.
RECONSTRUCTION_AUROC = "test/auroc_reconstruction"


@torch.no_grad()
def latent(net: DAGMM, x: Tensor, with_error: bool = False) -> tuple[Tensor, ...]:
    """z and gamma of every row of ``x`` (dropout off, on the net's device), float64 on the CPU;
    with ``with_error``, also the squared reconstruction error ||x - x'||^2.

    Scoring runs a float64 copy of the network: float32 matrix kernels round a row
    differently depending on its position in the batch, so a record's energy would depend
    on which records it was scored with (and on a file's chunking).
    """
    first = next(net.parameters())
    device = first.device
    # A network already in float64 and eval mode (an exported detector's) is used as it is.
    net64 = net if first.dtype == torch.float64 and not net.training else copy.deepcopy(net).double().eval()
    zs, gammas, errors = [], [], []
    for chunk in x.split(SCORING_CHUNK.get(device.type, SCORING_CHUNK["cpu"])):
        out = net64(chunk.to(device, torch.float64))
        zs.append(out.z)
        gammas.append(out.gamma)
        errors.append(out.squared_error)
    # One copy back from a GPU, not one per chunk.
    parts = (zs, gammas, errors) if with_error else (zs, gammas)
    return tuple(torch.cat(p).cpu() for p in parts)


def dataset_gmm_stats(net: DAGMM, x: Tensor) -> GMMStats:
    """Sufficient statistics of a whole record set in one pass (what a client reports)."""
    return gmm_sufficient_stats(*latent(net, x))


def energies(net: DAGMM, x: Tensor, mixture: GaussianMixture, cov_jitter: float) -> np.ndarray:
    z, _ = latent(net, x)
    return sample_energy(z, mixture, cov_jitter).numpy()


def energies_and_errors(net: DAGMM, x: Tensor, mixture: GaussianMixture, cov_jitter: float) -> tuple[np.ndarray, np.ndarray]:
    """The energies of ``energies`` and the squared reconstruction errors, from one pass."""
    z, _, error = latent(net, x, with_error=True)
    return sample_energy(z, mixture, cov_jitter).numpy(), error.numpy()


def with_reconstruction_auroc(
    by_ref: dict[str, dict[str, float]], is_anomaly: np.ndarray, squared_error: np.ndarray
) -> dict[str, dict[str, float]]:
    """``by_ref`` with ``test/auroc_reconstruction``, the AUROC of the same network's squared
    reconstruction error in place of the energy (does the mixture add to the autoencoder?),
    when the test records hold both classes."""
    if not 0 < is_anomaly.sum() < len(is_anomaly):
        return by_ref
    auroc = float(roc_auc_score(is_anomaly, squared_error))
    return {ref: {**metrics, RECONSTRUCTION_AUROC: auroc} for ref, metrics in by_ref.items()}


def anomaly_threshold(reference_energy: np.ndarray, anomaly_ratio: float) -> float:
    return float(np.quantile(reference_energy, 1.0 - anomaly_ratio))


def detection_metrics(
    is_anomaly: np.ndarray, energy: np.ndarray, threshold: float, flagged: np.ndarray | None = None
) -> dict[str, float]:
    """Precision, recall and F1 of the flags (``flagged``, else ``energy > threshold``), and
    the threshold-free AUROC and average precision of the energies."""
    precision, recall, f1, _ = precision_recall_fscore_support(
        is_anomaly, energy > threshold if flagged is None else flagged, average="binary", zero_division=0
    )
    return {
        "test/precision": float(precision),
        "test/recall": float(recall),
        "test/f1": float(f1),
        "test/auroc": float(roc_auc_score(is_anomaly, energy)),
        "test/avg_precision": float(average_precision_score(is_anomaly, energy)),
        "test/threshold": threshold,
    }


# Reference sets for the threshold: "own" = the evaluated client's training and test
# records; "pooled" = also every other client's training records.
THRESHOLD_REFS = ("own", "pooled")


def metrics_by_threshold_ref(
    is_anomaly: np.ndarray,
    test_score: np.ndarray,
    train_score: np.ndarray,
    others_train_scores: list[np.ndarray],
    anomaly_ratio: float,
    threshold_refs: tuple[str, ...],
) -> dict[str, dict[str, float]]:
    """A client's test metrics per threshold reference, from its records' scores (DAGMM's
    energies or a baseline's scores: higher is more anomalous) and, for ``pooled``, the
    other clients' training scores."""
    own = [train_score, test_score]
    references = {"own": own, "pooled": [*own, *others_train_scores]}
    thresholds = {ref: anomaly_threshold(np.concatenate(references[ref]), anomaly_ratio) for ref in threshold_refs}
    if len(is_anomaly) == 0:  # unlabelled records: nothing to measure but the threshold
        return {ref: {"test/threshold": t} for ref, t in thresholds.items()}
    return {ref: detection_metrics(is_anomaly, test_score, t) for ref, t in thresholds.items()}
