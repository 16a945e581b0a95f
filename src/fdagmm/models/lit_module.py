"""The LightningModule: DAGMM's training objective and optimiser, and nothing else."""

from __future__ import annotations

import functools
from collections.abc import Callable

import pytorch_lightning as pl
import torch
from torch import Tensor

from fdagmm.models.dagmm import DAGMM, DAGMMLoss, dagmm_objective

# A term added to the objective, computed from the network (FedProx's proximal term).
Penalty = Callable[[DAGMM], Tensor]


def training_loss(net: DAGMM, x: Tensor, lambda_energy: float, lambda_cov: float, cov_jitter: float) -> DAGMMLoss:
    return dagmm_objective(x, net(x), lambda_energy, lambda_cov, cov_jitter)


@functools.cache
def compiled_training_loss() -> Callable[..., DAGMMLoss]:
    """One compiled ``training_loss`` for every module of the process: a federated run builds a
    new module per client per round, and they all reuse what was compiled for the first."""
    return torch.compile(training_loss)


class DAGMMLitModule(pl.LightningModule):
    """Trains a ``DAGMM`` on batches of encoded records with the energy objective.

    ``optimizer`` is a partial (Hydra's ``_partial_: true``) that takes the parameters.
    ``penalty``, set by a federated strategy for one round, is added to the objective.
    """

    def __init__(
        self,
        net: DAGMM,
        optimizer: Callable[..., torch.optim.Optimizer],
        lambda_energy: float = 0.1,
        lambda_cov: float = 0.005,
        cov_jitter: float = 1e-6,
        compile: bool = False,
    ):
        super().__init__()
        self.net = net
        self.optimizer = optimizer
        self.lambda_energy = lambda_energy
        self.lambda_cov = lambda_cov
        self.cov_jitter = cov_jitter
        self.loss_fn = compiled_training_loss() if compile else training_loss
        self.penalty: Penalty | None = None
        # Running sum of the loss since the last ``pop_mean_loss``, kept on the device so that
        # a training step never waits for a host sync.
        self._loss_sum = torch.zeros(())
        self._loss_steps = 0

    def training_step(self, batch: tuple[Tensor], batch_idx: int) -> Tensor:
        (x,) = batch
        loss = self.loss_fn(self.net, x, self.lambda_energy, self.lambda_cov, self.cov_jitter)
        # Straight to the logger every log_every_n_steps steps: on a CPU, self.log's bookkeeping
        # costs about a quarter of this small model's training step.
        if self.logger is not None and self.global_step % self.trainer.log_every_n_steps == 0:
            self.logger.log_metrics(
                {
                    "train/loss": loss.total.item(),
                    "train/reconstruction": loss.reconstruction.item(),
                    "train/energy": loss.energy.item(),
                    "train/cov_penalty": loss.cov_penalty.item(),
                },
                step=self.global_step,
            )
        self._loss_sum = self._loss_sum.to(loss.total.device) + loss.total.detach()
        self._loss_steps += 1
        return loss.total if self.penalty is None else loss.total + self.penalty(self.net)

    def pop_mean_loss(self) -> float:
        """Mean training loss over the steps since the last call (NaN if there were none)."""
        mean = self._loss_sum.item() / self._loss_steps if self._loss_steps else float("nan")
        self._loss_sum, self._loss_steps = torch.zeros(()), 0
        return mean

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer(self.parameters())
