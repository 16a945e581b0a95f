"""The LightningModule: DAGMM's training objective and optimiser, and nothing else."""

from __future__ import annotations

from collections.abc import Callable

import pytorch_lightning as pl
import torch
from torch import Tensor

from fdagmm.dagmm import DAGMM, dagmm_objective


class DAGMMLitModule(pl.LightningModule):
    """Trains a ``DAGMM`` on batches of encoded records with the energy objective.

    ``optimizer`` is a partial (Hydra's ``_partial_: true``) that takes the parameters.
    """

    def __init__(
        self,
        net: DAGMM,
        optimizer: Callable[..., torch.optim.Optimizer],
        lambda_energy: float = 0.1,
        lambda_cov: float = 0.005,
        cov_jitter: float = 1e-6,
    ):
        super().__init__()
        self.net = net
        self.optimizer = optimizer
        self.lambda_energy = lambda_energy
        self.lambda_cov = lambda_cov
        self.cov_jitter = cov_jitter
        # Running sum of the loss since the last ``pop_mean_loss``, kept on the device so that
        # a training step never waits for a host sync.
        self._loss_sum = torch.zeros(())
        self._loss_steps = 0

    def training_step(self, batch: tuple[Tensor], batch_idx: int) -> Tensor:
        (x,) = batch
        loss = dagmm_objective(
            x, self.net(x), self.lambda_energy, self.lambda_cov, self.cov_jitter
        )
        self.log("train/loss", loss.total, on_step=True, on_epoch=False)
        self.log_dict(
            {
                "train/reconstruction": loss.reconstruction,
                "train/energy": loss.energy,
                "train/cov_penalty": loss.cov_penalty,
            },
            on_step=True,
            on_epoch=False,
        )
        self._loss_sum = self._loss_sum.to(loss.total.device) + loss.total.detach()
        self._loss_steps += 1
        return loss.total

    def pop_mean_loss(self) -> float:
        """Mean training loss over the steps since the last call (NaN if there were none)."""
        mean = self._loss_sum.item() / self._loss_steps if self._loss_steps else float("nan")
        self._loss_sum, self._loss_steps = torch.zeros(()), 0
        return mean

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer(self.parameters())
