"""A run whose training records hold extreme finite values (a corrupt counter, a unit mix-up)
trains without NaN, and its detector flags such values in new traffic."""

import gzip

import numpy as np
import pytest
from helpers.synthetic import synthetic_frame
from hydra import compose, initialize

from helpers.kdd import KDD99
from fdagmm.detection.detector import Detector
from fdagmm.detection.scoring import score_file
from fdagmm.run.experiment import train


# The feature a new record puts far outside each scaling's range: with federated_minmax any
# feature beyond its training range; with schema_log's log-scaled counts nothing finite is
# (log1p(1e300) = 691), only a rate or an indicator; the fitted scalings follow schema_log's
# (federated_quantile's ranks are computed from it, and its model.pt carries their map).
@pytest.mark.parametrize(
    "scaling, new_feature",
    [("federated_minmax", "dst_bytes"), ("schema_log", "serror_rate"), ("federated_standard", "serror_rate"), ("federated_quantile", "serror_rate")],
)
def test_extreme_finite_training_values_train_without_nan_and_are_flagged_when_scored(tmp_path, scaling, new_feature):
    frame = synthetic_frame(3000, seed=1)
    attacks = np.flatnonzero(frame[KDD99.label] != KDD99.normal_label)
    # Both ends of float64 in one column: max - min overflows to inf unless scaling avoids it.
    frame.loc[attacks[:20], "src_bytes"] = 1.7976931348623157e308
    frame.loc[attacks[20:40], "src_bytes"] = -1.7976931348623157e308
    frame.loc[attacks[40:60], "duration"] = 1e300
    frame[KDD99.label] = frame[KDD99.label] + "."
    path = tmp_path / "extreme.csv.gz"
    with gzip.open(path, "wt") as f:
        frame.to_csv(f, header=False, index=False)
    with initialize(version_base="1.3", config_path="../../../conf"):
        cfg = compose(
            config_name="config",
            overrides=[f"data.train_path={path}", "data.cache_dir=null", f"paths.output_dir={tmp_path / 'run'}",
                       "trainer.accelerator=cpu", "data.batch_size=256", "scenario=s4", "fed.rounds=2", f"data.scaling={scaling}"],
        )  # fmt: skip
    payload = train(cfg)
    assert all(np.isfinite(v) for h in payload["history"] for k, v in h.items() if k.startswith(("train/", "test/")))
    assert all(np.isfinite(v) for v in payload["final"].values())

    # New traffic: an ordinary record and one beyond float32, far outside the scaling's range.
    new = frame.iloc[:2].copy()
    new.loc[new.index[1], new_feature] = 1e300
    source = tmp_path / "new.csv"
    new.to_csv(source, header=False, index=False)
    detector = Detector.load(tmp_path / "run")
    summary = score_file(detector, source, tmp_path / "scores.csv", detector.threshold, 100, "fail", show_progress=False)
    assert summary.n_out_of_range == 1 and summary.out_of_range[0][0] == 2
