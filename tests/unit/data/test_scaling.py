"""data.scaling: the schema's fixed scaling needs no record and encodes any finite record; the
study's federated min/max is the union's range; the fitted scalings (standard, robust,
quantile) are those of the union of the clients' records, from statistics that add up; both
backends pick them by the same name."""

import numpy as np
import pandas as pd
import pytest
from helpers.synthetic import synthetic_frame

from fdagmm.data.features import (
    FEDERATED_MINMAX,
    FEDERATED_QUANTILE,
    FEDERATED_ROBUST,
    FEDERATED_STANDARD,
    HISTOGRAM_BINS,
    SCHEMA_LOG,
    FeatureEncoder,
    Scaling,
    ScalingStats,
    federation_scaling,
    needs_client_stats,
)
from helpers.kdd import KDD99

N_NUMERIC = len(KDD99.numeric_features)


def _no_client_stats():
    raise AssertionError("schema_log asked the clients for statistics")


def test_every_numeric_feature_has_exactly_one_fixed_scaling():
    unit, logs = set(KDD99.unit_interval), set(KDD99.log_scales)
    assert not unit & logs
    assert unit | logs == set(KDD99.numeric_features)
    assert all(name.endswith("_rate") for name in unit - {"land", "logged_in", "root_shell", "su_attempted", "is_host_login", "is_guest_login"})
    assert all(scale > 1 for scale in KDD99.log_scales.values())


def test_schema_scaling_looks_at_no_record():
    scaling = federation_scaling(SCHEMA_LOG, KDD99.schema, _no_client_stats)
    assert not needs_client_stats(SCHEMA_LOG) and needs_client_stats(FEDERATED_MINMAX)
    assert scaling.log_scaled.sum() == len(KDD99.log_scales) == 17
    np.testing.assert_array_equal(scaling.minimum, 0.0)


def test_schema_scaling_maps_zero_to_zero_a_scale_to_one_and_keeps_rates():
    encoder = FeatureEncoder(Scaling.of_schema(KDD99.schema), KDD99.schema)
    frame = synthetic_frame(4, seed=0)
    for name, scale in KDD99.log_scales.items():
        frame[name] = [0.0, scale, 9.0, 10 * scale]
    for name in KDD99.unit_interval:
        frame[name] = [0.0, 1.0, 0.25, 2.0]
    x = encoder.transform(frame)[:, :N_NUMERIC].astype(np.float64)
    for j, name in enumerate(KDD99.numeric_features):
        if name in KDD99.log_scales:
            expected = np.log1p(frame[name].to_numpy()) / np.log1p(KDD99.log_scales[name])
            assert expected[:2].tolist() == [0.0, 1.0] and expected[3] > 1  # above the scale: above 1, unclipped
        else:
            expected = frame[name].to_numpy()
        np.testing.assert_allclose(x[:, j], expected, rtol=1e-6, err_msg=name)


def test_federated_minmax_is_the_range_of_the_union_of_the_clients_records():
    parts = [synthetic_frame(50, seed=s) for s in range(3)]
    scaling = federation_scaling(FEDERATED_MINMAX, KDD99.schema, lambda: [ScalingStats.of(p, KDD99.schema, FEDERATED_MINMAX) for p in parts])
    union = ScalingStats.of(pd.concat(parts), KDD99.schema, FEDERATED_MINMAX)
    np.testing.assert_array_equal(scaling.minimum, union.minimum)
    np.testing.assert_array_equal(scaling.maximum, union.maximum)
    assert not scaling.log_scaled.any()


def test_an_unknown_scaling_is_refused():
    with pytest.raises(ValueError, match="unknown scaling 'minmax': one of schema_log, federated_minmax, federated_standard"):
        federation_scaling("minmax", KDD99.schema, _no_client_stats)


def _fitted(scaling: str, parts: list[pd.DataFrame]) -> FeatureEncoder:
    return FeatureEncoder(federation_scaling(scaling, KDD99.schema, lambda: [ScalingStats.of(p, KDD99.schema, scaling) for p in parts]), KDD99.schema)


