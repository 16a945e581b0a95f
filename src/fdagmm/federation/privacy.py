"""Client-level differential privacy: DP-FedAvg (McMahan et al., "Learning Differentially
Private Recurrent Language Models", ICLR 2018) for the model, and the same Gaussian mechanism
for the mixture's sufficient statistics (docs/privacy.md says what it guarantees).

Client side (``clip_update``, ``clip_stats``): what leaves a client is bounded. Its model
update theta_k - theta is clipped to L2 norm ``clip_norm``; its statistics are normalised by
its record count (so they describe its records' distribution, not how many it has) and
clipped to ``stats_clip_norm``, as one vector.

Server side (``DPFedAvg``, ``release_sum``): Gaussian noise of standard deviation
z * clip on the sum of the clipped contributions, and fixed weights: the update sum is
divided by the expected number of clients per round, the statistics count one per client.
The noise is secret: each release draws it from a generator seeded from the operating
system's secure source (``secrets``), never from the run's seed, which every client
receives with the run's config; a resumed run draws fresh noise. Only
``privacy.insecure_reproducible_noise=true`` (simulation studies, marked as not private
wherever the run's results go) seeds it from (seed, round), so that two runs and both
backends add the same noise.

With ``privacy.noise_at=clients`` (which needs secure aggregation) each client adds its share
of that noise to what it sends instead (``update_contribution``, ``stats_share``), so that the
server only ever sees noised sums; the accountant then bounds epsilon against the server
(``epsilon_against_server``).

Adaptive clipping (``AdaptiveClipping``; Andrew, Thakkar, McMahan and Ramaswamy, "Differentially
Private Learning with Adaptive Clipping", NeurIPS 2021): the server clips the updates itself
with the round's norm C_t, releases the noised fraction of updates that needed no clipping,
and moves C geometrically towards the norm that leaves a target share unclipped. The count's
noise and the update's noise together are one Gaussian mechanism of multiplier z (the paper's
Theorem 1), so the accounting below is unchanged.

Accounting (``epsilon``): Opacus's RDP analysis composes, per round, the sampled Gaussian
mechanism of the update (sampling rate q = clients per round / training clients) and, per
evaluated round, the statistics' Gaussian mechanism (every training client reports: q = 1).
Every release is written to the run dir's ``RELEASES_FILE`` before its noise is drawn, and
the accountant counts what that file lists: a round redone after a crash counts twice.
"""

from __future__ import annotations

import functools
import json
import math
import os
import secrets
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from fdagmm.errors import ConfigError
from fdagmm.federation.strategies import ClientUpdate, Strategy
from fdagmm.federation.strategies.base import LocalPenalty
from fdagmm.models.dagmm import GMMStats
from fdagmm.seeding import STATS_NOISE_STREAM, STATS_SHARE_STREAM, UPDATE_NOISE_STREAM, UPDATE_SHARE_STREAM, derive_seed

# Orders of the Renyi divergence the accountant minimises over: Opacus's defaults, extended
# upwards because large epsilons (weak noise) have their optimum beyond order 63.
RDP_ORDERS = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 256))
# The smallest noise multiplier ``solve_noise_multiplier`` tries and the precision it stops at.
MIN_NOISE, NOISE_TOLERANCE = 1e-3, 1e-3
# Floor of a noised component weight (sum over clients of their responsibilities): noise can
# make it zero or negative, and the mixture divides by it.
MIN_COMPONENT_WEIGHT = 1e-6
# The run dir's log of the releases made, one JSON line each: {"round": t, "kind": "update" | "stats"},
# and with noise_at=clients "shares": how many clients' noise shares the release carried.
RELEASES_FILE = "privacy_releases.jsonl"
UPDATE, STATS = "update", "stats"
# The entry of a round checkpoint's strategy state that keeps the adaptive clip norm.
ADAPTIVE_STATE = "adaptive_clipping"


def _norm(tensors: Iterable[Tensor]) -> float:
    """The L2 norm of ``tensors`` taken as one vector."""
    return torch.sqrt(sum(t.square().sum() for t in tensors)).item()


def _clip_factor(norm: float, clip_norm: float) -> float:
    return min(1.0, clip_norm / norm) if norm > 0 else 1.0


