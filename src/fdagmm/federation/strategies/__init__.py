"""Federated strategies: what the server does with the clients' updates and what a client adds
to its local training. One class each, built from ``conf/strategy/<name>.yaml`` and called
unchanged by the in-process round loop and by the Flower apps.

- ``FedAvg``: the weighted average of the updates (the study's FDAGMM).
- ``FedAvgM``, ``FedAdam``: a server optimiser on the averaged update (Reddi et al., 2021).
- ``FedProx``: a proximal term in each client's local objective (Li et al., 2020).
- ``FedPer``: some layers stay with each client across rounds (Arivazhagan et al., 2019).
"""

from fdagmm.federation.strategies.base import ClientUpdate, FedAvg, Strategy, fedavg
from fdagmm.federation.strategies.fedopt import FedAdam, FedAvgM
from fdagmm.federation.strategies.fedper import FedPer
from fdagmm.federation.strategies.fedprox import FedProx

__all__ = ["ClientUpdate", "FedAdam", "FedAvg", "FedAvgM", "FedPer", "FedProx", "Strategy", "fedavg"]
