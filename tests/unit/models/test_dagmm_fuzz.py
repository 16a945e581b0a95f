"""DAGMM's energy and objective on any input the encoder can produce: finite, or (training)
a one-line NumericalError."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from fdagmm.data.features import OUT_OF_RANGE
from fdagmm.detection.evaluation import dataset_gmm_stats, energies
from fdagmm.errors import NumericalError
from fdagmm.models.dagmm import DAGMM, mixture_from_stats
from fdagmm.models.lit_module import training_loss

pytestmark = pytest.mark.fuzz

INPUT_DIM = 16
JITTER = 1e-6
SEEDS = st.integers(0, 2**32 - 1)


def _inputs(low: float, high: float) -> st.SearchStrategy[np.ndarray]:
    """Encoded records (float32, as the encoder writes them) with values in [low, high] (each
    bound rounded to float32, as the encoder's clipped values are)."""
    elements = st.floats(float(np.float32(low)), float(np.float32(high)), width=32)
    return st.integers(1, 16).flatmap(lambda n: arrays(np.float32, (n, INPUT_DIM), elements=elements, fill=elements))


@given(seed=SEEDS, x=_inputs(-OUT_OF_RANGE, OUT_OF_RANGE))
def test_energy_is_finite_for_any_encoded_record(seed, x):
    """The scoring path: float64, a mixture fitted on training-like records, any clipped input."""
    torch.manual_seed(seed)
    net = DAGMM(input_dim=INPUT_DIM, hidden_dims=(8, 4), n_components=3).eval()
    train = torch.rand(64, INPUT_DIM)
    mixture = mixture_from_stats(dataset_gmm_stats(net, train))
    assert np.isfinite(energies(net, torch.from_numpy(x), mixture, JITTER)).all()


@given(seed=SEEDS, x=_inputs(0.0, 1.0))
def test_training_objective_is_finite_or_a_numerical_error(seed, x):
    """The training path: float32 batches of training records, which the encoder puts in [0, 1]."""
    torch.manual_seed(seed)
    net = DAGMM(input_dim=INPUT_DIM, hidden_dims=(8, 4), n_components=3)
    try:
        loss = training_loss(net, torch.from_numpy(x), lambda_energy=0.1, lambda_cov=0.005, cov_jitter=JITTER)
    except NumericalError as e:
        assert "\n" not in str(e)
        return
    assert torch.isfinite(loss.total)
    loss.total.backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters())
