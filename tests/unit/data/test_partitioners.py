"""Partition schemes on synthetic labels: exact covers, counts, Dirichlet statistics, guards."""

import numpy as np
import pytest

from fdagmm.data.partition import DataPoorSite, DirichletPartitioner, IidPartitioner, StudyScenario
from fdagmm.errors import ConfigError, DataError

NORMAL = "normal"


def _labels(seed=0, n=20_000):
    rng = np.random.default_rng(seed)
    kinds = ["smurf", "neptune", "back", "satan", "ipsweep", NORMAL]
    return rng.choice(kinds, size=n, p=[0.35, 0.25, 0.05, 0.05, 0.05, 0.25])


def _check_cover(labels, splits, train_fraction=0.5):
    used = np.concatenate([np.concatenate([s.train_idx, s.test_idx]) for s in splits])
    assert len(used) == len(labels) == len(np.unique(used))  # every record exactly once
    for s in splits:
        assert NORMAL not in set(labels[s.train_idx])  # attacks train; normals only test
        attacks = len(s.train_idx) + (labels[s.test_idx] != NORMAL).sum()
        assert len(s.train_idx) == int(np.floor(train_fraction * attacks))


@pytest.mark.parametrize(
    "partitioner",
    [
        StudyScenario("s3", [0.05, 0.95], [1.0, 0.0]),
        IidPartitioner("iid", num_clients=7),
        DirichletPartitioner("dir", num_clients=5, alpha=0.5),
        DataPoorSite("poor", poor_fraction=0.05, other_sites=3),
    ],
)
def test_every_scheme_is_an_exact_cover_with_attacks_training(partitioner):
    labels = _labels()
    splits = partitioner.split(labels, labels == NORMAL, seed=1)
    assert [s.client_id for s in splits] == list(range(partitioner.num_clients))
    _check_cover(labels, splits)
    again = partitioner.split(labels, labels == NORMAL, seed=1)
    assert all(np.array_equal(a.train_idx, b.train_idx) for a, b in zip(splits, again))


def test_iid_shares_are_equal_and_normals_follow_attacks():
    labels = _labels()
    splits = IidPartitioner("iid", num_clients=4).split(labels, labels == NORMAL, seed=0)
    n_attacks = (labels != NORMAL).sum()
    n_normals = (labels == NORMAL).sum()
    for s in splits:
        held = labels[np.concatenate([s.train_idx, s.test_idx])]
        assert abs((held != NORMAL).sum() - n_attacks / 4) <= 1
        assert abs((held == NORMAL).sum() - n_normals / 4) <= 2


@pytest.mark.parametrize("poor_fraction, other_sites", [(0.01, 1), (0.05, 2), (0.1, 4)])
def test_data_poor_site_holds_its_fraction_and_the_others_share_the_rest(poor_fraction, other_sites):
    """With a test set of the data set's own (all_train), client 0 trains on round(fraction x
    inliers) records and each other site on an equal share of the rest (to one record)."""
    labels = _labels()
    inlier = labels == NORMAL
    splits = DataPoorSite("poor", poor_fraction, other_sites).split(labels, ~inlier, seed=2, all_train=True)
    assert len(splits) == 1 + other_sites
    assert len(splits[0].train_idx) == round(poor_fraction * inlier.sum())
    rich = [len(s.train_idx) for s in splits[1:]]
    assert max(rich) - min(rich) <= 1 and sum(rich) == inlier.sum() - len(splits[0].train_idx)
    assert all(inlier[s.train_idx].all() and len(s.test_idx) == 0 for s in splits)


def test_study_scenario_counts_follow_its_fractions():
    labels = _labels()
    splits = StudyScenario("s1", [0.01, 0.99], [1.0, 0.0]).split(labels, labels == NORMAL, seed=0)
    held0 = labels[np.concatenate([splits[0].train_idx, splits[0].test_idx])]
    for attack in ("smurf", "neptune"):
        assert (held0 == attack).sum() == round(0.01 * (labels == attack).sum())
    for attack in ("back", "satan", "ipsweep"):  # rare: all with client 0
        assert (held0 == attack).sum() == (labels == attack).sum()


