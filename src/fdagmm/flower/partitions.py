"""Partition files: what one organisation holds, as a SuperNode reads it.

A partition file holds one client's encoded training and test records and the federation's
scaling bounds (combined from every training client's own min/max, ``ScalingStats``), so that
its ClientApp can encode new records and export a detector. ``write_partitions`` stands in
for the organisations: it splits the KDD file by the scenario, as the in-process backend does.
"""

from __future__ import annotations

from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from fdagmm.config import train_clients_of
from fdagmm.datamodule import ClientData, KDDClientsDataModule
from fdagmm.features import FeatureEncoder, ScalingStats
from fdagmm.serialization import load_payload, save_payload

FORMAT_VERSION = 1


def write_partitions(cfg: DictConfig, out_dir: Path) -> tuple[list[Path], dict[str, dict[str, int]]]:
    """``out_dir/client<k>.pt`` for every client of the scenario; returns the paths and counts."""
    datamodule: KDDClientsDataModule = instantiate(
        cfg.data, scenario=OmegaConf.to_container(cfg.scenario), seed=cfg.seed, train_clients=train_clients_of(cfg)
    )
    datamodule.setup()
    out_dir.mkdir(parents=True, exist_ok=True)
    scaling = datamodule.encoder.scaling
    paths = []
    for client in datamodule.clients:
        path = out_dir / f"client{client.client_id}.pt"
        save_payload(
            path,
            {
                "format": FORMAT_VERSION,
                "client_id": client.client_id,
                "train_x": client.train_x,
                "test_x": client.test_x,
                "test_is_anomaly": torch.from_numpy(client.test_is_anomaly),
                "scaling": {
                    "minimum": torch.from_numpy(scaling.minimum),
                    "maximum": torch.from_numpy(scaling.maximum),
                    "n_records": scaling.n_records,
                },
            },
        )
        paths.append(path)
    return paths, datamodule.summary()


def load_partition(path: Path) -> tuple[ClientData, FeatureEncoder]:
    if not path.is_file():
        raise FileNotFoundError(f"no partition file at {path}: check the SuperNode's --node-config data-path")
    p = load_payload(path, "partition file", FORMAT_VERSION, "write it again with fed.flower.prepare_only=true")
    scaling = ScalingStats(p["scaling"]["minimum"].numpy(), p["scaling"]["maximum"].numpy(), p["scaling"]["n_records"])
    data = ClientData(
        client_id=p["client_id"],
        train_x=p["train_x"],
        test_x=p["test_x"],
        test_is_anomaly=p["test_is_anomaly"].numpy(),
    )
    return data, FeatureEncoder(scaling)
