"""Partition files: the records one organisation holds, as its SuperNode reads them.

A partition file holds one client's raw training and test records (the 41 KDDCUP99
features, test labels as a flag), not an encoding: every client encodes with the scaling the
ServerApp sends (fixed by the schema, or with ``data.scaling=federated_minmax`` combined from
each ClientApp's min/max of its own training records), exactly as the in-process backend does.
``write_partitions`` stands in for the organisations: it splits the KDD file by the
configured partition (the ``prepare`` step of a deployment).

Encoding a large partition takes seconds (1.5 s for s3's client 1 on a 2-core machine), and
Flower starts a fresh ClientApp process for every message, so ``encoded_partition`` encodes
once per set of scaling bounds and memory-maps the encoded copy in every later message.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig

from fdagmm.config import build
from fdagmm.data.datamodule import (
    ClientData,
    ClientRecords,
    client_records,
    encode_client,
    record_counts,
)
from fdagmm.data.features import FeatureEncoder, Scaling
from fdagmm.data.kdd99 import KDD99
from fdagmm.serialization import load_payload, save_payload

FORMAT_VERSION = 1
# Where a ClientApp keeps its encoded copies: <output-dir>/flower/encoded (on its own site).
ENCODED_DIR = Path("flower") / "encoded"


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


def encoded_partition(path: Path, scaling: Scaling, cache_dir: Path) -> ClientData:
    """The partition file's records encoded with ``scaling``, memory-mapped from an encoded
    copy under ``cache_dir`` (written on first use). The copy is keyed by the file's identity
    and the scaling, so a rewritten file or other bounds never read a stale copy."""
    path = path.resolve()
    if not path.is_file():
        raise FileNotFoundError(f"no partition file at {path}: check the SuperNode's --node-config data-path")
    stat = path.stat()
    key = hashlib.sha256(
        f"{FORMAT_VERSION}|{path}|{stat.st_size}|{stat.st_mtime_ns}".encode()
        + scaling.minimum.tobytes() + scaling.maximum.tobytes() + scaling.log_scaled.tobytes()
    ).hexdigest()[:16]
    entry = cache_dir / key
    if not (entry / "client.json").is_file():
        records = load_partition(path)
        data = encode_client(records, FeatureEncoder(scaling))
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=cache_dir, prefix=f".{key}-"))
        np.save(tmp / "train_x.npy", data.train_x.numpy())
        np.save(tmp / "test_x.npy", data.test_x.numpy())
        np.save(tmp / "test_is_anomaly.npy", data.test_is_anomaly)
        (tmp / "client.json").write_text(json.dumps({"client_id": data.client_id}))
        try:
            os.replace(tmp, entry)  # whole or absent, also if the process dies mid-write
        except OSError:  # written meanwhile by another process: keep that one
            shutil.rmtree(tmp, ignore_errors=True)
    # mode "c" (copy-on-write): pages are read on demand and shared between processes, and
    # the arrays are writable without ever changing the file.
    return ClientData(
        client_id=json.loads((entry / "client.json").read_text())["client_id"],
        train_x=torch.from_numpy(np.load(entry / "train_x.npy", mmap_mode="c")),
        test_x=torch.from_numpy(np.load(entry / "test_x.npy", mmap_mode="c")),
        test_is_anomaly=np.load(entry / "test_is_anomaly.npy"),
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
