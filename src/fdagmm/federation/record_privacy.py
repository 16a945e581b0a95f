"""Record-level differential privacy (``privacy=record_dp``): each organisation protects each
of its records, against everyone else in the federation, the server included. For a few
organisations (K = 2 to 10), where client-level DP cannot leave a useful model.

What a client releases, and why each release is a Gaussian mechanism on its records
(docs/privacy.md, "Record-level DP", gives the argument in full):
- its model update, trained by DP-SGD (``models.dp_sgd``) on Poisson-sampled batches, under
  the federation's last released mixture held fixed (``dagmm.frozen_mixture_objective``), so
  that each record's loss depends on that record alone and per-record clipping bounds it;
- its mixture statistics (S0, S1, S2) of codes z clipped to ``||z|| <= z_norm_bound`` (B),
  with Gaussian noise added here, before they leave: one record changes them by at most
  sqrt(1 + B^2 + B^4) in L2 norm (sum_k gamma_k^2 <= 1).
The server only sums (``release_sum``: post-processing).

The statistics' noise multiplier z_s is given; the gradients' z is given or, with
``target_epsilon``, solved by each client from its record count. One accountant (``privacy.epsilon``: Opacus's RDP analysis)
composes, per client, its DP-SGD steps (sampling rate batch / n_k) and its statistics
releases (unsampled). The rounds are pipelined as the Flower backend runs them: round t trains
from theta_{t-1} under the mixture released from the statistics under theta_{t-2} (none in
round 1: the reconstruction alone), and every client releases its statistics under every
theta_s, s = 0..R, once; the mixture of theta_s also scores round s's evaluation.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass, field

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from fdagmm.data.datamodule import poisson_batch_loader
from fdagmm.detection.evaluation import latent
from fdagmm.errors import ConfigError
from fdagmm.federation.privacy import epsilon, solve_noise_multiplier, valid_stats
from fdagmm.models.dagmm import DAGMM, GaussianMixture, GMMStats, gmm_sufficient_stats, prepare_mixture
from fdagmm.models.dp_sgd import PrivateStep
from fdagmm.seeding import GRADIENT_NOISE_STREAM, RECORD_SAMPLING_STREAM, RECORD_STATS_NOISE_STREAM, derive_seed


def stats_sensitivity(z_norm_bound: float) -> float:
    """The L2 norm by which one record can change a client's (S0, S1, S2) with ||z|| <= B:
    its contribution is gamma_k (1, z, z z^T) per component, of squared norm
    sum_k gamma_k^2 (1 + ||z||^2 + ||z||^4) <= 1 + B^2 + B^4."""
    b2 = z_norm_bound**2
    return math.sqrt(1.0 + b2 + b2 * b2)


def clip_rows(z: Tensor, bound: float) -> Tensor:
    """Each row of ``z`` scaled to L2 norm <= ``bound``."""
    return z * (bound / z.norm(dim=1, keepdim=True).clamp_min(1e-12)).clamp(max=1.0)


@dataclass
class RecordLevelDP:
    """The run's record-level DP settings (``conf/privacy/record_dp.yaml``) and its mechanism."""

    clip_norm: float  # C: the L2 bound of one record's gradient
    z_norm_bound: float  # B: the L2 bound of one record's code z in the mixture statistics
    stats_noise_multiplier: float  # z_s: the statistics' noise std over their sensitivity
    membership_weight: float  # the estimation network's cross-entropy weight under the fixed mixture
    delta: float
    rounds: int
    local_epochs: int
    batch_size: int  # the expected batch: each record is sampled with probability batch / n_k
    seed: int
    given_noise_multiplier: float | None = None
    target_epsilon: float | None = None
    # privacy.insecure_reproducible_noise: batches and noise from (seed, round, client): NOT PRIVATE.
    reproducible_noise: bool = False
    # client id -> its training records, which the server knows (FedAvg's weights): the report's epsilons.
    client_sizes: dict[int, int] = field(default_factory=dict)

    clients_clip = False  # no client-level clipping: DP-SGD bounds each record within the update

    def sample_rate(self, n: int) -> float:
        return min(1.0, self.batch_size / n)

    def steps_per_round(self, n: int) -> int:
        return self.local_epochs * -(-n // self.batch_size)

    def noise_multiplier(self, n: int) -> float:
        """z for a client of ``n`` records: the one given, or the smallest that keeps its
        epsilon after the run <= target."""
        if self.given_noise_multiplier is not None:
            return self.given_noise_multiplier
        steps = self.rounds * self.steps_per_round(n)
        return solve_noise_multiplier(self.target_epsilon, self.sample_rate(n), steps, self.rounds + 1, self.delta, self.stats_noise_multiplier)

    def epsilon_after(self, round_idx: int, n: int) -> float:
        """A client's epsilon by the end of ``round_idx``: its DP-SGD steps of rounds 1..t and
        its statistics under theta_0..theta_t (those of theta_t counted already, as they are
        released for round t's evaluation or the next round's training)."""
        steps = round_idx * self.steps_per_round(n)
        return epsilon(self.noise_multiplier(n), self.sample_rate(n), steps, round_idx + 1, self.delta, self.stats_noise_multiplier)

    def with_sizes(self, sizes: dict[int, int]) -> RecordLevelDP:
        """Set the training clients' record counts; a ConfigError when delta is not below 1/n_k."""
        for k, n in sizes.items():
            if self.delta >= 1 / n:
                raise ConfigError(f"privacy.delta={self.delta} allows one of client {k}'s {n} records to be exposed outright: use a delta below 1/{n}")
        self.client_sizes = dict(sizes)
        return self

    def epsilons(self, round_idx: int) -> dict[str, float]:
        return {f"client{k}": self.epsilon_after(round_idx, n) for k, n in sorted(self.client_sizes.items())}

    def round_metrics(self, round_idx: int) -> dict[str, float]:
        """Each client's epsilon spent by the end of ``round_idx`` and the largest of them."""
        epsilons = self.epsilons(round_idx)
        return {"privacy/epsilon": max(epsilons.values(), default=0.0), **{f"privacy/epsilon/{k}": e for k, e in epsilons.items()}}

    def generator(self, round_idx: int, client_id: int, stream: int) -> torch.Generator:
        seed = derive_seed(self.seed, round_idx, client_id, stream) if self.reproducible_noise else secrets.randbits(63)
        return torch.Generator().manual_seed(seed)

    def batches(self, x: Tensor, round_idx: int, client_id: int) -> DataLoader:
        """A round's Poisson-sampled batches of a client's records ``x``."""
        n = len(x)
        generator = self.generator(round_idx, client_id, RECORD_SAMPLING_STREAM)
        return poisson_batch_loader(x, self.sample_rate(n), self.steps_per_round(n) // self.local_epochs, generator)

    def private_step(self, mixture: GaussianMixture | None, cov_jitter: float, lambda_energy: float, n: int, round_idx: int, client_id: int) -> PrivateStep:
        """A client's DP-SGD step for a round, under the fixed ``mixture`` (None: round 1)."""
        return PrivateStep(
            mixture=None if mixture is None else prepare_mixture(mixture, cov_jitter),
            lambda_energy=lambda_energy,
            membership_weight=self.membership_weight,
            clip_norm=self.clip_norm,
            noise_multiplier=self.noise_multiplier(n),
            expected_batch=self.sample_rate(n) * n,
            generator=self.generator(round_idx, client_id, GRADIENT_NOISE_STREAM),
        )

    @property
    def stats_noise_std(self) -> float:
        """The standard deviation of the noise on each entry of one client's statistics."""
        return self.stats_noise_multiplier * stats_sensitivity(self.z_norm_bound)

    def noised_stats(self, net: DAGMM, x: Tensor, client_id: int, round_idx: int) -> GMMStats:
        """A client's statistics of its records ``x`` under theta_``round_idx``, codes clipped to
        B, each entry noised with N(0, (z_s * sqrt(1 + B^2 + B^4))^2) before it leaves."""
        z, gamma = latent(net, x)
        stats = gmm_sufficient_stats(clip_rows(z, self.z_norm_bound), gamma)
        generator = self.generator(round_idx, client_id, RECORD_STATS_NOISE_STREAM)
        noised = (t + torch.randn(t.shape, generator=generator, dtype=torch.float64) * self.stats_noise_std for t in (stats.s0, stats.s1, stats.s2))
        return GMMStats(*noised, n=stats.n)

    def release_sum(self, summed: GMMStats, n_clients: int, round_idx: int) -> GMMStats:
        """The federation's statistics: the sum of ``n_clients`` clients' noised ones, made those of a
        mixture (``privacy.valid_stats``). Each component's weight is floored at the standard
        deviation of its noise (below it, the mean and covariance it divides are noise), and
        each covariance's eigenvalues at the noise's standard deviation on it (noise std over
        the weight): a direction whose variance is below the noise of its estimate is unknown,
        and taken as that wide rather than as the near-zero variance the noise may suggest,
        which would make every record's energy in it enormous. Post-processing: the server
        adds nothing."""
        noise_std = self.stats_noise_std * math.sqrt(n_clients)  # of the sum's entries
        weight = summed.s0.clamp_min(noise_std)
        return valid_stats(weight, summed.s1, summed.s2, summed.n, min_variance=noise_std / weight)

    def run_info(self) -> dict[str, object]:
        """What metrics.json says of the mechanism: every training client's epsilon after the run."""
        sizes = self.client_sizes
        return {
            "mechanism": "record-level dp-sgd",
            "epsilon": max(self.epsilons(self.rounds).values(), default=0.0),
            "epsilon_by_client": self.epsilons(self.rounds),
            "delta": self.delta,
            "noise_multiplier_by_client": {f"client{k}": self.noise_multiplier(n) for k, n in sorted(sizes.items())},
            "clip_norm": self.clip_norm,
            "z_norm_bound": self.z_norm_bound,
            "stats_noise_multiplier": self.stats_noise_multiplier,
            "sample_rate_by_client": {f"client{k}": self.sample_rate(n) for k, n in sorted(sizes.items())},
            "noise": "reproducible from the run's seed: NOT PRIVATE" if self.reproducible_noise else "secret",
        }

