"""The strategy interface, and FedAvg, which every other strategy refines.

A strategy has a server side (``aggregate``: the next global weights from the round's
usable updates, with any server state it keeps, checkpointed through ``state_dict``) and a
client side (``federated_keys``: which state-dict entries leave a client; ``local_penalty``:
a term added to a client's local objective). Under secure aggregation a client sends its
``contribution`` instead of its weights, and the server sees only their sum
(``aggregate_sum``). The backends only move tensors between the two.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from torch import Tensor, nn

# A term added to a client's local objective, computed from its network (FedProx).
LocalPenalty = Callable[[nn.Module], Tensor]


@dataclass
class ClientUpdate:
    client_id: int
    state: dict[str, Tensor]  # the federated entries of the locally trained weights, on the CPU
    n_samples: int  # n_k, the FedAvg weight
    train_loss: float  # mean loss over the round's local steps


def fedavg(states: list[dict[str, Tensor]], weights: list[float]) -> dict[str, Tensor]:
    """sum_k (w_k / sum w) * state_k, key by key, accumulated in float64."""
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


class Strategy:
    """The base of every strategy, with FedAvg's behaviour (see ``FedAvg``).

    Subclasses override ``server_update`` (a server optimiser), ``local_penalty`` (a client
    objective term) or ``federated_keys`` (personalisation).
    """

    name = "fedavg"

    def federated_keys(self, keys: Iterable[str]) -> list[str]:
        """The state-dict entries a client sends and the server averages."""
        return list(keys)

    def local_penalty(self, global_state: dict[str, Tensor]) -> LocalPenalty | None:
        """A term added to each client's local objective in a round that starts from ``global_state``."""
        return None

    def aggregate(self, global_state: dict[str, Tensor], updates: list[ClientUpdate], round_idx: int) -> dict[str, Tensor]:
        """The next global state after ``round_idx``: the average of the updates' entries,
        through ``server_update``; entries the clients do not send keep their global value."""
        return self._adopt(global_state, self.average(global_state, updates, round_idx))

    def aggregate_sum(
        self, global_state: dict[str, Tensor], total: dict[str, Tensor], weight: float, n_updates: int, round_idx: int
    ) -> dict[str, Tensor]:
        """``aggregate`` from the secure sum of ``n_updates`` updates' ``contribution``s
        (``privacy.secure_aggregation``), ``weight`` the sum of their n_k."""
        return self._adopt(global_state, self.average_of_sum(global_state, total, weight, n_updates, round_idx))

    def _adopt(self, global_state: dict[str, Tensor], average: dict[str, Tensor]) -> dict[str, Tensor]:
        return {**global_state, **self.server_update({k: global_state[k] for k in average}, average)}

    def average(self, global_state: dict[str, Tensor], updates: list[ClientUpdate], round_idx: int) -> dict[str, Tensor]:
        """The weighted average sum_k n_k / n theta_k (DP-FedAvg replaces it)."""
        return fedavg([u.state for u in updates], [u.n_samples for u in updates])

    def contribution(self, global_state: dict[str, Tensor], update: ClientUpdate, round_idx: int) -> dict[str, Tensor]:
        """What a client adds to the round's secure sum, computed where the client is: its
        update n_k (theta_k - theta) over the entries it sends, in float64."""
        return {k: update.n_samples * (v.double() - global_state[k].double()) for k, v in update.state.items()}

    def average_of_sum(
        self, global_state: dict[str, Tensor], total: dict[str, Tensor], weight: float, n_updates: int, round_idx: int
    ) -> dict[str, Tensor]:
        """The weighted average from the sum of the contributions: theta + total / sum n_k."""
        return {k: (global_state[k].double() + t / weight).to(global_state[k].dtype) for k, t in total.items()}

    def server_update(self, current: dict[str, Tensor], average: dict[str, Tensor]) -> dict[str, Tensor]:
        """FedAvg adopts the average as it is."""
        return average

    def state_dict(self) -> dict[str, dict[str, Tensor]]:
        """Server state that a round checkpoint must keep (none for FedAvg)."""
        return {}

    def load_state_dict(self, state: dict[str, dict[str, Tensor]]) -> None:
        if state:
            raise ValueError(f"{self.name} keeps no server state, got {sorted(state)}")


class FedAvg(Strategy):
    """FedAvg (McMahan et al., 2017): theta_{t+1} = sum_k n_k / n theta_k. Every entry of
    DAGMM's state dict is a weight or a bias, so every entry is federated."""
