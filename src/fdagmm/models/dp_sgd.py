"""DP-SGD's step (Abadi et al., "Deep Learning with Differential Privacy", CCS 2016): per-record
gradients, each clipped to L2 norm ``clip_norm``, summed, Gaussian noise of standard deviation
``noise_multiplier * clip_norm`` added, divided by the expected batch size.

Per-record gradients come from ``torch.func`` (``vmap`` over ``grad``), so the loss must be a
sum of per-record terms: DAGMM's under a fixed mixture (``dagmm.frozen_mixture_objective``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.func import functional_call, grad, vmap

from fdagmm.models.dagmm import DAGMM, PreparedMixture, frozen_mixture_objective


def per_record_gradients(
    net: DAGMM, x: Tensor, mixture: PreparedMixture | None, lambda_energy: float, membership_weight: float
) -> tuple[dict[str, Tensor], Tensor]:
    """The gradient of each record's loss, per parameter: (N, *shape); and each record's loss
    and squared reconstruction error, (N, 2), from the same forward pass (for the client's own
    log). Dropout draws differently for every record, as in a batch."""
    params = {k: v.detach() for k, v in net.named_parameters()}
    buffers = dict(net.named_buffers())

    def loss(p: dict[str, Tensor], row: Tensor) -> tuple[Tensor, Tensor]:
        out = functional_call(net, (p, buffers), (row[None],))
        total = frozen_mixture_objective(row[None], out, mixture, lambda_energy, membership_weight)[0]
        return total, torch.stack([total, out.squared_error[0]]).detach()

    return vmap(grad(loss, has_aux=True), in_dims=(None, 0), randomness="different")(params, x)


def clipped_sum(gradients: dict[str, Tensor], clip_norm: float) -> dict[str, Tensor]:
    """sum_i g_i * min(1, clip_norm / ||g_i||), each record's gradient taken as one vector."""
    norms = torch.sqrt(sum(g.flatten(1).square().sum(1) for g in gradients.values()))
    factor = (clip_norm / norms.clamp_min(1e-12)).clamp(max=1.0)
    return {k: torch.einsum("n,n...->...", factor, g) for k, g in gradients.items()}


@dataclass
class PrivateStep:
    """One client's DP-SGD settings for a round: its fixed mixture, the clip norm, the noise
    multiplier, the expected batch size (sampling rate x records) and the noise's generator."""

    mixture: PreparedMixture | None
    lambda_energy: float
    membership_weight: float
    clip_norm: float
    noise_multiplier: float
    expected_batch: float
    generator: torch.Generator  # on the CPU; the noise moves to the parameters' device

    def gradient(self, net: DAGMM, x: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        """(sum_i clip(g_i) + N(0, (z C)^2 I)) / expected batch, per parameter, and the batch's
        mean loss and reconstruction term (zeros for an empty batch, which Poisson sampling may
        draw: its gradient is the noise alone)."""
        if len(x):
            gradients, losses = per_record_gradients(net, x, self.mixture, self.lambda_energy, self.membership_weight)
            summed, mean_losses = clipped_sum(gradients, self.clip_norm), losses.mean(0)
        else:
            summed = {k: torch.zeros_like(v) for k, v in net.named_parameters()}
            mean_losses = torch.zeros(2, device=x.device)
        std = self.noise_multiplier * self.clip_norm
        noised = {
            k: (s + (torch.randn(s.shape, generator=self.generator) * std).to(s.device, s.dtype)) / self.expected_batch
            for k, s in summed.items()
        }
        return noised, mean_losses
