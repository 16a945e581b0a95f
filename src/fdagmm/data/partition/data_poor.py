"""A data-poor site among data-rich ones, for any data set: client 0 holds ``poor_fraction`` of
the inliers (the records that train), drawn at random; ``other_sites`` clients share the rest
equally. The study's scenarios do the same by KDDCUP99's attack types; this one needs no label
names, so it serves data sets whose benign traffic trains."""

from __future__ import annotations

from typing import Annotated

import numpy as np

from fdagmm.data.partition.base import Partitioner, split_by_fractions
from fdagmm.ranges import AT_LEAST_1, OPEN_FRACTION, checked_arguments


class DataPoorSite(Partitioner):
    too_small_fix = "raise partition.poor_fraction"

    @checked_arguments("partition")
    def __init__(
        self,
        name: str,
        poor_fraction: Annotated[float, OPEN_FRACTION],
        other_sites: Annotated[int, AT_LEAST_1] = 1,
        train_fraction: float = 0.5,
        min_partition_size: int = 1,
    ):
        super().__init__(name, 1 + other_sites, train_fraction, min_partition_size)
        self.poor_fraction = poor_fraction

    def assign_inliers(self, groups: np.ndarray, inlier: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
        rows = rng.permutation(np.flatnonzero(inlier))
        rich = (1.0 - self.poor_fraction) / (self.num_clients - 1)
        return split_by_fractions(rows, [self.poor_fraction, *[rich] * (self.num_clients - 1)])
