"""FedProx (Li et al., "Federated Optimization in Heterogeneous Networks", MLSys 2020):
each client minimises its objective plus (proximal_mu / 2) ||w - w_global||^2, which keeps
its local weights near the round's global weights; the server averages as FedAvg does."""

from __future__ import annotations

from torch import Tensor, nn

from fdagmm.errors import ConfigError
from fdagmm.federation.strategies.base import LocalPenalty, Strategy


class FedProx(Strategy):
    name = "fedprox"

    def __init__(self, proximal_mu: float = 0.01):
        if proximal_mu < 0:
            raise ConfigError(f"strategy.proximal_mu must be >= 0, got {proximal_mu}")
        self.proximal_mu = proximal_mu

    def local_penalty(self, global_state: dict[str, Tensor]) -> LocalPenalty | None:
        if self.proximal_mu == 0:
            return None
        anchors = {k: v.detach().clone() for k, v in global_state.items()}

        def proximal_term(net: nn.Module) -> Tensor:
            terms = [(p - anchors[name].to(p.device)).square().sum() for name, p in net.named_parameters()]
            return 0.5 * self.proximal_mu * sum(terms)

        return proximal_term
