"""The study's scenarios s1-s4 (spec section 5): a data-poor client 0, a data-rich client 1.

The inliers' groups (KDDCUP99's attack types, which train there) are *common* (smurf, neptune
by default) or *rare* (all others). Client k holds ``common_fractions[k]`` of every common
group and ``rare_fractions[k]`` of every rare group, drawn at random within each group.
Longer fraction lists make more clients. On a data set whose benign traffic trains, name its
benign label as the common group (``partition.common_attacks=[normal]``) for a data-poor site.
"""

from __future__ import annotations

import math
from typing import Annotated

import numpy as np

from fdagmm.data.partition.base import Partitioner, check, groups_among, split_by_fractions
from fdagmm.errors import DataError
from fdagmm.ranges import FRACTION, checked_arguments


class StudyScenario(Partitioner):
    too_small_fix = "raise its fractions in the scenario config"

    @checked_arguments("partition")
    def __init__(
        self,
        name: str,
        common_fractions: Annotated[list[float], FRACTION],
        rare_fractions: Annotated[list[float], FRACTION],
        common_attacks: list[str] = ("smurf", "neptune"),
        train_fraction: float = 0.5,
        min_partition_size: int = 1,
    ):
        n = len(common_fractions)
        check(n >= 1, "partition.common_fractions must list one fraction per client")
        check(
            len(rare_fractions) == n,
            f"partition.common_fractions has {n} clients but partition.rare_fractions has "
            f"{len(rare_fractions)}: give one fraction per client in both",
        )
        for key, fractions in (("common_fractions", common_fractions), ("rare_fractions", rare_fractions)):
            check(
                math.isclose(sum(fractions), 1.0, abs_tol=1e-9),
                f"partition.{key} must sum to 1 (every record goes to exactly one client), got {list(fractions)}",
            )
        super().__init__(name, n, train_fraction, min_partition_size)
        self.common_fractions = list(common_fractions)
        self.rare_fractions = list(rare_fractions)
        self.common_attacks = list(common_attacks)

    def assign_inliers(self, groups: np.ndarray, inlier: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
        present = groups_among(groups, inlier)
        unknown = sorted(set(self.common_attacks) - set(present))
        if unknown:
            raise DataError(f"partition.common_attacks: {unknown} never occur among the records that train; they hold {present}")
        parts: list[list[np.ndarray]] = [[np.zeros(0, dtype=np.int64)] for _ in range(self.num_clients)]
        for group in present:
            fractions = self.common_fractions if group in self.common_attacks else self.rare_fractions
            rows = rng.permutation(np.flatnonzero(inlier & (groups == group)))
            for k, part in enumerate(split_by_fractions(rows, fractions)):
                parts[k].append(part)
        return [np.concatenate(p) for p in parts]
