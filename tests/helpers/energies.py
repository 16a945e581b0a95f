"""Energies compared across ways of scoring the same records."""

import numpy as np

# A record's energy does not depend on the batch it is scored in, up to the last bit of a
# float64 matrix product (see test_scoring.py).
FLOAT64_ROUNDING = 1e-12


def assert_same_energies(actual, expected) -> None:
    np.testing.assert_allclose(np.asarray(actual, dtype=float), np.asarray(expected, dtype=float), rtol=FLOAT64_ROUNDING, atol=0)
