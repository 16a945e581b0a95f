"""score_file on generated KDDCUP99-shaped files: every line scored with a finite energy or
reported, never NaN or inf in the output, and a record far outside the training range flagged."""

import io

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from helpers.kdd_fuzz import assert_one_line_naming_a_line, kdd_files
from helpers.synthetic import synthetic_frame
from rich.console import Console

from fdagmm.data.features import FeatureEncoder, Scaling, ScalingStats
from helpers.kdd import KDD99
from fdagmm.detection.detector import N_QUANTILES, Detector
from fdagmm.detection.evaluation import anomaly_threshold, dataset_gmm_stats, energies
from fdagmm.detection.scoring import print_summary, score_file
from fdagmm.errors import DataError
from fdagmm.models.dagmm import DAGMM, mixture_from_stats

JITTER = 1e-6


@pytest.fixture(scope="module")
def detector() -> Detector:
    """A detector of a DAGMM with random weights, its mixture and threshold fitted on synthetic
    training records: enough for the properties of scoring, which do not depend on training."""
    train = synthetic_frame(300, seed=0)
    encoder = FeatureEncoder(Scaling.of_stats(ScalingStats.of(train, KDD99.schema, "federated_minmax")), KDD99.schema)
    torch.manual_seed(0)
    net_kwargs = {"input_dim": encoder.dim}
    net = DAGMM(**net_kwargs).eval()
    x = torch.from_numpy(encoder.transform(train))
    mixture = mixture_from_stats(dataset_gmm_stats(net, x))
    reference = energies(net, x, mixture, JITTER)
    return Detector(
        dataset="kdd99",
        net=net, net_kwargs=net_kwargs, mixture=mixture, encoder=encoder, cov_jitter=JITTER,
        threshold=anomaly_threshold(reference, 0.2), anomaly_ratio=0.2,
        reference_quantiles=np.quantile(reference, np.linspace(0.0, 1.0, N_QUANTILES)), config="",
    )  # fmt: skip


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    directory = tmp_path_factory.mktemp("scoring")
    return directory / "traffic.csv", directory / "scores.csv"


def _score(detector, paths, data: bytes, chunk_size=100, on_bad_line="skip"):
    source, output = paths
    source.write_bytes(data)
    output.unlink(missing_ok=True)
    return score_file(detector, source, output, detector.threshold, chunk_size, on_bad_line, show_progress=False)


def _read_scores(path) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=False, dtype={"out_of_range": str, "label": str})


@pytest.mark.fuzz
@given(file=kdd_files(), chunk_size=st.integers(1, 8))
def test_every_line_is_scored_finite_or_reported(detector, paths, file, chunk_size):
    try:
        summary = _score(detector, paths, file.data, chunk_size)
    except DataError as e:  # only a file none of whose first lines is a record
        assert_one_line_naming_a_line(e, file.damaged)
        return
    scores = _read_scores(paths[1])
    assert np.isfinite(scores["energy"].to_numpy(dtype=np.float64)).all()
    bad = [n for n, _ in summary.bad_lines]
    accounted = scores["line"].tolist() + bad
    assert len(accounted) == len(set(accounted))  # no line twice
    assert set(range(1, file.n_lines + 1)) - set(accounted) <= file.damaged  # only a blank line is passed over
    assert set(bad) <= file.damaged
    out_of_range = scores["out_of_range"] != ""
    assert (scores["is_anomaly"][out_of_range] == 1).all()
    assert summary.n_out_of_range == out_of_range.sum() and summary.n_flagged == scores["is_anomaly"].sum()
    assert [n for n, _ in summary.out_of_range] == scores["line"][out_of_range].tolist()[:10]


@pytest.mark.fuzz
@given(file=kdd_files())
def test_a_bad_line_stops_the_scoring_with_its_number(detector, paths, file):
    try:
        summary = _score(detector, paths, file.data, on_bad_line="fail")
    except DataError as e:
        assert_one_line_naming_a_line(e, file.damaged)
        assert not paths[1].exists()
        return
    assert not summary.bad_lines
    assert np.isfinite(_read_scores(paths[1])["energy"].to_numpy(dtype=np.float64)).all()


def _lines(frame: pd.DataFrame) -> list[str]:
    return [",".join([*(str(v) for v in row[:-1]), row[-1] + "."]) + "\n" for row in frame.itertuples(index=False)]


def test_a_value_far_outside_the_training_range_is_flagged_with_its_reason(detector, paths):
    records = synthetic_frame(20, seed=1)
    records[KDD99.label] = ["normal", "smurf"] * 10  # both classes: the summary's metrics too
    records.loc[5, "src_bytes"] = 1e308
    records.loc[7, "count"] = -1e300
    summary = _score(detector, paths, "".join(_lines(records)).encode())
    scores = _read_scores(paths[1])
    assert np.isfinite(scores["energy"]).all() and len(scores) == 20
    assert scores["out_of_range"].tolist() == [""] * 5 + ["src_bytes", "", "count"] + [""] * 12
    assert scores["is_anomaly"][[5, 7]].tolist() == [1, 1]
    assert summary.n_out_of_range == 2 and np.isfinite(list(summary.metrics.values())).all()
    j = KDD99.numeric_features.index("src_bytes")
    low, high = detector.encoder.scaling.minimum[j], detector.encoder.scaling.maximum[j]
    assert summary.out_of_range[0] == (6, f"src_bytes 1e+308 (scaling range {low:g} to {high:g})")
    console = Console(file=io.StringIO(), width=1000)
    print_summary(summary, paths[1], console, "normal")
    assert "2 records far outside the scaling range, flagged as anomalies (column out_of_range): line 6: src_bytes 1e+308" in console.file.getvalue()


def test_a_value_a_thousand_training_spans_away_is_scored_as_it_is(detector, paths):
    j = KDD99.numeric_features.index("src_bytes")
    low, high = detector.encoder.scaling.minimum[j], detector.encoder.scaling.maximum[j]
    records = synthetic_frame(2, seed=2)
    records.loc[0, "src_bytes"] = high + 1000 * (high - low)  # unusual, not out of range
    summary = _score(detector, paths, "".join(_lines(records)).encode())
    assert summary.n_out_of_range == 0
    assert _read_scores(paths[1])["out_of_range"].tolist() == ["", ""]
