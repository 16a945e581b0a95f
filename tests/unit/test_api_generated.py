"""The Python API on generated records (no data file): the docstring's example as a doctest,
PyOD's contract, save and load, a fixed seed, and one-line errors for what cannot work."""

import doctest

import numpy as np
import pytest
from helpers.energies import assert_same_energies

import fdagmm
from fdagmm import api
from fdagmm.errors import ConfigError, DataError


def test_the_docstring_examples_run_as_written():
    result = doctest.testmod(api, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 4 and result.failed == 0


@pytest.fixture(scope="module")
def correlated() -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.normal(size=(1500, 1)) @ np.ones((1, 3)) + 0.1 * rng.normal(size=(1500, 3))


@pytest.fixture(scope="module")
def fitted(correlated):
    return fdagmm.DAGMM(contamination=0.1, epochs=2, seed=3).fit(correlated)


def test_fit_sets_pyod_attributes_over_the_training_records(correlated, fitted):
    scores = fitted.decision_scores_
    assert scores.shape == (len(correlated),) and np.isfinite(scores).all()
    assert fitted.threshold_ == np.quantile(scores, 0.9)
    np.testing.assert_array_equal(fitted.labels_, (scores > fitted.threshold_).astype(int))
    np.testing.assert_array_equal(fitted.decision_function(correlated), scores)
    np.testing.assert_array_equal(fitted.predict(correlated), fitted.labels_)


def test_one_seed_fits_the_same_detector_twice(correlated, fitted):
    again = fdagmm.DAGMM(contamination=0.1, epochs=2, seed=3).fit(correlated)
    np.testing.assert_array_equal(again.decision_scores_, fitted.decision_scores_)


def test_save_writes_the_model_pt_that_load_and_score_read(correlated, fitted, tmp_path):
    fitted.save(tmp_path / "model.pt")
    loaded = fdagmm.DAGMM.load(tmp_path)
    assert loaded.threshold_ == fitted.threshold_ and loaded.contamination == 0.1
    assert_same_energies(loaded.decision_function(correlated[:50]), fitted.decision_scores_[:50])  # a batch of another size
    np.testing.assert_array_equal(loaded.predict(correlated[:50]), fitted.labels_[:50])


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: fdagmm.DAGMM(contamination=0.7), ConfigError, "contamination must be in (0, 0.5), got 0.7"),
        (lambda: fdagmm.DAGMM().predict(np.zeros((2, 3))), ConfigError, "not fitted yet: call fit(X) first"),
        (lambda: fdagmm.DAGMM().fit(np.zeros(5)), DataError, "a 2-d numeric array, got shape (5,)"),
    ],
)
def test_what_cannot_work_is_a_one_line_error(call, error, message):
    with pytest.raises(error) as raised:
        call()
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_records_of_another_shape_are_named(fitted):
    with pytest.raises(DataError, match=r"columns the .* schema does not know: \['x3'\]"):
        fitted.predict(np.zeros((2, 4)))
    with pytest.raises(DataError, match=r"X.iloc\[1\], column x0: missing or non-finite value \(nan\); nothing was scored"):
        fitted.predict(np.array([[0.0, 0.0, 0.0], [np.nan, 0.0, 0.0]]))
