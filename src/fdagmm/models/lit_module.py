"""The LightningModule: DAGMM's training objective and optimiser, and nothing else."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor

from fdagmm.models.cuda_graph import CapturedTrainingStep
from fdagmm.models.dagmm import DAGMM, DAGMMLoss, training_loss
from fdagmm.models.dp_sgd import PrivateStep

# A term added to the objective, computed from the network (FedProx's proximal term).
Penalty = Callable[[DAGMM], Tensor]


# The training losses written to the logger, in the order training_step stacks them.
LOGGED_LOSSES = ("train/loss", "train/reconstruction", "train/energy", "train/cov_penalty")


@functools.cache
def compiled_training_loss() -> Callable[..., DAGMMLoss]:
    """One compiled ``training_loss`` for every module of the process: a federated run builds a
    new module per client per round, and they all reuse what was compiled for the first."""
    return torch.compile(training_loss)


LR_SCHEDULES = ("constant", "cosine")


def cosine_factor(epoch: int, total: int) -> float:
    """The cosine schedule's share of the learning rate at ``epoch`` (0-based) of ``total``:
    1 at the first, down a half cosine, 0.5 at the middle, never 0 within the schedule."""
    return 0.5 * (1.0 + math.cos(math.pi * min(epoch, total) / (total + 1)))


class DAGMMLitModule(pl.LightningModule):
    """Trains a ``DAGMM`` on batches of encoded records with the energy objective.

    ``optimizer`` is a partial (Hydra's ``_partial_: true``) that takes the parameters.
    ``penalty``, set by a federated strategy for one round, is added to the objective.
    The step runs eagerly, compiled (``compile``: ``torch.compile``) or, when ``cuda_graph``
    is set and the fit runs on a GPU, replayed from a CUDA graph of the whole step
    (``CapturedTrainingStep``, recorded anew in each fit; Lightning's manual optimisation).
    ``lr_schedule``: ``constant``, or ``cosine`` (the learning rate decays by a half cosine
    over ``schedule_epochs``, stepped per epoch); a fit that continues a schedule (a federated
    round) sets ``first_epoch``, the schedule's epoch at its own first epoch, and may set
    ``initial_optimizer_state``, the state its optimiser starts from (a federated client's
    own, from its previous round); with ``keep_optimizer_state`` set, ``final_optimizer_state``
    is the state it ends with. ``private_step``, set for one fit under record-level
    differential privacy, replaces the objective's gradient with DP-SGD's (manual optimisation).
    """

    def __init__(
        self,
        net: DAGMM,
        optimizer: Callable[..., torch.optim.Optimizer],
        lambda_energy: float = 0.1,
        lambda_cov: float = 0.005,
        cov_jitter: float = 1e-6,
        compile: bool = False,
        cuda_graph: bool = False,
        lr_schedule: str = "constant",
        schedule_epochs: int = 1,
    ):
        super().__init__()
        self.net = net
        self.optimizer = optimizer
        self.lambda_energy = lambda_energy
        self.lambda_cov = lambda_cov
        self.cov_jitter = cov_jitter
        self.loss_fn = compiled_training_loss() if compile else training_loss
        self.cuda_graph = cuda_graph
        if lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"unknown lr_schedule {lr_schedule!r}: one of {', '.join(LR_SCHEDULES)}")
        self.lr_schedule = lr_schedule
        self.schedule_epochs = schedule_epochs
        self.first_epoch = 0
        self.initial_optimizer_state: dict[str, Any] | None = None
        self.keep_optimizer_state = False
        self.final_optimizer_state: dict[str, Any] | None = None
        self._captured: CapturedTrainingStep | None = None
        self.penalty: Penalty | None = None
        self.private_step: PrivateStep | None = None
        self.steps_taken = 0  # optimiser steps so far: the logged losses' step
        # Running sum of the loss since the last ``pop_mean_loss``, and the logged steps' losses
        # (written at the epoch's end), kept on the device: a step never waits for the host.
        self._loss_sum = torch.zeros(())
        self._loss_steps = 0
        self._unwritten_logs: list[tuple[int, Tensor]] = []

    def _captures(self) -> bool:
        return self.cuda_graph and self.device.type == "cuda"

    def configure_optimizers(self) -> torch.optim.Optimizer | dict[str, Any]:
        # Lightning has moved the module to its device already.
        optimizer = self.optimizer(self.parameters(), **({"capturable": True} if self._captures() else {}))
        if self.initial_optimizer_state is not None:
            optimizer.load_state_dict(self.initial_optimizer_state)
        if self.lr_schedule == "constant":
            return optimizer
        first, total = self.first_epoch, self.schedule_epochs
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: cosine_factor(first + epoch, total))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}

    def on_fit_start(self) -> None:
        if self.private_step is not None:
            self.automatic_optimization = False  # the step sets the parameters' gradients itself
        elif self._captures():
            self.automatic_optimization = False  # the captured step runs backward and the update itself
            lambdas = (self.lambda_energy, self.lambda_cov, self.cov_jitter)
            self._captured = CapturedTrainingStep(
                self.net, self.trainer.optimizers[0], lambdas, self.penalty, capture=self.device.type == "cuda"
            )

    def on_train_end(self) -> None:
        if self.keep_optimizer_state:
            state = self.trainer.optimizers[0].state_dict()
            self.final_optimizer_state = {**state, "state": {i: {k: v.detach().cpu().clone() for k, v in s.items()} for i, s in state["state"].items()}}
        # Lightning moves the module to the CPU after the fit: the graph's memory is gone.
        self._captured = None
        self.automatic_optimization = True

    def training_step(self, batch: tuple[Tensor], batch_idx: int) -> Tensor | None:
        (x,) = batch
        if self.private_step is not None:
            self._private_step(x)
            return None
        if self._captured is not None:
            self._note_losses(self._captured(x))
            return None
        loss = self.loss_fn(self.net, x, self.lambda_energy, self.lambda_cov, self.cov_jitter)
        self._note_losses(torch.stack([loss.total.detach(), loss.reconstruction, loss.energy, loss.cov_penalty]))
        return loss.total if self.penalty is None else loss.total + self.penalty(self.net)

    def _private_step(self, x: Tensor) -> None:
        """DP-SGD: the noised mean of the clipped per-record gradients; a strategy's penalty
        (a function of the weights, not of any record) adds its own gradient."""
        optimizer = self.optimizers()
        optimizer.zero_grad()
        gradients, losses = self.private_step.gradient(self.net, x)
        for name, parameter in self.net.named_parameters():
            parameter.grad = gradients[name].to(parameter.dtype)
        if self.penalty is not None:
            self.manual_backward(self.penalty(self.net))
        optimizer.step()
        self._note_losses(losses)  # train/loss and train/reconstruction

    def on_train_epoch_start(self) -> None:
        # Manual optimisation steps no scheduler: a cosine schedule moves on once an epoch here.
        if self.private_step is not None and self.current_epoch > 0 and (scheduler := self.lr_schedulers()) is not None:
            scheduler.step()

    def _note_losses(self, losses: Tensor) -> None:
        """Count a step and its losses (total, reconstruction, energy, covariance penalty; the
        first two under DP-SGD)."""
        # Straight to the logger every log_every_n_steps steps, at the epoch's end: on a CPU,
        # self.log's bookkeeping costs about a quarter of this small model's training step.
        if self.logger is not None and self.steps_taken % self.trainer.log_every_n_steps == 0:
            self._unwritten_logs.append((self.steps_taken, losses))
        self._loss_sum = self._loss_sum.to(losses.device) + losses[0]
        self._loss_steps += 1
        self.steps_taken += 1

    def on_train_epoch_end(self) -> None:
        if not self._unwritten_logs:
            return
        steps, losses = zip(*self._unwritten_logs)
        self._unwritten_logs = []
        for step, values in zip(steps, torch.stack(losses).tolist()):  # one transfer per epoch
            self.logger.log_metrics(dict(zip(LOGGED_LOSSES, values)), step=step)

    def pop_mean_loss(self) -> float:
        """Mean training loss over the steps since the last call (NaN if there were none)."""
        mean = self._loss_sum.item() / self._loss_steps if self._loss_steps else float("nan")
        self._loss_sum, self._loss_steps = torch.zeros(()), 0
        return mean
