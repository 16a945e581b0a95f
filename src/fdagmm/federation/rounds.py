"""Round rules that both backends apply: which clients train, which updates count, what a
round records, and which clients' statistics form the scoring mixture."""

from __future__ import annotations

import logging
import math
import secrets
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from fdagmm.errors import FdagmmError
from fdagmm.federation.privacy import ClientLevelDP
from fdagmm.federation.record_privacy import RecordLevelDP
from fdagmm.federation.strategies import ClientUpdate, Strategy
from fdagmm.models.dagmm import GMMStats
from fdagmm.seeding import SAMPLING_STREAM, derive_seed

log = logging.getLogger(__name__)


class FederationError(FdagmmError):
    """A round in which too few clients returned a usable update, or a backend that failed."""


def sample_clients(
    train_clients: list[int], clients_per_round: int | None, seed: int, round_idx: int, private: bool = False, secret: bool = False
) -> list[int]:
    """The clients that train in ``round_idx``: all of them, or ``clients_per_round`` drawn
    without replacement from a generator seeded by (seed, round) alone, so that a resumed run
    and the Flower backend draw the same clients. Under differential privacy (``private``),
    Poisson sampling instead, as its accountant assumes: each client independently with
    probability clients_per_round / training clients, so a round may have none, or more;
    ``secret``: from the secure source, as the analysis needs a choice nobody can predict."""
    if clients_per_round is None or clients_per_round >= len(train_clients):
        return list(train_clients)
    rng = np.random.default_rng(secrets.randbits(128) if secret else derive_seed(seed, round_idx, 0, SAMPLING_STREAM))
    if private:
        return [k for k, u in zip(train_clients, rng.random(len(train_clients))) if u < clients_per_round / len(train_clients)]
    return sorted(int(k) for k in rng.choice(train_clients, size=clients_per_round, replace=False))


def unusable_reason(update: ClientUpdate) -> str | None:
    """Why an update must be left out of the average (non-finite weights), or None."""
    bad = [k for k, v in update.state.items() if not torch.isfinite(v).all()]
    return f"non-finite weights in {', '.join(bad)}" if bad else None


def require_min_clients(round_idx: int, n_usable: int, n_clients: int, rejected: dict[int, str], min_clients: int) -> None:
    """Raise FederationError when a round has fewer than ``min_clients`` usable updates (or,
    when Poisson sampling chose fewer, than the ``n_clients`` it chose)."""
    for client_id, why in rejected.items():
        log.warning("round %d: client %d is left out: %s", round_idx, client_id, why)
    if n_usable < min(min_clients, n_clients):
        reasons = "; ".join(f"client {k}: {why}" for k, why in rejected.items())
        raise FederationError(
            f"round {round_idx}: only {n_usable} of {n_clients} clients returned a usable "
            f"update, fed.min_clients={min_clients} ({reasons})"
        )


def round_record(
    updates: list[ClientUpdate], rejected: dict[int, str], sampled: list[int], n_train_clients: int, secure: bool = False
) -> tuple[dict[str, float], dict[str, object]]:
    """A round's training losses per client (those sent: none under record-level DP, nor
    under secure aggregation, where the server learns sums only) and the extra entries of
    its history record: the sampled clients (when not every client trains) and the clients
    left out, with why."""
    losses = {} if secure else {f"client{u.client_id}": u.train_loss for u in updates if not math.isnan(u.train_loss)}
    extra: dict[str, object] = {}
    if len(sampled) < n_train_clients:
        extra["sampled_clients"] = list(sampled)
    if rejected:
        extra["excluded_clients"] = {str(k): why for k, why in rejected.items()}
    return losses, extra


def mixture_clients(gmm_stats: str, eval_client: int, train_clients: list[int]) -> list[int]:
    """Whose statistics form the scoring mixture: every training client's (``global``) or
    the evaluated client's own (``local``)."""
    return [eval_client] if gmm_stats == "local" else list(train_clients)


def stats_vector(stats: GMMStats) -> dict[str, Tensor]:
    """A client's statistics as the tensors of a secure sum."""
    return {"s0": stats.s0.double(), "s1": stats.s1.double(), "s2": stats.s2.double(), "n": torch.tensor(float(stats.n), dtype=torch.float64)}


def stats_of_vector(tensors: dict[str, Tensor]) -> GMMStats:
    return GMMStats(s0=tensors["s0"], s1=tensors["s1"], s2=tensors["s2"], n=round(tensors["n"].item()))


@dataclass(frozen=True)
class StatsRelease:
    """How the mixture statistics the clients send after a round become the federation's:
    summed (by the secure-aggregation protocol under ``secure``), then under client-level DP
    noised (the clients' clipped contributions), under record-level DP made valid (their
    noised statistics)."""

    privacy: ClientLevelDP | RecordLevelDP | None = None
    secure: bool = False

    def __call__(self, stats: list[GMMStats], round_idx: int) -> GMMStats:
        if self.secure:
            from fdagmm.federation.secure_aggregation import secure_tensor_sum  # Flower's cryptography

            summed = stats_of_vector(secure_tensor_sum({k: stats_vector(s) for k, s in enumerate(stats)}))
        else:
            summed = sum(stats[1:], stats[0])
        return self.of_sum(summed, len(stats), round_idx)

    def of_sum(self, summed: GMMStats, n_clients: int, round_idx: int) -> GMMStats:
        """The release from the sum of ``n_clients`` clients' statistics."""
        return summed if self.privacy is None else self.privacy.release_sum(summed, n_clients, round_idx)


def aggregate_secure_sum(
    strategy: Strategy, global_state: dict[str, Tensor], total: dict[str, Tensor] | None, weights: list[int], round_idx: int
) -> dict[str, Tensor]:
    """theta_t from the secure sum of the ``contribution``s of updates of weights n_k ``weights``
    (``total``; None when no update entered the sum: a sum of zeros)."""
    if total is None:
        total = {k: torch.zeros_like(global_state[k], dtype=torch.float64) for k in sorted(strategy.federated_keys(global_state))}
    return strategy.aggregate_sum(global_state, total, float(sum(weights)), len(weights), round_idx)


def entering_secure_sum(updates: list[ClientUpdate], rejected: dict[int, str], n_sampled: int) -> tuple[list[ClientUpdate], int]:
    """Under secure aggregation, the updates that enter the round's sum, and the sampled
    clients the round's ``require_min_clients`` counts: none enter when one alone would,
    since the sum would be that update (it joins ``rejected``, with why); a round whose
    Poisson sampling chose one client is then a round without update, like one that chose none."""
    if len(updates) != 1:
        return updates, n_sampled
    rejected[updates[0].client_id] = "the only update of its round: a secure sum of one would reveal it"
    return [], 0 if n_sampled == 1 else n_sampled
