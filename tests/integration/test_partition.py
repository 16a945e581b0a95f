"""Scenario partitions on the real 10% file: counts as the spec defines them, disjoint, seeded."""

import numpy as np
import pytest
from hydra import compose, initialize

from helpers.kdd import KDD99
from fdagmm.config import build
from fdagmm.data.partition import StudyScenario

COMMON = ("smurf", "neptune")


def _scenario(name):
    with initialize(version_base="1.3", config_path="../../conf"):
        return build(compose(config_name="config", overrides=[f"scenario={name}"]).partition)


def _partition(labels, scenario, seed=0):
    return scenario.split(labels, labels == KDD99.normal_label, seed)


@pytest.fixture(scope="module")
def labels(kdd_frame):
    return kdd_frame[KDD99.label].to_numpy(dtype=str)


@pytest.mark.parametrize("name, f", [("s1", 0.01), ("s2", 0.02), ("s3", 0.05), ("s4", 0.10)])
def test_client_counts_match_the_spec(labels, name, f):
    splits = _partition(labels, _scenario(name))
    types, counts = np.unique(labels, return_counts=True)
    count = dict(zip(types.tolist(), counts.tolist()))
    n_normal = count.pop(KDD99.normal_label)
    n_attacks = sum(count.values())
    # Client 0: a fraction f of each common type, all rare attacks; client 1: the rest.
    attacks0 = sum(round(f * count[t]) for t in COMMON) + sum(n for t, n in count.items() if t not in COMMON)
    attacks = [attacks0, n_attacks - attacks0]
    normals0 = round(n_normal * attacks0 / n_attacks)
    normals = [normals0, n_normal - normals0]
    for k, split in enumerate(splits):
        train_labels, test_labels = labels[split.train_idx], labels[split.test_idx]
        assert len(split.train_idx) == attacks[k] // 2
        assert (test_labels != KDD99.normal_label).sum() == attacks[k] - attacks[k] // 2
        assert (test_labels == KDD99.normal_label).sum() == normals[k]
        assert KDD99.normal_label not in set(train_labels)
    # Each common type is split by f, each rare type goes wholly to client 0.
    held0 = labels[np.concatenate([splits[0].train_idx, splits[0].test_idx])]
    for t in COMMON:
        assert (held0 == t).sum() == round(f * count[t])
    assert (held0 == "back").sum() == count["back"]
    # Both clients end up with about the spec's anomaly ratio in their test + train records.
    ratios = [normals[k] / (normals[k] + attacks[k]) for k in range(2)]
    assert ratios[0] == pytest.approx(ratios[1], abs=1e-3)


@pytest.mark.parametrize("name", ["s1", "s4"])
def test_every_record_is_used_exactly_once(labels, name):
    splits = _partition(labels, _scenario(name))
    used = np.concatenate([np.concatenate([s.train_idx, s.test_idx]) for s in splits])
    assert len(used) == len(labels)
    assert len(np.unique(used)) == len(labels)


def test_same_seed_same_partition_other_seed_other_partition(labels):
    scenario = _scenario("s2")
    a, b, c = (_partition(labels, scenario, seed) for seed in (7, 7, 8))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.train_idx, y.train_idx)
        np.testing.assert_array_equal(x.test_idx, y.test_idx)
    assert not np.array_equal(a[0].train_idx, c[0].train_idx)


def test_three_clients_from_config_fractions(labels):
    splits = _partition(labels, StudyScenario("three", [0.2, 0.3, 0.5], [0.5, 0.5, 0.0], COMMON))
    assert len(splits) == 3
    held = [np.concatenate([s.train_idx, s.test_idx]) for s in splits]
    smurf = (labels == "smurf").sum()
    assert [(labels[h] == "smurf").sum() for h in held] == [round(0.2 * smurf), round(0.5 * smurf) - round(0.2 * smurf), smurf - round(0.5 * smurf)]
    assert (labels[held[2]] == "back").sum() == 0
