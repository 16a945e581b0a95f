"""What crosses the network, as Flower records: GMM and scaling statistics, the scaling, the run's config."""

from __future__ import annotations

import json
from dataclasses import fields

import torch
from flwr.app import ArrayRecord
from omegaconf import DictConfig, OmegaConf

from fdagmm.models.dagmm import GMMStats
from fdagmm.data.features import Scaling, ScalingStats

# run_config keys, declared in src/flower_app/pyproject.toml.
CONFIG_KEY = "config"  # the resolved Hydra config, as JSON
OUTPUT_DIR_KEY = "output-dir"  # the ServerApp's run dir (metrics.json, server TensorBoard)


def gmm_stats_record(stats: GMMStats) -> ArrayRecord:
    return ArrayRecord({"s0": stats.s0, "s1": stats.s1, "s2": stats.s2, "n": torch.tensor(stats.n)})


def gmm_stats_from_record(record: ArrayRecord) -> GMMStats:
    t = record.to_torch_state_dict()
    return GMMStats(s0=t["s0"], s1=t["s1"], s2=t["s2"], n=int(t["n"]))


def _fields_record(obj: ScalingStats | Scaling) -> ArrayRecord:
    """The fields that are set (a None field is not sent)."""
    return ArrayRecord({f.name: torch.as_tensor(getattr(obj, f.name)) for f in fields(obj) if getattr(obj, f.name) is not None})


def scaling_stats_record(stats: ScalingStats) -> ArrayRecord:
    """A client's statistics of its training records for a scaling made of records."""
    return _fields_record(stats)


def scaling_stats_from_record(record: ArrayRecord) -> ScalingStats:
    t = {name: tensor.numpy() for name, tensor in record.to_torch_state_dict().items()}
    return ScalingStats(**{"minimum": None, "maximum": None, **t, "n_records": int(t["n_records"])})


def scaling_record(scaling: Scaling) -> ArrayRecord:
    """The federation's scaling, server to clients."""
    return _fields_record(scaling)


def scaling_from_record(record: ArrayRecord) -> Scaling:
    return Scaling(**{name: t.numpy() for name, t in record.to_torch_state_dict().items()})


def config_to_json(cfg: DictConfig) -> str:
    return json.dumps(OmegaConf.to_container(cfg, resolve=True))


def config_from_run(run_config: dict) -> DictConfig:
    return OmegaConf.create(json.loads(run_config[CONFIG_KEY]))
