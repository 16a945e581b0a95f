"""Server optimisers on the averaged update (Reddi et al., "Adaptive Federated Optimization",
ICLR 2021; Hsu et al., 2019 for server momentum), with Flower's parameter names.

The pseudo-gradient of a round is ``average - current``: the step FedAvg would take. Server
state (momentum, moments) is kept in float64 and checkpointed, so ``fed.resume`` stays exact.
"""

from __future__ import annotations

import torch
from torch import Tensor

from fdagmm.errors import ConfigError
from fdagmm.federation.strategies.base import Strategy


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


class FedAvgM(Strategy):
    """Server momentum: v <- server_momentum * v + (current - average);
    theta <- current - server_learning_rate * v (v starts at the first round's pseudo-gradient,
    as in Flower's ``FedAvgM``). With momentum 0 and learning rate 1 it is FedAvg."""

    name = "fedavgm"

    def __init__(self, server_learning_rate: float = 1.0, server_momentum: float = 0.9):
        _require(server_learning_rate > 0, f"strategy.server_learning_rate must be > 0, got {server_learning_rate}")
        _require(0.0 <= server_momentum < 1.0, f"strategy.server_momentum must be in [0, 1), got {server_momentum}")
        self.server_learning_rate = server_learning_rate
        self.server_momentum = server_momentum
        self.momentum: dict[str, Tensor] = {}

    def server_update(self, current: dict[str, Tensor], average: dict[str, Tensor]) -> dict[str, Tensor]:
        new = {}
        for key, theta in current.items():
            gradient = theta.double() - average[key].double()
            v = self.momentum.get(key)
            v = gradient if v is None else self.server_momentum * v + gradient
            self.momentum[key] = v
            new[key] = (theta.double() - self.server_learning_rate * v).to(theta.dtype)
        return new

    def state_dict(self) -> dict[str, dict[str, Tensor]]:
        return {"momentum": dict(self.momentum)}

    def load_state_dict(self, state: dict[str, dict[str, Tensor]]) -> None:
        self.momentum = dict(state.get("momentum", {}))


class FedAdam(Strategy):
    """Adam on the pseudo-gradient delta = average - current (Reddi et al., Algorithm 2):
    m <- beta_1 m + (1 - beta_1) delta; v <- beta_2 v + (1 - beta_2) delta^2;
    theta <- current + eta * m / (sqrt(v) + tau), with m and v starting at 0.

    Unlike Flower's ``FedAdam``, no Adam bias correction of eta: the paper's algorithm has none.
    """

    name = "fedadam"

    def __init__(self, eta: float = 1e-2, beta_1: float = 0.9, beta_2: float = 0.99, tau: float = 1e-3):
        _require(eta > 0, f"strategy.eta must be > 0, got {eta}")
        _require(0.0 <= beta_1 < 1.0, f"strategy.beta_1 must be in [0, 1), got {beta_1}")
        _require(0.0 <= beta_2 < 1.0, f"strategy.beta_2 must be in [0, 1), got {beta_2}")
        _require(tau > 0, f"strategy.tau must be > 0 (it keeps the step finite), got {tau}")
        self.eta, self.beta_1, self.beta_2, self.tau = eta, beta_1, beta_2, tau
        self.m: dict[str, Tensor] = {}
        self.v: dict[str, Tensor] = {}

    def server_update(self, current: dict[str, Tensor], average: dict[str, Tensor]) -> dict[str, Tensor]:
        new = {}
        for key, theta in current.items():
            delta = average[key].double() - theta.double()
            m = self.beta_1 * self.m.get(key, torch.zeros_like(delta)) + (1 - self.beta_1) * delta
            v = self.beta_2 * self.v.get(key, torch.zeros_like(delta)) + (1 - self.beta_2) * delta.square()
            self.m[key], self.v[key] = m, v
            new[key] = (theta.double() + self.eta * m / (v.sqrt() + self.tau)).to(theta.dtype)
        return new

    def state_dict(self) -> dict[str, dict[str, Tensor]]:
        return {"m": dict(self.m), "v": dict(self.v)}

    def load_state_dict(self, state: dict[str, dict[str, Tensor]]) -> None:
        self.m, self.v = dict(state.get("m", {})), dict(state.get("v", {}))
