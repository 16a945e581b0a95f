"""Client sampling: seeded, reproducible, independent of the backend."""

from fdagmm.federation.rounds import round_record, sample_clients
from fdagmm.federation.strategies import ClientUpdate


def test_every_client_trains_without_sampling():
    assert sample_clients([0, 1, 2], None, seed=0, round_idx=1) == [0, 1, 2]
    assert sample_clients([0, 1, 2], 3, seed=0, round_idx=1) == [0, 1, 2]


def test_sampling_is_seeded_per_round_and_draws_distinct_clients():
    clients = list(range(20))
    rounds = [sample_clients(clients, 5, seed=3, round_idx=r) for r in range(1, 11)]
    assert rounds == [sample_clients(clients, 5, seed=3, round_idx=r) for r in range(1, 11)]
    assert all(len(set(s)) == 5 and set(s) <= set(clients) and s == sorted(s) for s in rounds)
    assert len({tuple(s) for s in rounds}) > 1  # not the same clients every round
    assert rounds != [sample_clients(clients, 5, seed=4, round_idx=r) for r in range(1, 11)]


def test_sampling_is_uniform_over_many_rounds():
    counts = [0] * 10
    for r in range(1, 2001):
        for k in sample_clients(list(range(10)), 3, seed=0, round_idx=r):
            counts[k] += 1
    # Each client is drawn with probability 3/10: 600 of 2000 rounds, sd ~ 20.5.
    assert all(abs(c - 600) < 5 * 20.5 for c in counts), counts


def test_round_record_names_sampled_and_excluded_clients():
    updates = [ClientUpdate(2, {}, 10, 1.5)]
    losses, extra = round_record(updates, {5: "RuntimeError: x"}, [2, 5], n_train_clients=8)
    assert losses == {"client2": 1.5}
    assert extra == {"sampled_clients": [2, 5], "excluded_clients": {"5": "RuntimeError: x"}}
    assert round_record(updates, {}, [0, 1], n_train_clients=2) == ({"client2": 1.5}, {})


def test_under_dp_each_client_is_sampled_independently_as_the_accountant_assumes():
    """Poisson sampling at q = clients_per_round / clients: round sizes vary (none, or more
    than clients_per_round), each client takes part in a share q of the rounds, and the draws
    are reproducible from the seed only when not secret."""
    clients, q = list(range(10)), 0.3
    rounds = [sample_clients(clients, 3, seed=0, round_idx=r, private=True) for r in range(1, 2001)]
    sizes = {len(s) for s in rounds}
    assert 0 in sizes and max(sizes) > 3
    counts = [sum(k in s for s in rounds) for k in clients]
    assert all(abs(c - 2000 * q) < 5 * (2000 * q * (1 - q)) ** 0.5 for c in counts), counts
    assert rounds[:20] == [sample_clients(clients, 3, seed=0, round_idx=r, private=True) for r in range(1, 21)]
    secret = [sample_clients(clients, 3, seed=0, round_idx=r, private=True, secret=True) for r in range(1, 21)]
    assert secret != [sample_clients(clients, 3, seed=0, round_idx=r, private=True, secret=True) for r in range(1, 21)]