def _schema_units(frame: pd.DataFrame) -> np.ndarray:
    return FeatureEncoder(Scaling.of_schema(KDD99.schema), KDD99.schema).transform(frame)[:, :N_NUMERIC].astype(np.float64)


@pytest.mark.parametrize("scaling", [FEDERATED_STANDARD, FEDERATED_ROBUST, FEDERATED_QUANTILE])
def test_fitted_statistics_add_up_to_the_unions(scaling):
    parts = [synthetic_frame(n, seed=s) for s, n in enumerate((40, 7, 120))]
    combined = ScalingStats.combine([ScalingStats.of(p, KDD99.schema, scaling) for p in parts])
    union = ScalingStats.of(pd.concat(parts), KDD99.schema, scaling)
    assert combined.n_records == union.n_records == 167
    for name in ("total", "total_squares", "histogram"):
        if getattr(union, name) is None:
            assert getattr(combined, name) is None
        else:
            np.testing.assert_allclose(getattr(combined, name), getattr(union, name), rtol=1e-12)
    assert combined.minimum is None and combined.maximum is None  # no record's value


def test_federated_standard_gives_the_unions_records_mean_0_and_deviation_1():
    parts = [synthetic_frame(n, seed=s) for s, n in enumerate((300, 50))]
    x = _fitted(FEDERATED_STANDARD, parts).transform(pd.concat(parts))[:, :N_NUMERIC].astype(np.float64)
    units = _schema_units(pd.concat(parts))
    spread = units.std(axis=0) > 1e-6
    assert spread.sum() > N_NUMERIC // 2  # the check covers most features
    np.testing.assert_allclose(x[:, spread].mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(x[:, spread].std(axis=0), 1.0, rtol=1e-5)
    np.testing.assert_allclose(x[:, ~spread], units[:, ~spread], atol=1e-6)  # constant: the schema's units


def test_federated_robust_centres_on_the_median_within_a_histogram_bin():
    parts = [synthetic_frame(n, seed=s) for s, n in enumerate((400, 100))]
    union = pd.concat(parts)
    scaling = _fitted(FEDERATED_ROBUST, parts).scaling
    units = _schema_units(union)
    schema = Scaling.of_schema(KDD99.schema)
    offset = (scaling.minimum - schema.minimum) / (schema.maximum - schema.minimum)  # the median, in schema units
    median = np.median(np.clip(units, 0, 1), axis=0)
    np.testing.assert_allclose(offset, median, atol=1.0 / HISTOGRAM_BINS)


def test_federated_quantile_gives_each_value_its_rank_within_its_bins_share():
    parts = [synthetic_frame(n, seed=s) for s, n in enumerate((500, 200))]
    union = pd.concat(parts)
    encoder = _fitted(FEDERATED_QUANTILE, parts)
    x = encoder.transform(union)[:, :N_NUMERIC].astype(np.float64)
    units = np.clip(_schema_units(union), 0, 1)
    assert x.min() >= 0.0 and x.max() <= 1.0
    bins = np.clip((units * HISTOGRAM_BINS).astype(int), 0, HISTOGRAM_BINS - 1)
    for j in range(N_NUMERIC):
        order = np.argsort(units[:, j], kind="stable")
        assert np.all(np.diff(x[order, j]) >= -1e-6), KDD99.numeric_features[j]  # monotone in the value
        below = (units[:, j][:, None] < units[:, j][None, :]).mean(axis=0)  # the share of records below each
        share_of_bin = np.bincount(bins[:, j], minlength=HISTOGRAM_BINS)[bins[:, j]] / len(union)
        assert np.all(np.abs(x[:, j] - below) <= share_of_bin + 1e-6), KDD99.numeric_features[j]


def test_a_fitted_scaling_is_asked_for_statistics_and_stays_finite_far_out_of_range():
    parts = [synthetic_frame(100, seed=0)]
    for scaling in (FEDERATED_STANDARD, FEDERATED_ROBUST, FEDERATED_QUANTILE):
        assert needs_client_stats(scaling)
        far = synthetic_frame(3, seed=1)
        far[KDD99.numeric_features[0]] = [1e300, -1e300, np.finfo(np.float64).max]
        x = _fitted(scaling, parts).transform(far)
        assert np.isfinite(x).all(), scaling
