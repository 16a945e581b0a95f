"""data.scaling: the schema's fixed scaling needs no record and encodes any finite record; the
study's federated min/max is the union's range; both backends pick them by the same name."""

import numpy as np
import pandas as pd
import pytest
from helpers.synthetic import synthetic_frame

from fdagmm.data.features import (
    FEDERATED_MINMAX,
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
    scaling = federation_scaling(FEDERATED_MINMAX, KDD99.schema, lambda: [ScalingStats.of(p, KDD99.numeric_features) for p in parts])
    union = ScalingStats.of(pd.concat(parts), KDD99.numeric_features)
    np.testing.assert_array_equal(scaling.minimum, union.minimum)
    np.testing.assert_array_equal(scaling.maximum, union.maximum)
    assert not scaling.log_scaled.any()


def test_an_unknown_scaling_is_refused():
    with pytest.raises(ValueError, match="unknown scaling 'minmax': one of schema_log, federated_minmax"):
        federation_scaling("minmax", KDD99.schema, _no_client_stats)
