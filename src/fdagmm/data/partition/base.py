"""What every partition scheme shares: the client split, anomalies and train/test per client.

A scheme splits the *inliers* (the records of the class that trains: benign traffic, or the
attacks under KDDCUP99's ``anomaly: normal`` convention) by their group (their label). Every
draw comes from one generator seeded by ``seed``: same seed, same partition.

With ``attack_alpha`` (IID and Dirichlet schemes, data sets whose benign traffic trains) each
organisation sees its own attacks: every attack family's records are dealt over the clients in
Dirichlet(attack_alpha) proportions, the attacks of the training file's test share or, where
the data set has a test set of its own, the attacks of that test set (``deal_test_pool``),
whose benign records are dealt in proportion to the clients' training sizes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Annotated

import numpy as np

from fdagmm.errors import ConfigError, DataError
from fdagmm.ranges import AT_LEAST_1, OPEN_FRACTION, POSITIVE, checked_arguments
from fdagmm.seeding import TEST_POOL_STREAM, derive_seed


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
    """Splits records into ``num_clients`` clients (inliers train, anomalies test).

    Subclasses decide which client holds each inlier record (``assign_inliers``). Then, when
    the data set has no test set of its own, the anomalies are split (``assign_anomalies``: at
    random in proportion to the clients' inlier counts, unless a scheme decides), and per client a random ``floor(train_fraction * inliers)``
    of its inliers is its training set; the rest of its inliers and all of its anomalies are
    its test set. With a test set of its own (``all_train``) every inlier a client holds
    trains, and the anomalies among the training records are left out.
    """

    # How to fix a client left with fewer than min_partition_size training records.
    too_small_fix = "use fewer clients"
    # The column whose values ``split`` takes as the records' groups; None: their labels.
    group_column: str | None = None

    @checked_arguments("partition")
    def __init__(
        self,
        name: str,
        num_clients: Annotated[int, AT_LEAST_1],
        train_fraction: Annotated[float, OPEN_FRACTION] = 0.5,
        min_partition_size: Annotated[int, AT_LEAST_1] = 1,
        attack_alpha: Annotated[float, POSITIVE] | None = None,
    ):
        self.name = name  # names run dirs and reports
        self.num_clients = num_clients
        self.train_fraction = train_fraction
        self.min_partition_size = min_partition_size
        self.attack_alpha = attack_alpha  # None: anomalies dealt in proportion, a shared test set shared

    @abstractmethod
    def assign_inliers(self, groups: np.ndarray, inlier: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
        """Row indices of the inlier records each client holds."""

    def assign_anomalies(
        self, groups: np.ndarray, is_anomaly: np.ndarray, client_inliers: list[np.ndarray], rng: np.random.Generator
    ) -> list[np.ndarray]:
        """Row indices of the anomalies each client tests on: dealt at random in proportion to
        the clients' inlier counts; with ``attack_alpha``, each group (attack family) in
        Dirichlet(attack_alpha) proportions."""
        if self.attack_alpha is not None:
            return self.deal_attacks(groups, is_anomaly, rng)
        counts = np.array([len(a) for a in client_inliers], dtype=np.float64)
        anomalies = rng.permutation(np.flatnonzero(is_anomaly))
        return split_by_fractions(anomalies, counts / max(counts.sum(), 1.0))

    def split(self, groups: np.ndarray, is_anomaly: np.ndarray, seed: int, all_train: bool = False) -> list[ClientSplit]:
        """The clients' splits of records with these groups (labels) and anomaly flags; a
        DataError when a client would hold fewer than ``min_partition_size`` training
        records or (unless ``all_train``) no test record."""
        rng = np.random.default_rng(seed)
        client_inliers = self.assign_inliers(groups, ~is_anomaly, rng)
        client_count = len(client_inliers)
        if all_train:
            splits = [ClientSplit(k, rng.permutation(rows), rows[:0]) for k, rows in enumerate(client_inliers)]
        else:
            client_anomalies = self.assign_anomalies(groups, is_anomaly, client_inliers, rng)
            splits = []
            for k in range(client_count):
                rows = rng.permutation(client_inliers[k])
                n_train = int(np.floor(self.train_fraction * len(rows)))
                splits.append(ClientSplit(k, rows[:n_train], np.concatenate([rows[n_train:], client_anomalies[k]])))
        for s in splits:
            if len(s.train_idx) < self.min_partition_size or (len(s.test_idx) == 0 and not all_train):
                raise DataError(
                    f"partition {self.name} leaves client {s.client_id} with {len(s.train_idx)} training "
                    f"and {len(s.test_idx)} test records (partition.min_partition_size={self.min_partition_size}): "
                    f"{self.too_small_fix}"
                )
        return splits


    def deal_attacks(self, groups: np.ndarray, is_anomaly: np.ndarray, rng: np.random.Generator, max_tries: int = 10) -> list[np.ndarray]:
        """Row indices of each client's anomalies, every group's in Dirichlet(attack_alpha)
        proportions, drawn again (up to ``max_tries`` times) while a client would get none."""
        for _ in range(max_tries):
            parts = dirichlet_by_group(groups, is_anomaly, self.num_clients, self.attack_alpha, rng)
            if all(len(p) for p in parts):
                return parts
        raise DataError(
            f"partition {self.name}: in {max_tries} draws of Dirichlet({self.attack_alpha}) over {len(groups_among(groups, is_anomaly))} "
            f"attack families, some client got no attack to test on: raise partition.attack_alpha or use fewer clients"
        )

    def deal_test_pool(self, groups: np.ndarray, is_anomaly: np.ndarray, train_sizes: list[int], seed: int) -> list[np.ndarray] | None:
        """Row indices of a data set's own test set that each client tests on: its attacks
        (``deal_attacks``) and a share of the benign records in proportion to its training
        size. None without ``attack_alpha``: every client tests on all of it."""
        if self.attack_alpha is None:
            return None
        rng = np.random.default_rng(derive_seed(seed, TEST_POOL_STREAM))
        sizes = np.asarray(train_sizes, dtype=np.float64)
        inliers = split_by_fractions(rng.permutation(np.flatnonzero(~is_anomaly)), sizes / sizes.sum())
        attacks = self.deal_attacks(groups, is_anomaly, rng)
        return [np.sort(np.concatenate([i, a])) for i, a in zip(inliers, attacks)]


def dirichlet_by_group(groups: np.ndarray, rows: np.ndarray, n_clients: int, alpha: float, rng: np.random.Generator) -> list[np.ndarray]:
    """Row indices per client: each group's records among ``rows`` (a mask) split in
    proportions drawn from a symmetric Dirichlet(alpha), groups in sorted order."""
    parts: list[list[np.ndarray]] = [[np.zeros(0, dtype=np.int64)] for _ in range(n_clients)]
    for group in groups_among(groups, rows):
        members = rng.permutation(np.flatnonzero(rows & (groups == group)))
        for k, part in enumerate(split_by_fractions(members, rng.dirichlet(np.full(n_clients, alpha)))):
            parts[k].append(part)
    return [np.concatenate(p) for p in parts]


def groups_among(groups: np.ndarray, rows: np.ndarray) -> list[str]:
    """The groups of the records ``rows`` (a mask) selects, sorted so that the draws do not
    depend on the file's order."""
    return sorted(set(groups[rows].tolist()))


def split_by_fractions(rows: np.ndarray, fractions) -> list[np.ndarray]:
    """Cut ``rows`` into consecutive parts holding round(fraction * len) rows each (exact cover)."""
    cuts = np.rint(np.cumsum(fractions) * len(rows)).astype(int)
    cuts[-1] = len(rows)
    return np.split(rows, cuts[:-1])
