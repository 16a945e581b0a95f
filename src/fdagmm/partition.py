"""Split KDDCUP99 into clients as in the study's scenarios (spec section 5).

Attack types are *common* (smurf, neptune by default) or *rare* (all others). Client k holds
``common_fractions[k]`` of every common type and ``rare_fractions[k]`` of every rare type,
drawn at random within each type; the ``normal`` records are split at random in proportion
to the clients' attack counts. Per client, a random ``train_fraction`` of its attacks is its
training set; the rest of its attacks and all of its normal records are its test set.
Everything comes from one generator seeded by ``seed``: same seed, same partition.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fdagmm.kdd import NORMAL_LABEL


@dataclass(frozen=True)
class ClientSplit:
    """Row indices (into the loaded frame) of one client's training and test records."""

    client_id: int
    train_idx: np.ndarray
    test_idx: np.ndarray


def partition_clients(
    labels: np.ndarray,
    common_attacks: list[str],
    common_fractions: list[float],
    rare_fractions: list[float],
    seed: int,
    train_fraction: float = 0.5,
) -> list[ClientSplit]:
    rng = np.random.default_rng(seed)
    n_clients = len(common_fractions)
    attacks: list[list[np.ndarray]] = [[] for _ in range(n_clients)]
    # Sorted so that the draws, and so the partition, do not depend on the file's order of types.
    for attack in sorted(set(labels.tolist()) - {NORMAL_LABEL}):
        fractions = common_fractions if attack in common_attacks else rare_fractions
        rows = rng.permutation(np.flatnonzero(labels == attack))
        for k, part in enumerate(_split(rows, fractions)):
            attacks[k].append(part)
    client_attacks = [np.concatenate(parts) for parts in attacks]

    counts = np.array([len(a) for a in client_attacks], dtype=np.float64)
    normals = rng.permutation(np.flatnonzero(labels == NORMAL_LABEL))
    client_normals = _split(normals, counts / counts.sum())

    splits = []
    for k in range(n_clients):
        rows = rng.permutation(client_attacks[k])
        n_train = int(np.floor(train_fraction * len(rows)))
        splits.append(
            ClientSplit(
                client_id=k,
                train_idx=rows[:n_train],
                test_idx=np.concatenate([rows[n_train:], client_normals[k]]),
            )
        )
    return splits


def _split(rows: np.ndarray, fractions) -> list[np.ndarray]:
    """Cut ``rows`` into consecutive parts holding round(fraction * len) rows each (exact cover)."""
    cuts = np.rint(np.cumsum(fractions) * len(rows)).astype(int)
    cuts[-1] = len(rows)
    return np.split(rows, cuts[:-1])
