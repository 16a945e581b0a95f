"""The encoder on records with any finite numbers: training records encode into [0, 1], any
record into finite values, and a value far outside the training range is clipped and named;
with the schema's fixed scaling, any record encodes finite and its counts on the log scale."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from helpers.kdd_fuzz import FINITE_NUMBERS

from fdagmm.data.features import OUT_OF_RANGE, FeatureEncoder, Scaling, ScalingStats
from helpers.kdd import KDD99

pytestmark = pytest.mark.fuzz

N_NUMERIC = len(KDD99.numeric_features)


@st.composite
def frames(draw, max_records: int = 6) -> pd.DataFrame:
    """Records with any finite numbers (extremes and negatives included) and known or unknown categories."""
    n = draw(st.integers(1, max_records))
    numbers = draw(arrays(np.float64, (n, N_NUMERIC), elements=FINITE_NUMBERS.map(float), fill=st.just(0.0)))
    frame = pd.DataFrame(numbers, columns=KDD99.numeric_features)
    for column, vocabulary in KDD99.categories.items():
        frame[column] = draw(st.lists(st.sampled_from([*vocabulary, "unknown"]), min_size=n, max_size=n))
    return frame[list(KDD99.features)]


@given(train=frames())
def test_training_records_encode_into_the_unit_interval(train):
    encoder = FeatureEncoder(Scaling.of_stats(ScalingStats.of(train, KDD99.schema, "federated_minmax")), KDD99.schema)
    x = encoder.transform(train)
    assert np.isfinite(x).all() and (x >= 0).all() and (x <= 1).all()
    assert not encoder.out_of_range(train).any()


@given(train=frames(), scored=frames())
def test_any_record_encodes_finite_and_only_values_out_of_range_are_clipped(train, scored):
    encoder = FeatureEncoder(Scaling.of_stats(ScalingStats.of(train, KDD99.schema, "federated_minmax")), KDD99.schema)
    x = encoder.transform(scored)[:, :N_NUMERIC]
    beyond = encoder.out_of_range(scored)
    assert np.isfinite(x).all() and (np.abs(x) <= OUT_OF_RANGE).all()
    assert (np.abs(x[beyond]) == np.float32(OUT_OF_RANGE)).all()
    # Every other value is exactly (value - min) / (max - min) (a constant feature: value - min),
    # wherever that is finite in float64 and no subnormal number (halving one rounds) is involved.
    values = scored[KDD99.numeric_features].to_numpy(dtype=np.float64)
    low, high = encoder.scaling.minimum, encoder.scaling.maximum
    with np.errstate(over="ignore", invalid="ignore"):
        span = high - low
        expected = (values - low) / np.where(span > 0, span, 1.0)
        normal = [(a == 0) | (np.abs(a) >= 4 * np.finfo(np.float64).tiny) for a in (values, low, high, span, values - low)]
    exact = ~beyond & np.isfinite(expected) & np.isfinite(span) & np.logical_and.reduce(np.broadcast_arrays(*normal))
    np.testing.assert_array_equal(x[exact], expected[exact].astype(np.float32))


@given(scored=frames())
def test_with_the_schema_scaling_any_record_encodes_finite_and_counts_are_never_out_of_range(scored):
    encoder = FeatureEncoder(Scaling.of_schema(KDD99.schema), KDD99.schema)
    x = encoder.transform(scored)[:, :N_NUMERIC]
    assert np.isfinite(x).all()
    log_scaled = encoder.scaling.log_scaled
    assert not encoder.out_of_range(scored)[:, log_scaled].any()  # log1p of any float64 is below 710
    values = scored[KDD99.numeric_features].to_numpy(dtype=np.float64)[:, log_scaled]
    expected = np.sign(values) * np.log1p(np.abs(values)) / encoder.scaling.maximum[log_scaled]
    np.testing.assert_allclose(x[:, log_scaled], expected, rtol=1e-6, atol=1e-30)
