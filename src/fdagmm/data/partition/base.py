"""What every partition scheme shares: the client split, normals and train/test per client.

Everything comes from one generator seeded by ``seed``: same seed, same partition.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Annotated

import numpy as np

from fdagmm.errors import ConfigError, DataError
from fdagmm.ranges import AT_LEAST_1, OPEN_FRACTION, checked_arguments


@dataclass(frozen=True)
class ClientSplit:
    """Row indices (into the loaded frame) of one client's training and test records."""

    client_id: int
    train_idx: np.ndarray
    test_idx: np.ndarray


def check(condition: bool, message: str) -> None:
    """A partitioner's impossible setting, as a one-line ConfigError."""
    if not condition:
        raise ConfigError(message)


class Partitioner(ABC):
    """Splits labelled records into ``num_clients`` clients (attacks train, normals test).

    Subclasses decide which client holds each attack record (``assign_attacks``). Then the
    normal records are split at random in proportion to the clients' attack counts, and per
    client a random ``floor(train_fraction * attacks)`` of its attacks is its training set;
    the rest of its attacks and all of its normal records are its test set.
    """

    # How to fix a client left with fewer than min_partition_size training records.
    too_small_fix = "use fewer clients"

    @checked_arguments("partition")
    def __init__(
        self,
        name: str,
        num_clients: Annotated[int, AT_LEAST_1],
        train_fraction: Annotated[float, OPEN_FRACTION] = 0.5,
        min_partition_size: Annotated[int, AT_LEAST_1] = 1,
    ):
        self.name = name  # names run dirs and reports
        self.num_clients = num_clients
        self.train_fraction = train_fraction
        self.min_partition_size = min_partition_size

    @abstractmethod
    def assign_attacks(self, labels: np.ndarray, normal_label: str, rng: np.random.Generator) -> list[np.ndarray]:
        """Row indices of the attack records each client holds."""

    def split(self, labels: np.ndarray, normal_label: str, seed: int) -> list[ClientSplit]:
        """The clients' splits; a DataError when a client would hold fewer than
        ``min_partition_size`` training records or no test record."""
        rng = np.random.default_rng(seed)
        client_attacks = self.assign_attacks(labels, normal_label, rng)
        counts = np.array([len(a) for a in client_attacks], dtype=np.float64)
        normals = rng.permutation(np.flatnonzero(labels == normal_label))
        client_normals = split_by_fractions(normals, counts / max(counts.sum(), 1.0))
        splits = []
        for k in range(self.num_clients):
            rows = rng.permutation(client_attacks[k])
            n_train = int(np.floor(self.train_fraction * len(rows)))
            splits.append(ClientSplit(k, rows[:n_train], np.concatenate([rows[n_train:], client_normals[k]])))
        for s in splits:
            if len(s.train_idx) < self.min_partition_size or len(s.test_idx) == 0:
                raise DataError(
                    f"partition {self.name} leaves client {s.client_id} with {len(s.train_idx)} training "
                    f"and {len(s.test_idx)} test records (partition.min_partition_size={self.min_partition_size}): "
                    f"{self.too_small_fix}"
                )
        return splits


def attack_types(labels: np.ndarray, normal_label: str) -> list[str]:
    """The attack types present, sorted so that the draws do not depend on the file's order."""
    return sorted(set(labels.tolist()) - {normal_label})


def split_by_fractions(rows: np.ndarray, fractions) -> list[np.ndarray]:
    """Cut ``rows`` into consecutive parts holding round(fraction * len) rows each (exact cover)."""
    cuts = np.rint(np.cumsum(fractions) * len(rows)).astype(int)
    cuts[-1] = len(rows)
    return np.split(rows, cuts[:-1])
