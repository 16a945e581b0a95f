"""Server optimisers on the averaged update (Reddi et al., "Adaptive Federated Optimization",
ICLR 2021; Hsu et al., 2019 for server momentum), with Flower's parameter names.

The pseudo-gradient of a round is ``average - current``: the step FedAvg would take. Server
state (momentum, moments) is kept in float64 and checkpointed, so ``fed.resume`` stays exact.
"""

from __future__ import annotations

from typing import Annotated

import torch
from torch import Tensor

from fdagmm.federation.strategies.base import Strategy
from fdagmm.ranges import BELOW_1, POSITIVE, checked_arguments


class FedAvgM(Strategy):
    """Server momentum: v <- server_momentum * v + (current - average);
    theta <- current - server_learning_rate * v (v starts at the first round's pseudo-gradient,
    as in Flower's ``FedAvgM``). With momentum 0 and learning rate 1 it is FedAvg."""

    name = "fedavgm"

    @checked_arguments("strategy")
    def __init__(self, server_learning_rate: Annotated[float, POSITIVE] = 1.0, server_momentum: Annotated[float, BELOW_1] = 0.9):
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

    @checked_arguments("strategy")
    def __init__(
        self,
        eta: Annotated[float, POSITIVE] = 1e-2,
        beta_1: Annotated[float, BELOW_1] = 0.9,
        beta_2: Annotated[float, BELOW_1] = 0.99,
        tau: Annotated[float, POSITIVE] = 1e-3,  # keeps the step finite where the second moment is ~0
    ):
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
