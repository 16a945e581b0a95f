"""The exported detector: one file with everything needed to score new records.

Every training run saves ``model.pt`` in its run dir: the network's weights and shape, the
scoring mixture, the data set's name and schema (its columns, kinds, vocabularies, labels),
the scaling bounds, the threshold and the config that produced it. Loading it needs no
training data; it is read with ``torch.load(weights_only=True)``, so it holds tensors and
plain data only. A model.pt of format 1 (written before a model knew its data set) loads as
a KDDCUP99 model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from fdagmm.models.dagmm import DAGMM, GaussianMixture
from fdagmm.errors import DataError
from fdagmm.detection.evaluation import energies
from fdagmm.data.features import FeatureEncoder, Scaling
from fdagmm.data import kdd99
from fdagmm.data.schema import TableSchema
from fdagmm.serialization import load_payload, save_payload

MODEL_FILE = "model.pt"
FORMAT_VERSION = 2
# Format 1: KDDCUP99 models, from before model.pt recorded its data set.
KDD99_FORMAT = 1
# Resolution of the stored reference-energy quantiles (for a new anomaly_ratio when scoring).
N_QUANTILES = 10001


@dataclass
class Detector:
    dataset: str  # the data set's name (data.name)
    net: DAGMM
    net_kwargs: dict
    mixture: GaussianMixture
    encoder: FeatureEncoder
    cov_jitter: float
    threshold: float  # energy above which a record is flagged
    anomaly_ratio: float  # the ratio the threshold was set for
    reference_quantiles: np.ndarray  # reference energies at quantiles linspace(0, 1, N_QUANTILES)
    config: str  # the training run's resolved config, YAML

    def chosen_threshold(self, threshold: float | None, anomaly_ratio: float | None) -> float:
        """A threshold given as such, else the one for ``anomaly_ratio``, else the model's own."""
        if threshold is not None:
            return threshold
        return self.threshold if anomaly_ratio is None else self.threshold_for(anomaly_ratio)

    def threshold_for(self, anomaly_ratio: float) -> float:
        """The (1 - anomaly_ratio) quantile of the training run's reference energies."""
        levels = np.linspace(0.0, 1.0, len(self.reference_quantiles))
        return float(np.interp(1.0 - anomaly_ratio, levels, self.reference_quantiles))

    def energy(self, frame: pd.DataFrame) -> np.ndarray:
        x = torch.from_numpy(self.encoder.transform(frame))
        return energies(self.net, x, self.mixture, self.cov_jitter)

    def save(self, path: Path) -> None:
        scaling = self.encoder.scaling
        payload = {
            "format": FORMAT_VERSION,
            "net_kwargs": self.net_kwargs,
            # float32 as trained, also from a loaded (float64) detector
            "net_state": {k: v.detach().cpu().float() if v.is_floating_point() else v.detach().cpu() for k, v in self.net.state_dict().items()},
            "mixture": {"phi": self.mixture.phi.cpu(), "mu": self.mixture.mu.cpu(), "sigma": self.mixture.sigma.cpu()},
            "scaling": {
                "minimum": torch.from_numpy(scaling.minimum),
                "maximum": torch.from_numpy(scaling.maximum),
                "log_scaled": torch.from_numpy(scaling.log_scaled),
                **({"cdf": torch.from_numpy(scaling.cdf)} if scaling.cdf is not None else {}),
            },
            "dataset": self.dataset,
            "schema": self.encoder.schema.to_dict(),
            "columns": list(self.encoder.schema.features),
            "cov_jitter": self.cov_jitter,
            "threshold": self.threshold,
            "anomaly_ratio": self.anomaly_ratio,
            "reference_quantiles": torch.from_numpy(self.reference_quantiles),
            "config": self.config,
        }
        save_payload(path, payload)

    @classmethod
    def load(cls, path: str | Path) -> Detector:
        """Load ``model.pt``, or the one in a run dir."""
        path = Path(path)
        if path.is_dir():
            path = path / MODEL_FILE
        if not path.is_file():
            raise DataError(f"no model at {path}: pass model=<run dir> of a finished training run, or its {MODEL_FILE}")
        p = load_payload(path, "model", (FORMAT_VERSION, KDD99_FORMAT), "export it again by training with this version")
        if p["format"] == KDD99_FORMAT:
            schema = kdd99.schema()
            if list(p["categories"]) != schema.categorical_features:
                raise DataError(f"{path}: a model.pt of format 1 is a KDDCUP99 model, and its categorical columns {list(p['categories'])} are not KDDCUP99's: train it again")
            dataset = kdd99.NAME
        else:
            schema = TableSchema.from_dict(p["schema"], source=f"{path}'s schema")
            dataset = p["dataset"]
        net = DAGMM(**p["net_kwargs"])
        net.load_state_dict(p["net_state"])
        net.double().eval()  # scoring runs in float64 (evaluation.latent): converted once, here
        minimum = p["scaling"]["minimum"].numpy()
        # A model.pt exported before data.scaling existed scaled every feature linearly.
        log_scaled = p["scaling"]["log_scaled"].numpy() if "log_scaled" in p["scaling"] else np.zeros(len(minimum), dtype=bool)
        cdf = p["scaling"]["cdf"].numpy() if "cdf" in p["scaling"] else None
        scaling = Scaling(minimum, p["scaling"]["maximum"].numpy(), log_scaled, cdf)
        return cls(
            dataset=dataset,
            net=net,
            net_kwargs=p["net_kwargs"],
            mixture=GaussianMixture(**p["mixture"]),
            encoder=FeatureEncoder(scaling, schema),
            cov_jitter=p["cov_jitter"],
            threshold=p["threshold"],
            anomaly_ratio=p["anomaly_ratio"],
            reference_quantiles=p["reference_quantiles"].numpy(),
            config=p["config"],
        )
