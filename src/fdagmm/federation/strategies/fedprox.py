"""FedProx (Li et al., "Federated Optimization in Heterogeneous Networks", MLSys 2020):
each client minimises its objective plus (proximal_mu / 2) ||w - w_global||^2, which keeps
its local weights near the round's global weights; the server averages as FedAvg does."""

from __future__ import annotations

from typing import Annotated

from torch import Tensor, nn

from fdagmm.federation.strategies.base import LocalPenalty, Strategy
from fdagmm.ranges import AT_LEAST_0, checked_arguments


class FedProx(Strategy):
    name = "fedprox"

    @checked_arguments("strategy")
    def __init__(self, proximal_mu: Annotated[float, AT_LEAST_0] = 0.01):
        self.proximal_mu = proximal_mu

    def local_penalty(self, global_state: dict[str, Tensor]) -> LocalPenalty | None:
        if self.proximal_mu == 0:
            return None
        anchors = {k: v.detach().clone() for k, v in global_state.items()}

        def proximal_term(net: nn.Module) -> Tensor:
            # Moved to the network's device once: a step recorded as a CUDA graph copies nothing.
            for name, p in net.named_parameters():
                anchors[name] = anchors[name].to(p.device)
            terms = [(p - anchors[name]).square().sum() for name, p in net.named_parameters()]
            return 0.5 * self.proximal_mu * sum(terms)

        return proximal_term
