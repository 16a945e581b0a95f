"""Partition files: the records one organisation holds, as its SuperNode reads them.

A partition file holds one client's raw training and test records (the data set's features,
test labels as a flag) and the data set's schema, not an encoding: every client encodes with
its schema and the scaling the ServerApp sends (fixed by the schema, or with
``data.scaling=federated_minmax`` combined from each ClientApp's min/max of its own training
records), exactly as the in-process backend does. ``write_partitions`` stands in for the
organisations: it splits the data set by the configured partition (the ``prepare`` step of a
deployment).

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
from fdagmm.data.datamodule import (
    ClientData,
    ClientRecords,
    client_records,
    encode_client,
    record_counts,
)
from fdagmm.data.dataset import ConnectionDataset
from fdagmm.data.features import FeatureEncoder, Scaling
from fdagmm.data.partition import Partitioner
from fdagmm.data.schema import TableSchema
from fdagmm.serialization import load_payload, save_payload

FORMAT_VERSION = 2
# Where a ClientApp keeps its encoded copies: <output-dir>/flower/encoded (on its own site).
ENCODED_DIR = Path("flower") / "encoded"


def write_partitions(
    dataset: ConnectionDataset, partitioner: Partitioner, seed: int, out_dir: Path
) -> tuple[list[Path], dict[str, dict[str, int]]]:
    """``out_dir/client<k>.pt`` for every client of the partition; returns the paths and the
    record counts (as metrics.json's ``partition``)."""
    records = client_records(dataset, partitioner, seed)
    schema = dataset.schema
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for r in records:
        path = out_dir / f"client{r.client_id}.pt"
        save_payload(
            path,
            {
                "format": FORMAT_VERSION,
                "client_id": r.client_id,
                "schema": schema.to_dict(),
                "train": _columns(r.train, schema),
                "test": _columns(r.test, schema),
                "test_is_anomaly": torch.from_numpy(r.test_is_anomaly),
            },
        )
        paths.append(path)
    return paths, {f"client{r.client_id}": record_counts(len(r.train_idx), r.test_is_anomaly) for r in records}


def load_partition(path: Path) -> tuple[ClientRecords, TableSchema]:
    """A partition file's records and the schema they were written with."""
    if not path.is_file():
        raise FileNotFoundError(f"no partition file at {path}: check the SuperNode's --node-config data-path")
    p = load_payload(path, "partition file", FORMAT_VERSION, "write it again with fed.flower.prepare_only=true")
    schema = TableSchema.from_dict(p["schema"], source=f"{path}'s schema")
    train, test = _frame(p["train"], schema), _frame(p["test"], schema)
    records = ClientRecords(
        client_id=p["client_id"],
        train_frame=train,
        train_idx=np.arange(len(train)),
        test_frame=test,
        test_idx=np.arange(len(test)),
        test_is_anomaly=p["test_is_anomaly"].numpy(),
    )
    return records, schema


def encoded_partition(path: Path, scaling: Scaling, cache_dir: Path) -> tuple[ClientData, FeatureEncoder]:
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
    records, schema = load_partition(path)  # the schema, and on first use the records to encode
    encoder = FeatureEncoder(scaling, schema)
    if not (entry / "client.json").is_file():
        data = encode_client(records, encoder)
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
    data = ClientData(
        client_id=json.loads((entry / "client.json").read_text())["client_id"],
        train_x=torch.from_numpy(np.load(entry / "train_x.npy", mmap_mode="c")),
        test_x=torch.from_numpy(np.load(entry / "test_x.npy", mmap_mode="c")),
        test_is_anomaly=np.load(entry / "test_is_anomaly.npy"),
    )
    return data, encoder


def _columns(frame: pd.DataFrame, schema: TableSchema) -> dict:
    """A frame's features as tensors and short lists of strings (what
    ``torch.load(weights_only=True)`` reads); a categorical column as its distinct values and
    one code per record, which loads far faster than a string per record."""
    columns = {"numeric": torch.from_numpy(frame[schema.numeric_features].to_numpy(dtype="float64"))}
    for c in schema.categorical_features:
        codes, values = pd.factorize(frame[c].astype(str))
        columns[c] = {"values": values.tolist(), "codes": torch.from_numpy(codes)}
    return columns


def _frame(columns: dict, schema: TableSchema) -> pd.DataFrame:
    frame = pd.DataFrame(columns["numeric"].numpy(), columns=schema.numeric_features)
    for c in schema.categorical_features:
        frame[c] = np.asarray(columns[c]["values"], dtype=object)[columns[c]["codes"].numpy()]
    return frame
