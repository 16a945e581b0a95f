"""IID: every inlier record goes to a client drawn uniformly at random (equal shares)."""

from __future__ import annotations

import numpy as np

from fdagmm.data.partition.base import Partitioner, split_by_fractions


class IidPartitioner(Partitioner):

    def assign_inliers(self, groups: np.ndarray, inlier: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
        rows = rng.permutation(np.flatnonzero(inlier))
        return split_by_fractions(rows, np.full(self.num_clients, 1.0 / self.num_clients))
