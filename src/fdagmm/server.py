"""What the server does: federated averaging (Algorithm 1) and the federation's mixture."""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from torch import Tensor, nn

from fdagmm.client import Client, ClientUpdate
from fdagmm.dagmm import DAGMM, GaussianMixture, mixture_from_stats
from fdagmm.errors import FdagmmError

log = logging.getLogger(__name__)


class FederationError(FdagmmError):
    """A round in which too few clients returned a usable update."""


def fedavg(states: list[dict[str, Tensor]], weights: list[float]) -> dict[str, Tensor]:
    """sum_k (w_k / sum w) * state_k, key by key, accumulated in float64.

    Every entry of DAGMM's state dict is a weight or bias, so every entry is federated.
    """
    if not states:
        raise ValueError("fedavg needs at least one client state")
    keys = states[0].keys()
    if any(s.keys() != keys for s in states):
        raise ValueError("client states have different keys: the clients run different models")
    total = float(sum(weights))
    return {
        key: sum(w / total * s[key].double() for s, w in zip(states, weights)).to(states[0][key].dtype)
        for key in keys
    }


def unusable_reason(update: ClientUpdate) -> str | None:
    """Why an update must be left out of the average (non-finite weights), or None."""
    bad = [k for k, v in update.state.items() if not torch.isfinite(v).all()]
    return f"non-finite weights in {', '.join(bad)}" if bad else None


def require_min_clients(round_idx: int, n_usable: int, n_clients: int, rejected: dict[int, str], min_clients: int) -> None:
    """Raise FederationError when a round has fewer than ``min_clients`` usable updates."""
    for client_id, why in rejected.items():
        log.warning("round %d: client %d is left out: %s", round_idx, client_id, why)
    if n_usable < min_clients:
        reasons = "; ".join(f"client {k}: {why}" for k, why in rejected.items())
        raise FederationError(
            f"round {round_idx}: only {n_usable} of {n_clients} clients returned a usable "
            f"update, fed.min_clients={min_clients} ({reasons})"
        )


def collect_updates(
    clients: list[Client], global_state: dict[str, Tensor], round_idx: int, min_clients: int
) -> tuple[list[ClientUpdate], dict[int, str]]:
    """Every client's update; a client that raises or returns non-finite weights is left out.

    Returns the usable updates and, per left-out client, why. Raises FederationError when
    fewer than ``min_clients`` updates are usable.
    """
    updates, rejected = [], {}
    for client in clients:
        try:
            update = client.update(global_state, round_idx)
        except Exception as e:  # one organisation's failure must not end the federation
            rejected[client.client_id] = f"{type(e).__name__}: {e}"
            continue
        if reason := unusable_reason(update):
            rejected[client.client_id] = reason
            continue
        updates.append(update)
    require_min_clients(round_idx, len(updates), len(clients), rejected, min_clients)
    return updates, rejected


def run_fedavg(
    global_net: nn.Module,
    clients: list[Client],
    rounds: int,
    min_clients: int,
    on_round_end: Callable[[int, list[ClientUpdate], dict[int, str]], None],
    first_round: int = 1,
) -> nn.Module:
    """theta_{t+1} = sum_k n_k/n ClientUpdate(k, theta_t) for t = first_round..rounds.

    ``on_round_end(round, updates, rejected)`` runs once ``global_net`` holds the round's average.
    """
    for round_idx in range(first_round, rounds + 1):
        global_state = {k: v.detach().cpu().clone() for k, v in global_net.state_dict().items()}
        updates, rejected = collect_updates(clients, global_state, round_idx, min_clients)
        global_net.load_state_dict(fedavg([u.state for u in updates], [u.n_samples for u in updates]))
        on_round_end(round_idx, updates, rejected)
    return global_net


def evaluate_global_model(
    net: DAGMM,
    clients: list[Client],
    mixture_clients: list[int],
    eval_client: int,
    anomaly_ratio: float,
    threshold_refs: tuple[str, ...],
    device: torch.device,
    log_scores_at: int | None = None,
) -> tuple[GaussianMixture, dict[str, dict[str, float]]]:
    """The scoring mixture from ``mixture_clients``' summed statistics, and ``eval_client``'s
    test metrics with it per threshold reference (see ``Client.evaluate``)."""
    net.to(device)
    stats = [clients[k].gmm_stats(net) for k in mixture_clients]
    mixture = mixture_from_stats(sum(stats[1:], stats[0]))
    others = (
        [c.train_energies(net, mixture) for c in clients if c.client_id != eval_client]
        if "pooled" in threshold_refs
        else []
    )
    return mixture, clients[eval_client].evaluate(net, mixture, anomaly_ratio, threshold_refs, others, log_scores_at)
