"""Encoding: fixed vocabulary one-hot, min-max bounds from training records, combinable stats."""

import numpy as np

from fdagmm.data.features import FeatureEncoder, Scaling, ScalingStats
from helpers.kdd import KDD99


def test_encoding_layout_and_ranges(kdd_frame):
    train = kdd_frame.iloc[:50_000]
    encoder = FeatureEncoder(Scaling.of_stats(ScalingStats.of(train, KDD99.schema, "federated_minmax")), KDD99.schema)
    x = encoder.transform(train)
    assert x.shape == (50_000, 38 + 3 + 70 + 11) == (50_000, encoder.dim)
    assert len(encoder.feature_names) == encoder.dim
    numeric, onehot = x[:, : len(KDD99.numeric_features)], x[:, len(KDD99.numeric_features) :]
    assert numeric.min() >= 0.0 and numeric.max() <= 1.0
    np.testing.assert_array_equal(onehot.sum(axis=1), 3.0)  # one hot per categorical column
    service = encoder.feature_names.index("service=http")
    np.testing.assert_array_equal(x[:, service] == 1.0, (train["service"] == "http").to_numpy())


def test_vocabulary_does_not_depend_on_the_records(kdd_frame):
    a = FeatureEncoder(Scaling.of_stats(ScalingStats.of(kdd_frame.iloc[:100], KDD99.schema, "federated_minmax")), KDD99.schema)
    b = FeatureEncoder(Scaling.of_stats(ScalingStats.of(kdd_frame, KDD99.schema, "federated_minmax")), KDD99.schema)
    assert a.feature_names == b.feature_names
    assert a.dim == len(KDD99.numeric_features) + sum(len(v) for v in KDD99.categories.values())


def test_combined_client_stats_equal_the_union(kdd_frame):
    parts = [kdd_frame.iloc[:1000], kdd_frame.iloc[1000:250_000], kdd_frame.iloc[250_000:]]
    combined = ScalingStats.combine([ScalingStats.of(p, KDD99.schema, "federated_minmax") for p in parts])
    union = ScalingStats.of(kdd_frame, KDD99.schema, "federated_minmax")
    np.testing.assert_array_equal(combined.minimum, union.minimum)
    np.testing.assert_array_equal(combined.maximum, union.maximum)
    assert combined.n_records == union.n_records == len(kdd_frame)


def test_test_records_use_training_bounds_and_constant_features_map_to_zero(kdd_frame):
    train, test = kdd_frame.iloc[:1000], kdd_frame.iloc[1000:2000]
    encoder = FeatureEncoder(Scaling.of_stats(ScalingStats.of(train, KDD99.schema, "federated_minmax")), KDD99.schema)
    x = encoder.transform(test)
    column = KDD99.numeric_features.index("num_outbound_cmds")  # constant 0 in this file
    np.testing.assert_array_equal(x[:, column], 0.0)
    j = KDD99.numeric_features.index("src_bytes")
    lo, hi = train["src_bytes"].min(), train["src_bytes"].max()
    np.testing.assert_allclose(x[:, j], (test["src_bytes"] - lo) / (hi - lo), rtol=1e-6)