def test_dirichlet_shares_match_their_expectation_over_many_seeds():
    """Per attack type, client k's share p_k ~ Dirichlet(alpha, ..., alpha): E[p_k] = 1/K,
    Var[p_k] = (1/K)(1 - 1/K) / (K alpha + 1). Checked over 400 seeds x 5 types."""
    labels = _labels(n=5_000)
    k, alpha = 4, 0.5
    partitioner = DirichletPartitioner("dir", num_clients=k, alpha=alpha, min_partition_size=1)
    shares = []
    for seed in range(400):
        splits = partitioner.split(labels, labels == NORMAL, seed)
        for attack in ("smurf", "neptune", "back", "satan", "ipsweep"):
            total = (labels == attack).sum()
            held = [(labels[np.concatenate([s.train_idx, s.test_idx])] == attack).sum() / total for s in splits]
            shares.append(held)
    shares = np.array(shares)  # (2000, K)
    mean, var = 1 / k, (1 / k) * (1 - 1 / k) / (k * alpha + 1)
    n = len(shares)
    assert np.allclose(shares.mean(axis=0), mean, atol=4 * np.sqrt(var / n))
    assert np.allclose(shares.var(axis=0), var, rtol=0.15)


def test_smaller_alpha_concentrates_each_type_on_fewer_clients():
    labels = _labels()

    def mean_max_share(alpha):
        out = []
        for seed in range(30):
            splits = DirichletPartitioner("d", num_clients=10, alpha=alpha, min_partition_size=1).split(labels, labels == NORMAL, seed)
            held = [labels[np.concatenate([s.train_idx, s.test_idx])] for s in splits]
            out.append(max((h == "smurf").sum() for h in held) / (labels == "smurf").sum())
        return np.mean(out)

    assert mean_max_share(0.1) > mean_max_share(5.0) + 0.3


