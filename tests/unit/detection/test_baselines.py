"""The classical baselines on synthetic points: shapes, float64, determinism per seed, and
outliers scoring above inliers (scikit-learn's Isolation Forest and PCA, PyOD's ECOD and
autoencoder)."""

import numpy as np
import pytest

from fdagmm.detection.baselines import AutoEncoderScorer, ECODScorer, IsolationForestScorer, PCAReconstructionScorer

DETECTORS = {
    "iforest": lambda seed: IsolationForestScorer(n_estimators=50, max_samples=128, seed=seed),
    "pca": lambda seed: PCAReconstructionScorer(explained_variance=0.9),
    "ecod": lambda seed: ECODScorer(),
    "autoencoder": lambda seed: AutoEncoderScorer(hidden=(8, 4), epochs=10, batch_size=128, seed=seed),
}


def _points(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training points near a 2-d plane in 6 dimensions; inliers from the same law; outliers
    far off the plane."""
    rng = np.random.default_rng(seed)
    basis = rng.normal(size=(2, 6))
    inside = lambda n: rng.normal(size=(n, 2)) @ basis + 0.01 * rng.normal(size=(n, 6))  # noqa: E731
    outliers = inside(50) + 5.0 * rng.normal(size=(50, 6))
    return inside(2000).astype(np.float32), inside(200), outliers


@pytest.mark.parametrize("name", DETECTORS)
def test_scores_have_one_float64_per_record(name):
    train, inliers, _ = _points()
    scores = DETECTORS[name](0).fit(train).decision_function(inliers)
    assert scores.shape == (200,) and scores.dtype == np.float64 and np.isfinite(scores).all()


@pytest.mark.parametrize("name", DETECTORS)
def test_outliers_score_higher_than_inliers(name):
    train, inliers, outliers = _points()
    detector = DETECTORS[name](0).fit(train)
    inlier_scores, outlier_scores = detector.decision_function(inliers), detector.decision_function(outliers)
    # Every outlier above the inliers' 95th percentile: far off the plane is anomalous to both.
    assert (outlier_scores > np.quantile(inlier_scores, 0.95)).mean() >= 0.95


@pytest.mark.parametrize("name", DETECTORS)
def test_the_same_seed_gives_the_same_scores(name):
    train, inliers, _ = _points()
    first, second = (DETECTORS[name](3).fit(train).decision_function(inliers) for _ in range(2))
    np.testing.assert_array_equal(first, second)


def test_isolation_forest_depends_on_its_seed():
    train, inliers, _ = _points()
    assert not np.array_equal(DETECTORS["iforest"](0).fit(train).decision_function(inliers), DETECTORS["iforest"](1).fit(train).decision_function(inliers))


def test_pca_reconstruction_error_is_the_squared_distance_to_the_principal_plane():
    train, inliers, _ = _points()
    detector = PCAReconstructionScorer(explained_variance=0.9).fit(train)
    assert detector.model.n_components_ == 2  # the plane holds almost all of the variance
    # A float64 reference: project onto the top-2 right singular vectors of the centred data.
    centred = train.astype(np.float64) - train.astype(np.float64).mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    offset = inliers - train.astype(np.float64).mean(axis=0)
    residual = offset - offset @ vt[:2].T @ vt[:2]
    np.testing.assert_allclose(detector.decision_function(inliers), (residual**2).sum(axis=1), rtol=1e-6, atol=1e-12)


def test_ecod_is_the_tail_probability_of_the_farthest_feature_pyod_reports():
    """ECOD through the scorer equals PyOD's own ECOD on the same float64 records."""
    from pyod.models.ecod import ECOD

    train, inliers, outliers = _points()
    x = np.concatenate([inliers, outliers])
    np.testing.assert_array_equal(ECODScorer().fit(train).decision_function(x), ECOD().fit(train.astype(np.float64)).decision_function(x))


def test_autoencoder_trains_on_fewer_records_than_a_batch():
    """A data-poor site's 134 records with a 256-record batch: it trains (PyOD alone would
    drop the only, incomplete batch and fail) and scores outliers above inliers."""
    train, inliers, outliers = _points()
    detector = AutoEncoderScorer(hidden=(8, 4), epochs=30, batch_size=256, seed=0).fit(train[:134])
    assert np.median(detector.decision_function(outliers)) > np.quantile(detector.decision_function(inliers), 0.9)
