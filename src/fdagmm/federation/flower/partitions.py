"""Partition files: the records one organisation holds, as its SuperNode reads them.

A partition file holds one client's raw training and test records (the 41 KDDCUP99
features, test labels as a flag), not an encoding: each ClientApp reports the min/max of
its own training records (``ScalingStats``), the ServerApp combines them, and every client
encodes with the combined bounds, exactly as the in-process backend does.
``write_partitions`` stands in for the organisations: it splits the KDD file by the
configured partition (the ``prepare`` step of a deployment).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig

from fdagmm.config import build
from fdagmm.data.datamodule import ClientRecords, client_records, record_counts
from fdagmm.data.kdd99 import KDD99
from fdagmm.serialization import load_payload, save_payload

FORMAT_VERSION = 1


def write_partitions(cfg: DictConfig, out_dir: Path) -> tuple[list[Path], dict[str, dict[str, int]]]:
    """``out_dir/client<k>.pt`` for every client of the partition; returns the paths and the
    record counts (as metrics.json's ``partition``)."""
    d = cfg.data
    records = client_records(d.path, d.variant, d.data_dir, d.cache_dir, build(cfg.partition), cfg.seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for r in records:
        path = out_dir / f"client{r.client_id}.pt"
        save_payload(
            path,
            {
                "format": FORMAT_VERSION,
                "client_id": r.client_id,
                "train": _columns(r.train),
                "test": _columns(r.test),
                "test_is_anomaly": torch.from_numpy(r.test_is_anomaly),
            },
        )
        paths.append(path)
    return paths, {f"client{r.client_id}": record_counts(len(r.train_idx), r.test_is_anomaly) for r in records}


def load_partition(path: Path) -> ClientRecords:
    if not path.is_file():
        raise FileNotFoundError(f"no partition file at {path}: check the SuperNode's --node-config data-path")
    p = load_payload(path, "partition file", FORMAT_VERSION, "write it again with fed.flower.prepare_only=true")
    train, test = _frame(p["train"]), _frame(p["test"])
    return ClientRecords(
        client_id=p["client_id"],
        frame=pd.concat([train, test], ignore_index=True),
        train_idx=np.arange(len(train)),
        test_idx=np.arange(len(train), len(train) + len(test)),
        test_is_anomaly=p["test_is_anomaly"].numpy(),
    )


def _columns(frame: pd.DataFrame) -> dict:
    """A frame as tensors and short lists of strings (what ``torch.load(weights_only=True)``
    reads); a categorical column as its distinct values and one code per record, which
    loads far faster than a string per record."""
    columns = {"numeric": torch.from_numpy(frame[KDD99.numeric_features].to_numpy(dtype="float64"))}
    for c in KDD99.categorical_features:
        codes, values = pd.factorize(frame[c].astype(str))
        columns[c] = {"values": values.tolist(), "codes": torch.from_numpy(codes)}
    return columns


def _frame(columns: dict) -> pd.DataFrame:
    frame = pd.DataFrame(columns["numeric"].numpy(), columns=KDD99.numeric_features)
    for c in KDD99.categorical_features:
        frame[c] = np.asarray(columns[c]["values"], dtype=object)[columns[c]["codes"].numpy()]
    return frame