def test_a_client_that_would_be_too_small_is_a_one_line_error_naming_the_fix():
    labels = _labels(n=300)
    with pytest.raises(DataError, match=r"leaves client \d+ with \d+ training .*raise partition.alpha, lower partition.num_clients"):
        DirichletPartitioner("d", num_clients=50, alpha=0.05, min_partition_size=20, max_tries=3).split(labels, labels == NORMAL, seed=0)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: DirichletPartitioner("d", num_clients=5, alpha=0), "partition.alpha must be > 0"),
        (lambda: IidPartitioner("i", num_clients=0), "partition.num_clients must be >= 1"),
        (lambda: IidPartitioner("i", num_clients=3, train_fraction=1.0), "partition.train_fraction must be in"),
        (lambda: StudyScenario("s", [0.5, 0.6], [1.0, 0.0]), "sum to 1"),
        (lambda: StudyScenario("s", [0.5, 0.5], [1.0]), "rare_fractions has 1"),
    ],
)
def test_impossible_partition_settings_are_config_errors(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


def test_a_common_group_that_never_trains_is_refused_when_splitting():
    labels = np.array(["smurf", "neptune", "normal", "back"] * 25)
    scenario = StudyScenario("s", [0.5, 0.5], [1.0, 0.0], common_attacks=["smurff"])
    with pytest.raises(DataError, match=r"partition.common_attacks: \['smurff'\] never occur among the records that train"):
        scenario.split(labels, labels == NORMAL, seed=0)


def test_by_column_clients_are_the_most_frequent_values_with_their_own_anomalies():
    from fdagmm.data.partition import ByColumnPartitioner

    rng = np.random.default_rng(3)
    sites = rng.choice(["a", "b", "c", "d"], size=5000, p=[0.1, 0.4, 0.3, 0.2])
    is_anomaly = rng.random(5000) < 0.3
    partitioner = ByColumnPartitioner("site", column="site", top_n=3)
    splits = partitioner.split(sites, is_anomaly, seed=0)
    assert partitioner.values == ["b", "c", "d"]  # "a", the least frequent, is left out
    for s, site in zip(splits, partitioner.values):
        mine = np.flatnonzero(sites == site)
        inliers = mine[~is_anomaly[mine]]
        assert sorted(np.concatenate([s.train_idx, s.test_idx])) == sorted(mine)  # its records, all of them
        assert len(s.train_idx) == len(inliers) // 2 and not is_anomaly[s.train_idx].any()
    assert all(sites[s.test_idx][is_anomaly[s.test_idx]].tolist() == [v] * int(is_anomaly[s.test_idx].sum()) for s, v in zip(splits, partitioner.values))
    # With a test set of the data set's own, every inlier of its value trains.
    shared = ByColumnPartitioner("site", column="site", top_n=2).split(sites, is_anomaly, seed=0, all_train=True)
    assert [len(s.train_idx) for s in shared] == [int(((sites == v) & ~is_anomaly).sum()) for v in ("b", "c")]
    assert all(len(s.test_idx) == 0 for s in shared)


def test_by_column_without_top_n_takes_every_value_and_too_many_is_refused():
    from fdagmm.data.partition import ByColumnPartitioner

    sites = np.array(["x", "y", "y", "z", "z", "z"] * 10)
    is_anomaly = np.zeros(len(sites), dtype=bool)
    every = ByColumnPartitioner("site", column="site")
    assert len(every.split(sites, is_anomaly, seed=0, all_train=True)) == 3 and every.values == ["z", "y", "x"]
    with pytest.raises(ConfigError, match="partition.top_n=4: column 'site' holds only 3 values"):
        ByColumnPartitioner("site", column="site", top_n=4).split(sites, is_anomaly, seed=0)


# partition.attack_alpha: benign traffic trains (the inliers), every attack family is dealt ------

BENIGN = "benign"


def _flows(seed=0, n=20_000):
    """Benign flows and five attack families, as in a data set whose benign traffic trains."""
    rng = np.random.default_rng(seed)
    return rng.choice([BENIGN, "dos", "probe", "fuzzers", "exploits", "worms"], size=n, p=[0.6, 0.15, 0.1, 0.08, 0.05, 0.02])


@pytest.mark.parametrize("partitioner", [IidPartitioner("i", num_clients=6, attack_alpha=0.3), DirichletPartitioner("d", num_clients=6, alpha=1.0, attack_alpha=0.3)])
def test_a_shared_test_set_is_dealt_as_an_exact_cover_with_attacks_for_every_client(partitioner):
    test = _flows(seed=1)
    sizes = [100, 400, 50, 1000, 250, 200]
    rows = partitioner.deal_test_pool(test, test != BENIGN, sizes, seed=3)
    used = np.concatenate(rows)
    assert len(used) == len(test) == len(np.unique(used))  # every test record exactly once
    n_benign = (test == BENIGN).sum()
    for r, size in zip(rows, sizes):
        assert (test[r] != BENIGN).sum() >= 1
        assert abs((test[r] == BENIGN).sum() - n_benign * size / sum(sizes)) <= 1  # benign records follow training sizes
    again = partitioner.deal_test_pool(test, test != BENIGN, sizes, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(rows, again))
    other = partitioner.deal_test_pool(test, test != BENIGN, sizes, seed=4)
    assert not all(np.array_equal(a, b) for a, b in zip(rows, other))


def test_without_attack_alpha_every_client_tests_on_the_whole_shared_test_set():
    test = _flows()
    assert IidPartitioner("i", num_clients=3).deal_test_pool(test, test != BENIGN, [1, 1, 1], seed=0) is None


def test_a_smaller_attack_alpha_concentrates_each_attack_family_on_fewer_clients():
    test = _flows()

    def mean_max_share(attack_alpha):
        shares = []
        for seed in range(30):
            rows = IidPartitioner("i", num_clients=5, attack_alpha=attack_alpha).deal_test_pool(test, test != BENIGN, [1] * 5, seed)
            shares.append(max((test[r] == "dos").sum() for r in rows) / (test == "dos").sum())
        return np.mean(shares)

    assert mean_max_share(0.1) > mean_max_share(10.0) + 0.3


def test_without_a_test_set_each_clients_test_share_holds_its_own_attacks():
    flows = _flows()
    partitioner = DirichletPartitioner("d", num_clients=4, alpha=5.0, attack_alpha=0.1)
    splits = partitioner.split(flows, flows != BENIGN, seed=0)
    used = np.concatenate([np.concatenate([s.train_idx, s.test_idx]) for s in splits])
    assert len(used) == len(flows) == len(np.unique(used))
    for s in splits:
        assert set(flows[s.train_idx]) == {BENIGN}
        assert (flows[s.test_idx] != BENIGN).sum() >= 1
    # Dirichlet(0.1) over 5 families: some family is held mostly by one client
    held = [[(flows[s.test_idx] == family).sum() / (flows == family).sum() for s in splits] for family in ("dos", "probe", "fuzzers", "exploits", "worms")]
    assert max(max(shares) for shares in held) > 0.8


def test_attack_alpha_that_leaves_a_client_no_attack_is_a_one_line_error():
    test = np.array([BENIGN] * 100 + ["dos"] * 2)
    with pytest.raises(DataError, match=r"some client got no attack to test on: raise partition.attack_alpha or use fewer clients"):
        IidPartitioner("i", num_clients=5, attack_alpha=0.5).deal_test_pool(test, test != BENIGN, [1] * 5, seed=0)


def test_a_non_positive_attack_alpha_is_a_config_error():
    with pytest.raises(ConfigError, match="partition.attack_alpha must be > 0"):
        IidPartitioner("i", num_clients=3, attack_alpha=0.0)
