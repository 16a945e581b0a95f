"""DAGMM's whole training step replayed from a CUDA graph: the GPU's fast path.

At batch 1024 this model's step is a few hundred small kernels; on a GPU their launches and
the Python around them cost several times the arithmetic (docs/performance.md, "On a GPU").
A CUDA graph records the forward pass, the backward pass and the Adam update once and
replays them as one launch per batch.

Plain torch: usable without Lightning.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from fdagmm.models.dagmm import DAGMM, training_loss

# Eager steps before the first capture of a process (CUDA's lazy initialisation, such as
# cuBLAS's and cuSOLVER's workspaces, must not happen inside a capture); later captures
# need one.
FIRST_WARMUP_STEPS = 3
LATER_WARMUP_STEPS = 1


class CapturedTrainingStep:
    """Optimiser steps of ``net`` on batches: ``training_loss`` plus ``penalty``, backward,
    ``optimizer.step()``; returns the losses (total, reconstruction, energy, covariance
    penalty) as one tensor, on the device, without waiting for it.

    With ``capture`` (a CUDA network, ``optimizer`` built with ``capturable=True``), the first
    batches run eagerly on a side stream, the next full batch (the shape of the first) is
    recorded as a CUDA graph, and every later full batch replays it; a batch of another shape
    (an epoch's last, partial one) runs eagerly on the same parameters and optimiser state.
    Without ``capture`` every step is eager: the same steps, one kernel at a time. The graph is
    bound to the parameters' memory: one instance serves one fit of one network.
    """

    _captured_before = False  # in this process: later captures need fewer warm-up steps

    def __init__(
        self,
        net: DAGMM,
        optimizer: torch.optim.Optimizer,
        lambdas: tuple[float, float, float],
        penalty: Callable[[DAGMM], Tensor] | None = None,
        capture: bool = True,
    ):
        self.net, self.optimizer, self.lambdas, self.penalty = net, optimizer, lambdas, penalty
        self.capture = capture
        self.warmup_left = LATER_WARMUP_STEPS if CapturedTrainingStep._captured_before else FIRST_WARMUP_STEPS
        self.full_shape: torch.Size | None = None
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static_x: Tensor | None = None
        self.static_losses: Tensor | None = None

    def __call__(self, x: Tensor) -> Tensor:
        if self.full_shape is None:
            self.full_shape = x.shape  # a fit's first batch is a full one
        if self.capture and self.graph is None and self.warmup_left == 0 and x.shape == self.full_shape:
            self._record(x)
        if self.graph is not None and x.shape == self.full_shape:
            self.static_x.copy_(x)
            self.graph.replay()
            return self.static_losses.clone()
        if self.capture and self.graph is None:
            self.warmup_left = max(self.warmup_left - 1, 0)
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                losses = self._step(x)
            torch.cuda.current_stream().wait_stream(side)
            losses.record_stream(torch.cuda.current_stream())  # read there later: not to be reused early
            return losses
        return self._step(x)

    def _record(self, x: Tensor) -> None:
        """Record one step on a static copy of ``x``: recording runs nothing, replays do."""
        self.static_x = x.clone()
        self.graph = torch.cuda.CUDAGraph()
        # Gradients set to None: the recorded backward pass allocates them in the graph's
        # memory, where every replay writes them.
        self.optimizer.zero_grad(set_to_none=True)
        with torch.cuda.graph(self.graph):
            self.static_losses = self._step(self.static_x)
        CapturedTrainingStep._captured_before = True

    def _step(self, x: Tensor) -> Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        loss = training_loss(self.net, x, *self.lambdas)
        total = loss.total if self.penalty is None else loss.total + self.penalty(self.net)
        total.backward()
        self.optimizer.step()
        return torch.stack([loss.total.detach(), loss.reconstruction, loss.energy, loss.cov_penalty])
