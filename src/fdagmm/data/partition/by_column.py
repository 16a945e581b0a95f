"""Natural clients: the values of a column (a site, a network, a sensor, a day) are the
clients, as Flower Datasets' ``NaturalIdPartitioner`` does; with ``top_n`` only the N most
frequent values are kept (client 0 the most frequent; ties by value), and the records of
the others are left out.

A client holds every record with its value: its inliers, of which a random
``train_fraction`` trains, and its own anomalies, which test with the rest of its inliers
(with a test set of the data set's own, every inlier trains and every client tests on it).
"""

from __future__ import annotations

from typing import Annotated

import numpy as np

from fdagmm.data.partition.base import ClientSplit, Partitioner
from fdagmm.errors import ConfigError
from fdagmm.ranges import AT_LEAST_1, checked_arguments


class ByColumnPartitioner(Partitioner):
    too_small_fix = "keep fewer values (partition.top_n) or lower partition.min_partition_size"

    @checked_arguments("partition")
    def __init__(
        self,
        name: str,
        column: str | None,
        top_n: Annotated[int, AT_LEAST_1] | None = None,
        train_fraction: float = 0.5,
        min_partition_size: int = 1,
    ):
        super().__init__(name, top_n or 1, train_fraction, min_partition_size)
        if not column:
            raise ConfigError("partition=by_column needs the column whose values are the clients: partition.column=NAME")
        self.column = self.group_column = column
        # None: every value is a client; the driver (``run.experiment.train``) counts them and
        # sets partition.top_n before the run, so that the config knows its clients.
        self.num_clients = top_n
        self.values: list[str] = []  # the clients' values, client 0's first, once split

    def split(self, groups: np.ndarray, is_anomaly: np.ndarray, seed: int, all_train: bool = False) -> list[ClientSplit]:
        """``groups``: each record's value of the column."""
        self.values = largest_values(groups, self.num_clients, self.column)
        return super().split(groups, is_anomaly, seed, all_train)

    def assign_inliers(self, groups: np.ndarray, inlier: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
        return [np.flatnonzero(inlier & (groups == value)) for value in self.values]

    def assign_anomalies(
        self, groups: np.ndarray, is_anomaly: np.ndarray, client_inliers: list[np.ndarray], rng: np.random.Generator
    ) -> list[np.ndarray]:
        """Each client's own anomalies: the records of its value."""
        return [rng.permutation(np.flatnonzero(is_anomaly & (groups == value))) for value in self.values]


def largest_values(groups: np.ndarray, n: int | None, column: str) -> list[str]:
    """The ``n`` most frequent values of ``groups`` (ties: by value); None: every value."""
    values, counts = np.unique(groups.astype(str), return_counts=True)
    if n is not None and len(values) < n:
        raise ConfigError(f"partition.top_n={n}: column {column!r} holds only {len(values)} values: keep at most {len(values)}")
    order = sorted(range(len(values)), key=lambda i: (-counts[i], values[i]))
    return [str(values[i]) for i in order[: len(values) if n is None else n]]
