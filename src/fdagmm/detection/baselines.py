"""Classical detectors a practitioner tries first, as references for DAGMM: scikit-learn's
Isolation Forest and PCA reconstruction error, PyOD's ECOD and plain autoencoder, fitted on
the same encoded records.

Each ``fit``s on training records and scores records with ``decision_function`` (PyOD's
names, as ``fdagmm.DAGMM``'s): a higher score means more anomalous, as DAGMM's energy does, so
that the same thresholds and metrics apply (``detection.evaluation``). Scores are float64 and depend only on the records and the seed.
The arguments' ranges are declared with the method group's schema (``fdagmm.config``).
"""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest


class IsolationForestScorer:
    """Isolation Forest (Liu et al., 2008): records isolated by few random splits score high."""

    def __init__(self, n_estimators: int = 100, max_samples: int = 256, seed: int = 0):
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.seed = seed
        self.model: IsolationForest | None = None

    def fit(self, x: np.ndarray) -> IsolationForestScorer:
        self.model = IsolationForest(
            n_estimators=self.n_estimators, max_samples=min(self.max_samples, len(x)), random_state=self.seed
        ).fit(np.asarray(x, dtype=np.float64))
        return self

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        # score_samples is high for normal points: its negative is the anomaly score.
        return -self.model.score_samples(np.asarray(x, dtype=np.float64))


class PCAReconstructionScorer:
    """Squared distance of a record to its projection on the principal subspace that keeps
    ``explained_variance`` of the training records' variance."""

    def __init__(self, explained_variance: float = 0.9):
        self.explained_variance = explained_variance
        self.model: PCA | None = None

    def fit(self, x: np.ndarray) -> PCAReconstructionScorer:
        # The eigendecomposition of the covariance matrix: exact, deterministic and, with far
        # more records than features, ten times faster than the full SVD.
        self.model = PCA(n_components=self.explained_variance, svd_solver="covariance_eigh").fit(np.asarray(x, dtype=np.float64))
        return self

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        residual = x - self.model.inverse_transform(self.model.transform(x))
        return np.einsum("ij,ij->i", residual, residual)


class ECODScorer:
    """ECOD (Li et al., 2022; PyOD): how far out in the tails of the training records'
    per-feature empirical distributions a record lies. No parameter to tune, no randomness."""

    def __init__(self):
        self.model = None

    def fit(self, x: np.ndarray) -> ECODScorer:
        from pyod.models.ecod import ECOD  # imported when used: PyOD pulls in numba

        self.model = ECOD().fit(np.asarray(x, dtype=np.float64))
        return self

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        return self.model.decision_function(np.asarray(x, dtype=np.float64))


class AutoEncoderScorer:
    """A plain autoencoder (PyOD's, standardised inputs): the reconstruction error scores, with
    no mixture over a code. The reference for what DAGMM's estimation network adds."""

    def __init__(self, hidden: tuple[int, ...] = (64, 32), epochs: int = 20, batch_size: int = 256, lr: float = 1e-3, seed: int = 0):
        self.hidden = list(hidden)
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.seed = seed
        self.model = None

    def fit(self, x: np.ndarray) -> AutoEncoderScorer:
        from pyod.models.auto_encoder import AutoEncoder

        # PyOD drops the last incomplete batch: a training set smaller than a batch would train
        # on nothing (and fail), so the batch is at most the training set.
        self.model = AutoEncoder(
            hidden_neuron_list=self.hidden, epoch_num=self.epochs, batch_size=min(self.batch_size, len(x)), lr=self.lr,
            random_state=self.seed, device="cpu", verbose=0,
        ).fit(np.asarray(x, dtype=np.float32))  # fmt: skip
        return self

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.decision_function(np.asarray(x, dtype=np.float32)), dtype=np.float64)
