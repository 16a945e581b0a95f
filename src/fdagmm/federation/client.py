"""What a client does: train the global model locally, report statistics, evaluate.

A ``Client`` holds one organisation's encoded records, and every method of it runs where
those records are. What its methods return is all that leaves it: the federated entries of a
state dict and a sample count (``update``), sufficient statistics (``shared_gmm_stats``) and
scalar metrics (``evaluate``); with client-level differential privacy the update (unless
the server clips it, under adaptive clipping) and the statistics are clipped here, before
they leave (``federation.privacy``). Under secure aggregation the update leaves only as the
strategy's ``contribution``, masked, and the statistics masked (``federation.secure_aggregation``). Entries the
strategy keeps local (``personal_state``) stay here across rounds. The one exception is ``train_energies``, needed only by the optional pooled
threshold reference (``eval.threshold_ref=pooled``), which shares its training records' energies.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor

from fdagmm.data.datamodule import ClientData, batch_loader
from fdagmm.detection.evaluation import (
    dataset_gmm_stats,
    energies,
    energies_and_errors,
    metrics_by_threshold_ref,
    with_reconstruction_auroc,
)
from fdagmm.federation.privacy import ClientLevelDP, clip_stats, clip_update
from fdagmm.federation.record_privacy import RecordLevelDP
from fdagmm.federation.strategies import ClientUpdate, Strategy
from fdagmm.models.dagmm import DAGMM, GaussianMixture, GMMStats
from fdagmm.models.lit_module import DAGMMLitModule
from fdagmm.seeding import BATCH_STREAM, derive_seed
from fdagmm.tracking import ContinuousStepLogger, log_score_distribution


@dataclass
class LocalTraining:
    """How every client trains in a round: the same for all clients of a run."""

    build_module: Callable[[], DAGMMLitModule]
    build_trainer: Callable[..., pl.Trainer]
    local_epochs: int
    batch_size: int
    seed: int
    device: torch.device  # where the Trainers train (and the clients' records are held)
    # fed.keep_optimizer_state: each client's optimiser continues from its own state of its
    # previous round (Adam's moments), instead of starting afresh every round.
    keep_optimizer_state: bool = False


class Client:
    """One organisation: its records, how it trains, its strategy's client side, and its own
    TensorBoard logger."""

    def __init__(
        self,
        data: ClientData,
        cov_jitter: float,
        training: LocalTraining,
        strategy: Strategy,
        logger: ContinuousStepLogger,
        privacy: ClientLevelDP | RecordLevelDP | None = None,
    ):
        self.data = data.to(training.device)
        self.privacy = privacy
        self.cov_jitter = cov_jitter
        self.training = training
        self.strategy = strategy
        self.logger = logger
        # State-dict entries that never leave this client (FedPer's personal layers).
        self.personal_state: dict[str, Tensor] = {}
        # Its optimiser's state after its last round (fed.keep_optimizer_state); never leaves it.
        self.optimizer_state: dict | None = None

    @property
    def client_id(self) -> int:
        return self.data.client_id

    @property
    def n_train(self) -> int:
        return self.data.n_train

    def update(self, global_state: dict[str, Tensor], round_idx: int, frozen_mixture: GaussianMixture | None = None) -> ClientUpdate:
        """ClientUpdate(k, theta): a fresh Trainer fits a module initialised from ``global_state``
        (with this client's personal entries on top), under the strategy's local penalty; under
        record-level DP by DP-SGD with ``frozen_mixture`` held fixed, and no training loss sent."""
        t = self.training
        # Dropout and shuffling depend only on (seed, round, client): not on which client ran
        # first, nor on whether the run was resumed.
        torch.manual_seed(derive_seed(t.seed, round_idx, self.client_id))
        module = t.build_module()
        module.first_epoch = (round_idx - 1) * t.local_epochs  # where this round is in the learning-rate schedule
        module.initial_optimizer_state = self.optimizer_state
        module.keep_optimizer_state = t.keep_optimizer_state
        module.net.load_state_dict({**global_state, **self.personal_state})
        module.penalty = self.strategy.local_penalty(global_state)
        trainer = t.build_trainer(max_epochs=t.local_epochs, logger=self.logger)
        record_level = isinstance(self.privacy, RecordLevelDP)
        if record_level:
            module.private_step = self.privacy.private_step(
                frozen_mixture, self.cov_jitter, module.lambda_energy, self.n_train, round_idx, self.client_id
            )
            loader = self.privacy.batches(self.data.train_x, round_idx, self.client_id)
        else:
            loader = batch_loader(self.data.train_x, t.batch_size, derive_seed(t.seed, round_idx, self.client_id, BATCH_STREAM))
        trainer.fit(module, train_dataloaders=loader)
        self.logger.step_offset += module.steps_taken  # the next round's curve continues here
        if t.keep_optimizer_state:
            self.optimizer_state = module.final_optimizer_state
        state = {k: v.detach().cpu().clone() for k, v in module.net.state_dict().items()}
        federated = self.strategy.federated_keys(state)
        self.personal_state = {k: v for k, v in state.items() if k not in federated}
        shared = {k: state[k] for k in federated}
        if self.privacy is not None and self.privacy.clients_clip:
            shared = clip_update(global_state, shared, self.privacy.clip_norm)
        return ClientUpdate(
            client_id=self.client_id,
            state=shared,
            n_samples=self.n_train,
            # Under record-level DP the loss, an un-noised function of the records, stays here.
            train_loss=math.nan if record_level else module.pop_mean_loss(),
        )

    def own_net(self, net: DAGMM) -> DAGMM:
        """The global network as this client uses it: with its personal entries, if any."""
        if not self.personal_state:
            return net
        own = copy.deepcopy(net)
        own.load_state_dict(self.personal_state, strict=False)
        return own

    def gmm_stats(self, net: DAGMM) -> GMMStats:
        """Sufficient statistics of this client's training records under ``net``."""
        return dataset_gmm_stats(self.own_net(net), self.data.train_x)

    def shared_gmm_stats(self, net: DAGMM, round_idx: int) -> GMMStats:
        """The statistics this client sends for the federation's mixture under theta_``round_idx``:
        ``gmm_stats``, with client-level DP their normalised, clipped form
        (``privacy.clip_stats``; with noise_at=clients, with its share of the noise), with record-level DP their noised form (``RecordLevelDP.noised_stats``)."""
        if isinstance(self.privacy, RecordLevelDP):
            return self.privacy.noised_stats(self.own_net(net), self.data.train_x, self.client_id, round_idx)
        stats = self.gmm_stats(net)
        if self.privacy is None:
            return stats
        return self.privacy.stats_share(clip_stats(stats, self.privacy.stats_clip_norm), round_idx, self.client_id)

    def train_energies(self, net: DAGMM, mixture: GaussianMixture) -> np.ndarray:
        return energies(self.own_net(net), self.data.train_x, mixture, self.cov_jitter)

    def reference_quantiles(self, net: DAGMM, mixture: GaussianMixture, n: int) -> np.ndarray:
        """Energies of this client's training and test records at ``n`` evenly spaced quantiles
        (exported with its detector, to re-threshold it for another anomaly ratio)."""
        net = self.own_net(net)
        own = [energies(net, x, mixture, self.cov_jitter) for x in (self.data.train_x, self.data.test_x)]
        return np.quantile(np.concatenate(own), np.linspace(0.0, 1.0, n))

    def evaluate(
        self,
        net: DAGMM,
        mixture: GaussianMixture,
        anomaly_ratio: float,
        threshold_refs: tuple[str, ...],
        others_train_energies: list[np.ndarray],
        log_scores_at: int | None = None,
    ) -> dict[str, dict[str, float]]:
        """Test metrics per threshold reference: ``own`` (this client's training and test
        records) or ``pooled`` (also ``others_train_energies``, the other clients' training
        records). With ``log_scores_at``, the test energies go to this client's TensorBoard."""
        net = self.own_net(net)
        test_energy, test_error = energies_and_errors(net, self.data.test_x, mixture, self.cov_jitter)
        train_energy = energies(net, self.data.train_x, mixture, self.cov_jitter)
        if log_scores_at is not None:
            log_score_distribution(self.logger, test_energy, self.data.test_is_anomaly, log_scores_at)
        by_ref = metrics_by_threshold_ref(
            self.data.test_is_anomaly, test_energy, train_energy, others_train_energies, anomaly_ratio, threshold_refs
        )
        return with_reconstruction_auroc(by_ref, self.data.test_is_anomaly, test_error)
