"""What the server does: federated averaging of client updates (Algorithm 1)."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from fdagmm.client import ClientUpdate


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


def run_fedavg(
    global_net: nn.Module,
    rounds: int,
    client_updates: list[Callable[[int, dict[str, Tensor]], ClientUpdate]],
    on_round_end: Callable[[int, list[ClientUpdate]], None],
) -> nn.Module:
    """theta_{t+1} = sum_k n_k/n ClientUpdate(k, theta_t) for t = 1..rounds; trains ``global_net``.

    ``client_updates[k](round, global_state)`` runs client k's update; ``on_round_end`` sees the
    round's updates after ``global_net`` holds the new average.
    """
    for round_idx in range(1, rounds + 1):
        global_state = {k: v.detach().cpu().clone() for k, v in global_net.state_dict().items()}
        updates = [update(round_idx, global_state) for update in client_updates]
        global_net.load_state_dict(
            fedavg([u.state for u in updates], [u.n_samples for u in updates])
        )
        on_round_end(round_idx, updates)
    return global_net
