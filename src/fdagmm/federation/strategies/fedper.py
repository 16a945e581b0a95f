"""FedPer (Arivazhagan et al., 2019; Flower's ``fedper`` baseline): the layers named in
``personal_layers`` never leave a client. Each client keeps its own copy across rounds
(checkpointed in process, in ``context.state`` with Flower) and trains it with the federated
layers it receives; the server averages only the federated layers. A client is evaluated
with its own personal layers on top of the global ones."""

from __future__ import annotations

from collections.abc import Iterable

from fdagmm.errors import ConfigError
from fdagmm.federation.strategies.base import Strategy


class FedPer(Strategy):
    name = "fedper"

    def __init__(self, personal_layers: Iterable[str] = ("estimation",)):
        self.personal_layers = tuple(personal_layers)
        if not self.personal_layers:
            raise ConfigError("strategy.personal_layers is empty: name at least one layer (e.g. [estimation]) or use strategy=fedavg")

    def is_personal(self, key: str) -> bool:
        return any(key == p or key.startswith(p + ".") for p in self.personal_layers)

    def federated_keys(self, keys: Iterable[str]) -> list[str]:
        keys = list(keys)
        personal = [k for k in keys if self.is_personal(k)]
        unknown = [p for p in self.personal_layers if not any(k == p or k.startswith(p + ".") for k in personal)]
        if unknown:
            raise ConfigError(f"strategy.personal_layers {unknown} name no layer of the model; its layers are {sorted({k.split('.')[0] for k in keys})}")
        if len(personal) == len(keys):
            raise ConfigError("strategy.personal_layers keeps every layer local: nothing would be federated")
        return [k for k in keys if not self.is_personal(k)]
