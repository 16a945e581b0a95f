"""DAGMM (Zong et al., ICLR 2018) in plain torch: the networks, the mixture and the energy.

Nothing here depends on Lightning. The mixture is always derived from sufficient statistics
(S0, S1, S2, n) accumulated in float64: in a training batch, over a whole training set, or
summed over the clients of a federation, the same code gives the same mixture.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from fdagmm.errors import NumericalError

# Denominator guard for norms and component weights: far below any real value in float64.
TINY = 1e-12

# model.net.distance_feature: the reconstruction distance the estimation network sees, as the
# paper has it (||x - x'|| / ||x||) or its logarithm (a heavy-tailed distance made closer to
# Gaussian for the mixture).
DISTANCE_FEATURES = ("relative", "log_relative")


def _mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers of the given sizes with tanh between them and a linear last layer."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        if i > 0:
            layers.append(nn.Tanh())
        layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers)


@dataclass
class DAGMMOutput:
    x_hat: Tensor  # reconstruction, (N, D)
    z: Tensor  # [z_c, relative Euclidean distance, cosine similarity], (N, latent + 2); z_c alone without reconstruction features
    gamma: Tensor  # soft membership in the K components, (N, K)
    squared_error: Tensor  # ||x - x'||^2 per sample, (N,): the reconstruction loss's terms


class DAGMM(nn.Module):
    """Compression network (deep autoencoder) and estimation network."""

    def __init__(
        self,
        input_dim: int,
        hidden_dims: tuple[int, ...] = (60, 30, 10),
        latent_dim: int = 1,
        estimation_hidden: int = 10,
        n_components: int = 4,
        dropout: float = 0.5,
        distance_feature: str = "relative",
        reconstruction_features: bool = True,
        detach_reconstruction_features: bool = False,
    ):
        super().__init__()
        if distance_feature not in DISTANCE_FEATURES:
            raise ValueError(f"unknown distance_feature {distance_feature!r}: one of {', '.join(DISTANCE_FEATURES)}")
        self.log_distance = distance_feature == "log_relative"
        # False: the mixture sees the code alone (an ablation: what the reconstruction features add).
        self.reconstruction_features = reconstruction_features
        # True: the energy's gradient reaches the autoencoder through the code only, not
        # through the reconstruction features (which the reconstruction loss alone shapes).
        self.detach_reconstruction_features = detach_reconstruction_features
        self.encoder = _mlp([input_dim, *hidden_dims, latent_dim])
        self.decoder = _mlp([latent_dim, *reversed(hidden_dims), input_dim])
        self.estimation = nn.Sequential(
            nn.Linear(latent_dim + (2 if reconstruction_features else 0), estimation_hidden),
            nn.Tanh(),
            nn.Dropout(dropout),
            nn.Linear(estimation_hidden, n_components),
            nn.Softmax(dim=1),
        )

    def forward(self, x: Tensor) -> DAGMMOutput:
        z_c = self.encoder(x)
        x_hat = self.decoder(z_c)
        error = (x - x_hat).norm(dim=1)
        z = z_c
        if self.reconstruction_features:
            features = reconstruction_features(x, x_hat, error, self.log_distance)
            z = torch.cat([z_c, features.detach() if self.detach_reconstruction_features else features], dim=1)
        return DAGMMOutput(x_hat=x_hat, z=z, gamma=self.estimation(z), squared_error=error.square())


def reconstruction_features(x: Tensor, x_hat: Tensor, error: Tensor, log_distance: bool = False) -> Tensor:
    """[||x - x'|| / ||x||, cos(x, x')] per sample, given ``error`` = ||x - x'||; with
    ``log_distance``, the log of the relative distance (floored at TINY).

    Written as row reductions that share their terms with the reconstruction loss: fewer
    passes over the (N, D) tensors than ``F.cosine_similarity`` and a second norm. A
    zero-norm x or x' gives finite values.
    """
    x_norm = x.norm(dim=1).clamp_min(TINY)
    cosine = (x * x_hat).sum(dim=1) / (x_norm * x_hat.norm(dim=1)).clamp_min(TINY)
    distance = error / x_norm
    if log_distance:
        distance = distance.clamp_min(TINY).log()
    return torch.stack([distance, cosine], dim=1)


@dataclass
class GMMStats:
    """Sufficient statistics of a soft-assigned mixture over ``n`` samples (float64).

    s0[k] = sum_i gamma_ik, s1[k] = sum_i gamma_ik z_i, s2[k] = sum_i gamma_ik z_i z_i^T.
    Statistics of disjoint sample sets add up to those of their union.
    """

    s0: Tensor  # (K,)
    s1: Tensor  # (K, d)
    s2: Tensor  # (K, d, d)
    n: int

    def __add__(self, other: GMMStats) -> GMMStats:
        return GMMStats(self.s0 + other.s0, self.s1 + other.s1, self.s2 + other.s2, self.n + other.n)


def gmm_sufficient_stats(z: Tensor, gamma: Tensor) -> GMMStats:
    z, gamma = z.double(), gamma.double()
    # s2 as a batched product rather than einsum("nk,ni,nj->kij"): a three-operand einsum
    # has opt_einsum search its contraction order on every call, about 0.5 ms of Python per
    # training step, a tenth of the step on a CPU.
    weighted = gamma.T[:, :, None] * z[None, :, :]  # (K, N, d)
    return GMMStats(
        s0=gamma.sum(0),
        s1=gamma.T @ z,
        s2=weighted.mT @ z,
        n=z.shape[0],
    )


@dataclass
class GaussianMixture:
    phi: Tensor  # (K,) component weights
    mu: Tensor  # (K, d) means
    sigma: Tensor  # (K, d, d) covariances

    def to(self, device: torch.device | str) -> GaussianMixture:
        return GaussianMixture(self.phi.to(device), self.mu.to(device), self.sigma.to(device))


def mixture_from_stats(stats: GMMStats) -> GaussianMixture:
    weight = stats.s0.clamp_min(TINY)
    mu = stats.s1 / weight[:, None]
    sigma = stats.s2 / weight[:, None, None] - mu[:, :, None] * mu[:, None, :]
    return GaussianMixture(phi=stats.s0 / stats.n, mu=mu, sigma=0.5 * (sigma + sigma.mT))


def cholesky_with_jitter(sigma: Tensor, jitter: float, max_tries: int = 6) -> Tensor:
    """Cholesky factors of sigma + jitter*I, with 10x more jitter while a factorisation fails.

    On a GPU the same choice is made without reading anything back to the host
    (``_cholesky_with_jitter_on_device``), so that a training step can be captured as a CUDA graph.
    """
    if sigma.is_cuda:
        return _cholesky_with_jitter_on_device(sigma, jitter, max_tries)
    eye = torch.eye(sigma.shape[-1], dtype=sigma.dtype, device=sigma.device)
    for _ in range(max_tries):
        factor, info = torch.linalg.cholesky_ex(sigma + jitter * eye)
        if not info.any():
            return factor
        jitter *= 10.0
    raise NumericalError(
        f"covariance is not positive definite even with {jitter / 10:g} added to its diagonal: "
        "the model has diverged; lower the learning rate or raise model.cov_jitter"
    )


def _cholesky_with_jitter_on_device(sigma: Tensor, jitter: float, max_tries: int) -> Tensor:
    """``cholesky_with_jitter`` without host synchronisation: every jitter level is tried at
    once, the smallest one that factors all components is kept, and the factor is NaN where
    none does (the NaN reaches the loss and the client's update, which the round leaves out).
    """
    eye = torch.eye(sigma.shape[-1], dtype=sigma.dtype, device=sigma.device)
    tries = torch.arange(max_tries, device=sigma.device)
    levels = jitter * 10.0 ** tries.to(sigma.dtype)
    with torch.no_grad():  # which level: no gradient through the levels not taken
        _, info = torch.linalg.cholesky_ex(sigma.detach()[None] + levels[:, None, None, None] * eye)
        factors_all = (info == 0).all(dim=1)  # (max_tries,)
        first = factors_all.int().argmax()  # the first level that works (0 if none)
        chosen = (levels * (tries == first)).sum()  # levels[first], without an indexing kernel
    factor, _ = torch.linalg.cholesky_ex(sigma + chosen * eye)
    return torch.where(factors_all.any(), factor, torch.full_like(factor, math.nan))


@dataclass
class PreparedMixture:
    """A fixed mixture made ready for energies: log weights, means, and the Cholesky factors
    and log-determinants of its covariances (factored once, outside any per-record map)."""

    log_phi: Tensor  # (K,)
    mu: Tensor  # (K, d)
    factor: Tensor  # (K, d, d) lower-triangular
    log_det: Tensor  # (K,)


def prepare_mixture(mixture: GaussianMixture, jitter: float) -> PreparedMixture:
    factor = cholesky_with_jitter(mixture.sigma, jitter)  # (K, d, d)
    log_det = 2.0 * factor.diagonal(dim1=-2, dim2=-1).log().sum(-1)
    return PreparedMixture(mixture.phi.clamp_min(TINY).log(), mixture.mu, factor, log_det)


def log_joint(z: Tensor, mixture: PreparedMixture) -> Tensor:
    """log phi_k + log N(z_i; mu_k, Sigma_k), (N, K), in float64: a triangular solve for the
    Mahalanobis term, no explicit inverse or determinant."""
    z = z.double()
    centred = (z[None, :, :] - mixture.mu[:, None, :]).mT  # (K, d, N)
    solved = torch.linalg.solve_triangular(mixture.factor, centred, upper=False)  # (K, d, N)
    mahalanobis = solved.square().sum(dim=1).T  # (N, K)
    d = z.shape[1]
    return mixture.log_phi - 0.5 * (d * math.log(2 * math.pi) + mixture.log_det + mahalanobis)


def sample_energy(z: Tensor, mixture: GaussianMixture, jitter: float) -> Tensor:
    """E(z) = -log sum_k phi_k N(z; mu_k, Sigma_k), per sample, in float64."""
    return -torch.logsumexp(log_joint(z, prepare_mixture(mixture, jitter)), dim=1)


def covariance_penalty(sigma: Tensor) -> Tensor:
    """P(Sigma) = sum_k sum_j 1 / Sigma_k[j, j]; large when a component collapses."""
    return sigma.diagonal(dim1=-2, dim2=-1).clamp_min(TINY).reciprocal().sum()


@dataclass
class DAGMMLoss:
    total: Tensor
    reconstruction: Tensor
    energy: Tensor
    cov_penalty: Tensor


def dagmm_objective(
    x: Tensor, out: DAGMMOutput, lambda_energy: float, lambda_cov: float, cov_jitter: float
) -> DAGMMLoss:
    """J = mean ||x - x'||^2 + lambda_energy * mean E(z) + lambda_cov * P(Sigma), batch mixture."""
    mixture = mixture_from_stats(gmm_sufficient_stats(out.z, out.gamma))
    reconstruction = out.squared_error.mean()
    energy = sample_energy(out.z, mixture, cov_jitter).mean().to(x.dtype)
    penalty = covariance_penalty(mixture.sigma).to(x.dtype)
    total = reconstruction + lambda_energy * energy + lambda_cov * penalty
    return DAGMMLoss(total, reconstruction.detach(), energy.detach(), penalty.detach())


def training_loss(net: DAGMM, x: Tensor, lambda_energy: float, lambda_cov: float, cov_jitter: float) -> DAGMMLoss:
    """The objective of ``net`` on the batch ``x``."""
    return dagmm_objective(x, net(x), lambda_energy, lambda_cov, cov_jitter)


def frozen_mixture_objective(
    x: Tensor, out: DAGMMOutput, mixture: PreparedMixture | None, lambda_energy: float, membership_weight: float
) -> Tensor:
    """Per record: ||x - x'||^2 + lambda_energy * E(z; mixture) + membership_weight * H(r, gamma),
    under a fixed ``mixture`` (record-level differential privacy), so that each record's loss
    depends on that record alone. The mixture takes no gradient, so the covariance penalty
    is a constant and drops out, and the estimation network learns from its own target: the
    cross-entropy H to the mixture's posterior memberships r of z (an E-step). Without a
    mixture (a federation's first round), the reconstruction alone."""
    if mixture is None:
        return out.squared_error
    joint = log_joint(out.z, mixture)  # (N, K)
    energy = -torch.logsumexp(joint, dim=1)
    memberships = torch.softmax(joint.detach(), dim=1)
    cross_entropy = -(memberships * out.gamma.double().clamp_min(TINY).log()).sum(dim=1)
    return out.squared_error + (lambda_energy * energy + membership_weight * cross_entropy).to(out.squared_error.dtype)
