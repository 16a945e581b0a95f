"""The in-process backend: every client in this process, the round loop and the evaluation.

Per round: the server samples the clients that train (``rounds.sample_clients``), each
trains from the global weights (``Client.update``), the strategy aggregates the usable
updates (``Strategy.aggregate``; under secure aggregation, the secure sum of their
``Strategy.contribution``s, by the protocol of ``federation.secure_aggregation``). The same
rules and the same strategy objects run in the Flower backend (``federation.flower``); only
the transport differs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from fdagmm.federation.client import Client
from fdagmm.federation.rounds import StatsRelease, aggregate_secure_sum, entering_secure_sum, require_min_clients, unusable_reason
from fdagmm.federation.strategies import ClientUpdate, Strategy
from fdagmm.models.dagmm import DAGMM, GaussianMixture, mixture_from_stats

# Called after each round: (round, usable updates, left-out clients with why, sampled clients).
RoundEnd = Callable[[int, list[ClientUpdate], dict[int, str], list[int]], None]
# Under record-level DP: (round t, theta_{t-1}) -> the released mixture round t trains under.
FrozenMixture = Callable[[int, nn.Module], GaussianMixture | None]


def collect_updates(
    clients: list[Client],
    global_state: dict[str, Tensor],
    round_idx: int,
    min_clients: int,
    frozen_mixture: GaussianMixture | None = None,
    secure: bool = False,
) -> tuple[list[ClientUpdate], dict[int, str]]:
    """Every client's update; a client that raises or returns non-finite weights is left out,
    and under secure aggregation (``secure``) an update alone in its round.

    Returns the usable updates and, per left-out client, why. Raises FederationError when
    fewer than ``min_clients`` updates are usable.
    """
    updates, rejected = [], {}
    for client in clients:
        try:
            update = client.update(global_state, round_idx, frozen_mixture)
        except Exception as e:  # one organisation's failure must not end the federation
            rejected[client.client_id] = f"{type(e).__name__}: {e}"
            continue
        if reason := unusable_reason(update):
            rejected[client.client_id] = reason
            continue
        updates.append(update)
    n_clients = len(clients)
    if secure:
        updates, n_clients = entering_secure_sum(updates, rejected, n_clients)
    require_min_clients(round_idx, len(updates), n_clients, rejected, min_clients)
    return updates, rejected


def run_rounds(
    global_net: nn.Module,
    clients: dict[int, Client],
    strategy: Strategy,
    rounds: int,
    min_clients: int,
    sample: Callable[[list[int], int], list[int]],
    on_round_end: RoundEnd,
    first_round: int = 1,
    frozen_mixture: FrozenMixture | None = None,
    secure: bool = False,
) -> nn.Module:
    """theta_t = strategy.aggregate(theta_{t-1}, ClientUpdate(k, theta_{t-1}) for k in
    ``sample(clients, t)``), for t = first_round..rounds; ``on_round_end`` runs once
    ``global_net`` holds the result. Under record-level DP, ``frozen_mixture(t, theta_{t-1})``
    gives the mixture round t trains under; under secure aggregation (``secure``) the
    strategy sees only the sum of the updates."""
    for round_idx in range(first_round, rounds + 1):
        global_state = {k: v.detach().cpu().clone() for k, v in global_net.state_dict().items()}
        sampled = sample(list(clients), round_idx)
        mixture = None if frozen_mixture is None else frozen_mixture(round_idx, global_net)
        updates, rejected = collect_updates([clients[k] for k in sampled], global_state, round_idx, min_clients, mixture, secure)
        global_net.load_state_dict(
            securely_aggregated(strategy, global_state, updates, round_idx) if secure else strategy.aggregate(global_state, updates, round_idx)
        )
        on_round_end(round_idx, updates, rejected, sampled)
    return global_net


def securely_aggregated(strategy: Strategy, global_state: dict[str, Tensor], updates: list[ClientUpdate], round_idx: int) -> dict[str, Tensor]:
    """theta_t from the secure sum of the clients' contributions, each computed as the client would."""
    from fdagmm.federation.secure_aggregation import secure_tensor_sum  # Flower's cryptography

    total = secure_tensor_sum({u.client_id: strategy.contribution(global_state, u, round_idx) for u in updates}) if updates else None
    return aggregate_secure_sum(strategy, global_state, total, [u.n_samples for u in updates], round_idx)


def released_mixture(net: DAGMM, clients: list[Client], release: StatsRelease, round_idx: int) -> GaussianMixture:
    """The scoring mixture from the statistics ``clients`` share after ``round_idx``, released
    by ``release``: summed, or with differential privacy clipped or noised."""
    stats = [c.gmm_stats(net) if release.privacy is None else c.shared_gmm_stats(net, round_idx) for c in clients]
    return mixture_from_stats(release(stats, round_idx))


def evaluate_global_model(
    net: DAGMM,
    clients: list[Client],
    mixture_clients: list[int],
    eval_client: int,
    anomaly_ratio: float,
    threshold_refs: tuple[str, ...],
    device: torch.device,
    round_idx: int,
    release: StatsRelease = StatsRelease(),
    log_scores_at: int | None = None,
    released: GaussianMixture | None = None,
) -> tuple[GaussianMixture, dict[str, dict[str, float]]]:
    """The scoring mixture from ``mixture_clients``' statistics after ``round_idx`` (released
    by ``release``; ``released``: the one already released for this round), and
    ``eval_client``'s test metrics with it per threshold reference (see ``Client.evaluate``)."""
    net.to(device)
    mixture = released if released is not None else released_mixture(net, [clients[k] for k in mixture_clients], release, round_idx)
    others = (
        [c.train_energies(net, mixture) for c in clients if c.client_id != eval_client]
        if "pooled" in threshold_refs
        else []
    )
    return mixture, clients[eval_client].evaluate(net, mixture, anomaly_ratio, threshold_refs, others, log_scores_at)


def evaluate_every_client(
    net: DAGMM, clients: list[Client], mixture: GaussianMixture | None, anomaly_ratio: float
) -> dict[str, dict[str, float]]:
    """Each client's test metrics (own threshold reference) with ``mixture``, or with its own
    statistics' mixture when ``mixture`` is None (``fed.gmm_stats=local``)."""
    return {
        f"client{c.client_id}": c.evaluate(
            net, mixture or mixture_from_stats(c.gmm_stats(net)), anomaly_ratio, ("own",), []
        )["own"]
        for c in clients
    }