def clipped_delta(global_state: dict[str, Tensor], state: dict[str, Tensor], clip_norm: float) -> tuple[dict[str, Tensor], bool]:
    """state - global_state (float64, over ``state``'s entries) scaled to L2 norm <= clip_norm,
    and whether it was within the norm already (left unscaled)."""
    delta = {k: v.double() - global_state[k].double() for k, v in state.items()}
    factor = _clip_factor(_norm(delta.values()), clip_norm)
    return {k: d * factor for k, d in delta.items()}, factor == 1.0


def clip_update(global_state: dict[str, Tensor], state: dict[str, Tensor], clip_norm: float) -> dict[str, Tensor]:
    """The weights a client sends: global + its update clipped to L2 norm ``clip_norm``."""
    delta, _ = clipped_delta(global_state, state, clip_norm)
    return {k: (global_state[k].double() + d).to(state[k].dtype) for k, d in delta.items()}


def clip_stats(stats: GMMStats, clip_norm: float) -> GMMStats:
    """A client's statistics divided by its record count, clipped as one vector (s0, s1, s2)
    to L2 norm ``clip_norm``; n = 1: each client counts once in the federation's mixture."""
    parts = [stats.s0 / stats.n, stats.s1 / stats.n, stats.s2 / stats.n]
    factor = _clip_factor(_norm(parts), clip_norm)
    return GMMStats(*(p * factor for p in parts), n=1)


def _gaussian(like: Tensor, std: float, generator: torch.Generator) -> Tensor:
    return torch.randn(like.shape, generator=generator, dtype=torch.float64) * std


def valid_stats(s0: Tensor, s1: Tensor, s2: Tensor, n: int, min_weight: float = MIN_COMPONENT_WEIGHT, min_variance: Tensor | float = 0.0) -> GMMStats:
    """Noised statistics made those of a mixture: component weights floored at ``min_weight``,
    covariances symmetric with eigenvalues floored at ``min_variance`` (per component, or one
    for all; 0: positive semi-definite). Post-processing: it costs no privacy."""
    s0 = s0.clamp_min(min_weight)
    mu = s1 / s0[:, None]
    outer = mu[:, :, None] * mu[:, None, :]
    sigma = s2 / s0[:, None, None] - outer
    eigenvalues, eigenvectors = torch.linalg.eigh(0.5 * (sigma + sigma.mT))
    floor = torch.as_tensor(min_variance, dtype=eigenvalues.dtype).reshape(-1, 1)
    sigma = eigenvectors @ torch.diag_embed(torch.maximum(eigenvalues, floor)) @ eigenvectors.mT
    return GMMStats(s0=s0, s1=s1, s2=s0[:, None, None] * (sigma + outer), n=n)


@dataclass(frozen=True)
class AdaptiveClipping:
    """The clip norm's update rule (``privacy.adaptive_clipping=true``): after round t,
    C <- C * exp(-lr * (b - target_unclipped_quantile)), where b is the noised share of the
    round's updates whose norm was at most C. Each update counts b_k - 1/2 (sensitivity 1/2),
    their sum gets N(0, count_std^2), then is divided by the expected clients and 1/2 added
    back, as the paper does: neither the count of clipped updates nor the number of clients
    that took part is released."""

    target_unclipped_quantile: float  # gamma: the share of updates C should leave unclipped
    lr: float  # eta_C: the geometric step
    count_std: float  # sigma_b: the noise on the count; the paper's default is expected clients / 20

    def update_noise_multiplier(self, noise_multiplier: float) -> float:
        """z_Delta = (z^-2 - (2 sigma_b)^-2)^(-1/2): the update's share of the total noise
        multiplier z, so that update and count together are one Gaussian mechanism of z."""
        if noise_multiplier >= 2 * self.count_std:
            raise ConfigError(
                f"adaptive clipping with noise multiplier {noise_multiplier:.4g} needs privacy.clipped_count_stddev "
                f"above {noise_multiplier / 2:.4g} (it is {self.count_std:.4g}): raise it, or the clients per round, "
                "or use privacy.adaptive_clipping=false"
            )
        return (noise_multiplier**-2 - (2 * self.count_std) ** -2) ** -0.5

    def next_clip_norm(self, clip_norm: float, unclipped_share: float) -> float:
        return clip_norm * math.exp(-self.lr * (unclipped_share - self.target_unclipped_quantile))


