"""Non-IID by group (label): each group's inlier records are split over the clients in proportions
drawn from a symmetric Dirichlet(alpha) (Hsu et al., 2019; Flower Datasets'
``DirichletPartitioner`` with ``partition_by`` the label). Small alpha: each client sees few
groups (KDDCUP99's attack types); large alpha: close to IID.

Implemented with numpy rather than flwr-datasets: the core must not depend on the flower
extra, and flwr-datasets partitions Hugging Face datasets, not row indices. Like Flower's,
it redraws every type's proportions (up to ``max_tries`` times) while a client would hold
fewer than ``min_partition_size`` training records. A data set whose
inliers are one group (benign traffic) gets quantity skew: Dirichlet(alpha) shares of it.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np

from fdagmm.data.partition.base import ClientSplit, Partitioner, dirichlet_by_group
from fdagmm.errors import DataError
from fdagmm.ranges import AT_LEAST_1, POSITIVE, checked_arguments
from fdagmm.seeding import derive_seed


class DirichletPartitioner(Partitioner):
    too_small_fix = "raise partition.alpha, lower partition.num_clients or lower partition.min_partition_size"

    @checked_arguments("partition")
    def __init__(
        self,
        name: str,
        num_clients: int,
        alpha: Annotated[float, POSITIVE],
        train_fraction: float = 0.5,
        min_partition_size: int = 10,
        max_tries: Annotated[int, AT_LEAST_1] = 10,
        attack_alpha: float | None = None,
    ):
        super().__init__(name, num_clients, train_fraction, min_partition_size, attack_alpha)
        self.alpha = alpha
        self.max_tries = max_tries

    def assign_inliers(self, groups: np.ndarray, inlier: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
        return dirichlet_by_group(groups, inlier, self.num_clients, self.alpha, rng)

    def split(self, groups: np.ndarray, is_anomaly: np.ndarray, seed: int, all_train: bool = False) -> list[ClientSplit]:
        for attempt in range(self.max_tries):
            try:
                # Each try is its own seeded draw: the result depends only on (seed, attempt).
                return super().split(groups, is_anomaly, seed if attempt == 0 else derive_seed(seed, attempt), all_train)
            except DataError as e:
                last = e
        raise DataError(f"{last} (after {self.max_tries} draws)")
