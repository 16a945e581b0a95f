"""IID: every attack record goes to a client drawn uniformly at random (equal shares)."""

from __future__ import annotations

import numpy as np

from fdagmm.data.partition.base import Partitioner, split_by_fractions


class IidPartitioner(Partitioner):

    def assign_attacks(self, labels: np.ndarray, normal_label: str, rng: np.random.Generator) -> list[np.ndarray]:
        attacks = rng.permutation(np.flatnonzero(labels != normal_label))
        return split_by_fractions(attacks, np.full(self.num_clients, 1.0 / self.num_clients))