@dataclass
class ClientLevelDP:
    """The run's client-level DP settings (``conf/privacy/dp.yaml``) and its mechanism."""

    clip_norm: float  # C: the L2 bound of a client's model update (this round's, under adaptive clipping)
    stats_clip_norm: float  # C_s: the L2 bound of a client's normalised statistics
    delta: float
    sample_rate: float  # q: clients per round / training clients
    expected_clients: int  # clients per round: the update sum's fixed denominator
    rounds: int
    stats_rounds: tuple[int, ...]  # the rounds after which the statistics are released (evaluated, global mixture)
    seed: int
    given_noise_multiplier: float | None = None
    target_epsilon: float | None = None
    # privacy.insecure_reproducible_noise: noise from (seed, round), which anyone holding the
    # run's config can regenerate and subtract. Not private; for simulation studies only.
    reproducible_noise: bool = False
    releases_path: Path | None = None  # the run dir's RELEASES_FILE (None: releases are not logged)
    adaptive: AdaptiveClipping | None = None  # None: C stays privacy.clip_norm
    # privacy.noise_at: the server adds the noise to the sums, or each client a share of it
    # to what it sends (with secure aggregation, so that no un-noised sum is ever seen).
    noise_at: str = "server"
    stats_clients: int = 1  # the clients whose statistics make the federation's mixture
    # round -> (L2 norm of the mean clipped update, of the noise added to it), this process's rounds
    update_norms: dict[int, tuple[float, float]] = field(default_factory=dict)
    # round -> (the clip norm it used, the noised share of its updates left unclipped), under adaptive clipping
    clipping: dict[int, tuple[float, float]] = field(default_factory=dict)

    def record_release(self, round_idx: int, kind: str, shares: int | None = None) -> None:
        """Log a release before its noise is drawn (or, with noise_at=clients, before the sum
        carrying ``shares`` clients' noise is opened), to disk, so that a crash cannot hide it."""
        if self.releases_path is None:
            return
        with open(self.releases_path, "a") as f:
            f.write(json.dumps({"round": round_idx, "kind": kind} | ({} if shares is None else {"shares": shares})) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def releases_until(self, round_idx: int) -> tuple[int, int]:
        """(update releases, statistics releases) of rounds up to ``round_idx``: as logged
        (a redone round counts again), or as planned when nothing is logged."""
        if self.releases_path is None or not self.releases_path.is_file():
            return round_idx, sum(r <= round_idx for r in self.stats_rounds)
        mine = [line["kind"] for line in self._logged_releases(round_idx)]
        return mine.count(UPDATE), mine.count(STATS)

    def _logged_releases(self, round_idx: int) -> list[dict]:
        lines = [json.loads(line) for line in self.releases_path.read_text().splitlines() if line.strip()]
        return [line for line in lines if line["round"] <= round_idx]

    def noise_generator(self, round_idx: int, stream: int, client_id: int = 0) -> torch.Generator:
        """The generator of one release's noise (or one client's share of it): seeded from the
        secure source, or (not private) from (seed, round, client, stream)."""
        seed = derive_seed(self.seed, round_idx, client_id, stream) if self.reproducible_noise else secrets.randbits(63)
        return torch.Generator().manual_seed(seed)

    @functools.cached_property
    def noise_multiplier(self) -> float:
        """z: the one given, or the smallest that keeps epsilon after every round <= target."""
        if self.given_noise_multiplier is not None:
            return self.given_noise_multiplier
        return solve_noise_multiplier(self.target_epsilon, self.sample_rate, self.rounds, len(self.stats_rounds), self.delta)

    @property
    def clients_clip(self) -> bool:
        """Whether clients clip their own updates: with a fixed C; under adaptive clipping the
        server does, with the round's C, which it alone holds."""
        return self.adaptive is None

    @functools.cached_property
    def update_noise_multiplier(self) -> float:
        """The update noise's standard deviation over C: z, or under adaptive clipping the
        update's share of it (``AdaptiveClipping.update_noise_multiplier``)."""
        z = self.noise_multiplier
        return z if self.adaptive is None else self.adaptive.update_noise_multiplier(z)

    def epsilon_after(self, round_idx: int) -> float:
        """epsilon spent by the end of ``round_idx``: its updates and statistics released so far.
        With noise_at=clients, against the server (``epsilon_against_server``)."""
        if self.noise_at == "clients":
            return self.epsilon_against_server(round_idx)
        updates, stats = self.releases_until(round_idx)
        return epsilon(self.noise_multiplier, self.sample_rate, updates, stats, self.delta)

    def epsilon_against_server(self, round_idx: int) -> float:
        """noise_at=clients: the server sees which clients take part, so their sampling amplifies
        nothing against it. Each release is an unsampled Gaussian mechanism on a participant's
        contribution (zero-out neighbours: the content of its update, not its taking part)
        whose noise is the shares the sum actually carried: multiplier z sqrt(shares / full),
        full = the clients per round for an update, the mixture's clients for statistics. A
        client that dropped out took its share with it; the bound holds for a client that took
        part in every release."""
        if self.releases_path is not None and self.releases_path.is_file():
            logged = [(line["kind"], line["shares"]) for line in self._logged_releases(round_idx)]
        else:
            logged = [(UPDATE, self.expected_clients)] * round_idx + [(STATS, self.stats_clients)] * sum(r <= round_idx for r in self.stats_rounds)
        full = {UPDATE: self.expected_clients, STATS: self.stats_clients}
        mechanisms = [(1.0, self.noise_multiplier * math.sqrt(shares / full[kind])) for kind, shares in logged if shares > 0]
        return epsilon_of([(m, 1) for m in mechanisms], self.delta)

    def round_metrics(self, round_idx: int) -> dict[str, float]:
        """The round's privacy scalars for its record: the epsilon spent by its end and, for a
        round this process aggregated, the norms of the mean clipped update and of the noise
        added to it, and their ratio (how much of the released step is signal). The norms are
        a diagnostic for studies, computed from the clipped updates the server holds: they are
        not covered by the privacy guarantee."""
        metrics = {"privacy/epsilon": self.epsilon_after(round_idx)}
        if round_idx in self.update_norms:
            update, noise = self.update_norms[round_idx]
            metrics |= {"privacy/update_norm": update, "privacy/noise_norm": noise, "privacy/update_to_noise": update / noise if noise > 0 else math.inf}
        if round_idx in self.clipping:
            clip_norm, unclipped = self.clipping[round_idx]
            metrics |= {"privacy/clip_norm": clip_norm, "privacy/unclipped_share": unclipped}
        return metrics

    def noised_mean_update(
        self, global_state: dict[str, Tensor], updates: list[ClientUpdate], round_idx: int, keys: list[str]
    ) -> dict[str, Tensor]:
        """theta + (sum_k clip(theta_k - theta) + N(0, (z C)^2 I)) / expected clients, over the
        federated entries ``keys``; with no update (a round Poisson sampling left empty), the
        noise alone. The server clips again: a client's rounding cannot exceed C."""
        total = {k: torch.zeros_like(global_state[k], dtype=torch.float64) for k in keys}
        unclipped = 0
        for update in updates:
            delta, within = clipped_delta(global_state, {k: update.state[k] for k in keys}, self.clip_norm)
            unclipped += within
            for k, d in delta.items():
                total[k] += d
        return self.mean_of_sum(global_state, total, len(updates), round_idx, unclipped)

    def mean_of_sum(
        self, global_state: dict[str, Tensor], total: dict[str, Tensor], n_updates: int, round_idx: int, unclipped: int = 0
    ) -> dict[str, Tensor]:
        """theta + (``total`` + N(0, (z C)^2 I)) / expected clients, ``total`` the sum of
        ``n_updates`` clipped updates (``unclipped`` of them within C before clipping, for
        adaptive clipping); with noise_at=clients the noise is in ``total`` already, the
        clients' shares, and the server adds none."""
        if self.noise_at == "clients":
            self.record_release(round_idx, UPDATE, shares=n_updates)
            noised = total
        else:
            self.record_release(round_idx, UPDATE)
            generator = self.noise_generator(round_idx, UPDATE_NOISE_STREAM)
            std = self.update_noise_multiplier * self.clip_norm
            noise = {k: _gaussian(t, std, generator) for k, t in total.items()}
            self.update_norms[round_idx] = (_norm(total.values()) / self.expected_clients, _norm(noise.values()) / self.expected_clients)
            if self.adaptive is not None:
                self._adapt_clip_norm(round_idx, unclipped, n_updates, generator)
            noised = {k: t + noise[k] for k, t in total.items()}
        return {k: (global_state[k].double() + t / self.expected_clients).to(global_state[k].dtype) for k, t in noised.items()}

    def update_contribution(self, global_state: dict[str, Tensor], update: ClientUpdate, round_idx: int) -> dict[str, Tensor]:
        """A client's term of the round's secure sum: its clipped update theta_k - theta and,
        with noise_at=clients, its share of the noise, N(0, (z C)^2 / clients per round)."""
        delta, _ = clipped_delta(global_state, update.state, self.clip_norm)
        if self.noise_at != "clients":
            return delta
        generator = self.noise_generator(round_idx, UPDATE_SHARE_STREAM, update.client_id)
        std = self.noise_multiplier * self.clip_norm / math.sqrt(self.expected_clients)
        return {k: d + _gaussian(d, std, generator) for k, d in delta.items()}

    def stats_share(self, stats: GMMStats, round_idx: int, client_id: int) -> GMMStats:
        """A client's clipped statistics with, under noise_at=clients, its share of the noise,
        N(0, (z C_s)^2 / the mixture's clients) on every entry."""
        if self.noise_at != "clients":
            return stats
        generator = self.noise_generator(round_idx, STATS_SHARE_STREAM, client_id)
        std = self.noise_multiplier * self.stats_clip_norm / math.sqrt(self.stats_clients)
        return GMMStats(*(t.double() + _gaussian(t, std, generator) for t in (stats.s0, stats.s1, stats.s2)), n=stats.n)

    def _adapt_clip_norm(self, round_idx: int, unclipped: int, n_updates: int, generator: torch.Generator) -> None:
        """The next round's C from the noised share of this round's updates left unclipped."""
        count_noise = torch.randn((), generator=generator, dtype=torch.float64).item() * self.adaptive.count_std
        share = (unclipped - n_updates / 2 + count_noise) / self.expected_clients + 0.5
        self.clipping[round_idx] = (self.clip_norm, share)
        self.clip_norm = self.adaptive.next_clip_norm(self.clip_norm, share)

    def release_sum(self, summed: GMMStats, n_clients: int, round_idx: int) -> GMMStats:
        """The federation's statistics from the sum of ``n_clients`` clients' clipped ones, with
        N(0, (z C_s)^2) on every entry (with noise_at=clients, the shares in the sum already),
        made valid (``valid_stats``); n = the number of clients."""
        if self.noise_at == "clients":
            self.record_release(round_idx, STATS, shares=n_clients)
            return valid_stats(summed.s0, summed.s1, summed.s2, n_clients)
        self.record_release(round_idx, STATS)
        generator = self.noise_generator(round_idx, STATS_NOISE_STREAM)
        std = self.noise_multiplier * self.stats_clip_norm
        s0, s1, s2 = (t + _gaussian(t, std, generator) for t in (summed.s0, summed.s1, summed.s2))
        return valid_stats(s0, s1, s2, n_clients)


class DPFedAvg(Strategy):
    """DP-FedAvg around any strategy: the noised, fixed-weight mean of the clipped updates
    replaces the weighted average, and the wrapped strategy's server update, client penalty,
    federated entries and state apply unchanged."""

    def __init__(self, inner: Strategy, privacy: ClientLevelDP):
        self.inner = inner
        self.privacy = privacy
        self.name = inner.name

    def federated_keys(self, keys: Iterable[str]) -> list[str]:
        return self.inner.federated_keys(keys)

    def local_penalty(self, global_state: dict[str, Tensor]) -> LocalPenalty | None:
        return self.inner.local_penalty(global_state)

    def average(self, global_state: dict[str, Tensor], updates: list[ClientUpdate], round_idx: int) -> dict[str, Tensor]:
        return self.privacy.noised_mean_update(global_state, updates, round_idx, self.federated_keys(global_state))

    def contribution(self, global_state: dict[str, Tensor], update: ClientUpdate, round_idx: int) -> dict[str, Tensor]:
        return self.privacy.update_contribution(global_state, update, round_idx)

    def average_of_sum(
        self, global_state: dict[str, Tensor], total: dict[str, Tensor], weight: float, n_updates: int, round_idx: int
    ) -> dict[str, Tensor]:
        return self.privacy.mean_of_sum(global_state, total, n_updates, round_idx)

    def server_update(self, current: dict[str, Tensor], average: dict[str, Tensor]) -> dict[str, Tensor]:
        return self.inner.server_update(current, average)

    def state_dict(self) -> dict[str, dict[str, Tensor]]:
        """The wrapped strategy's state and, under adaptive clipping, the next round's C."""
        state = self.inner.state_dict()
        if self.privacy.adaptive is not None:
            state[ADAPTIVE_STATE] = {"clip_norm": torch.tensor(self.privacy.clip_norm, dtype=torch.float64)}
        return state

    def load_state_dict(self, state: dict[str, dict[str, Tensor]]) -> None:
        state = dict(state)
        if ADAPTIVE_STATE in state:
            self.privacy.clip_norm = state.pop(ADAPTIVE_STATE)["clip_norm"].item()
        self.inner.load_state_dict(state)


def epsilon(
    noise_multiplier: float, sample_rate: float, rounds: int, stats_releases: int, delta: float, stats_noise_multiplier: float | None = None
) -> float:
    """(epsilon, delta)-DP's epsilon by Opacus's RDP analysis: ``rounds`` sampled Gaussian
    mechanisms (z, q) composed with ``stats_releases`` unsampled ones (z_s, 1; z_s = z unless
    ``stats_noise_multiplier``). RDP composes by addition, so each mechanism's RDP is
    computed once and scaled by its count (what Opacus's ``RDPAccountant`` does with its history)."""
    stats_z = noise_multiplier if stats_noise_multiplier is None else stats_noise_multiplier
    return epsilon_of([((sample_rate, noise_multiplier), rounds), ((1.0, stats_z), stats_releases)], delta)


def epsilon_of(mechanisms: list[tuple[tuple[float, float], int]], delta: float) -> float:
    """epsilon of the composition of Gaussian mechanisms, each ((q, z), how many times)."""
    from opacus.accountants.analysis.rdp import get_privacy_spent

    if sum(count for _, count in mechanisms) == 0:
        return 0.0
    rdp = sum(count * _rdp_of_one_step(q, z) for (q, z), count in mechanisms if count)
    with warnings.catch_warnings():
        # Opacus warns when the best order is at an end of RDP_ORDERS: the epsilon is still
        # a valid bound, only perhaps not the tightest.
        warnings.filterwarnings("ignore", message="Optimal order is the")
        eps, _ = get_privacy_spent(orders=RDP_ORDERS, rdp=rdp, delta=delta)
    return float(eps)


@functools.lru_cache(maxsize=256)
def _rdp_of_one_step(sample_rate: float, noise_multiplier: float) -> np.ndarray:
    """The RDP of one sampled Gaussian mechanism at every order (seconds per call for q < 1)."""
    from opacus.accountants.analysis.rdp import compute_rdp  # imported only with privacy=dp

    return np.asarray(compute_rdp(q=sample_rate, noise_multiplier=noise_multiplier, steps=1, orders=RDP_ORDERS))


@functools.cache
def solve_noise_multiplier(
    target_epsilon: float, sample_rate: float, rounds: int, stats_releases: int, delta: float, stats_noise_multiplier: float | None = None
) -> float:
    """The smallest z (to NOISE_TOLERANCE) with epsilon(z) <= target_epsilon, by bisection:
    epsilon falls as z grows. With a fixed ``stats_noise_multiplier`` the statistics' share
    is spent whatever z: a target it alone exceeds is a ConfigError."""

    def eps(z: float) -> float:
        return epsilon(z, sample_rate, rounds, stats_releases, delta, stats_noise_multiplier)

    if stats_noise_multiplier is not None and (floor := epsilon(1e4, sample_rate, rounds, stats_releases, delta, stats_noise_multiplier)) > target_epsilon:
        raise ConfigError(
            f"privacy.target_epsilon={target_epsilon}: the mixture statistics alone spend {floor:.3g} "
            f"(privacy.stats_noise_multiplier={stats_noise_multiplier}): raise the target or stats_noise_multiplier"
        )
    if eps(MIN_NOISE) <= target_epsilon:
        return MIN_NOISE
    low, high = MIN_NOISE, 1.0
    while eps(high) > target_epsilon:
        low, high = high, 2 * high
        if high > 1e4:
            raise ConfigError(f"privacy.target_epsilon={target_epsilon} needs a noise multiplier above 1e4: raise it or privacy.delta")
    while high - low > NOISE_TOLERANCE:
        middle = (low + high) / 2
        low, high = (low, middle) if eps(middle) <= target_epsilon else (middle, high)
    return high
