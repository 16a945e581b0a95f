"""Federated averaging: weighted by n_k, key by key."""

import pytest
import torch

from fdagmm.models.dagmm import DAGMM
from fdagmm.federation.strategies import fedavg


def _state(seed):
    torch.manual_seed(seed)
    return DAGMM(input_dim=122).state_dict()


def test_averaging_identical_models_returns_them():
    state = _state(0)
    averaged = fedavg([state, state, state], [10, 3, 500])
    for key, value in state.items():
        torch.testing.assert_close(averaged[key], value, rtol=1e-6, atol=1e-7)


def test_two_models_give_the_sample_weighted_mean_key_by_key():
    a, b = _state(0), _state(1)
    averaged = fedavg([a, b], [6316, 192055])
    w = 6316 / (6316 + 192055)
    for key in a:
        expected = (w * a[key].double() + (1 - w) * b[key].double()).float()
        torch.testing.assert_close(averaged[key], expected, rtol=0, atol=0)
        assert averaged[key].dtype == a[key].dtype


def test_states_of_different_models_are_refused():
    a = _state(0)
    b = {**a, "extra.weight": torch.zeros(1)}
    with pytest.raises(ValueError, match="different keys"):
        fedavg([a, b], [1, 1])
