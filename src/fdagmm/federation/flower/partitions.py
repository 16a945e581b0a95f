"""The records one organisation holds, as its SuperNode reads them: its own files, or a
partition file.

A SuperNode's ``--node-config`` names them (``NodeData``). An organisation's own files
(``client-id``, ``data-path`` and optionally ``test-path``) are read with the run's data set,
as ``partition=files`` reads them in process (``site_records``): nobody else reads them. A
partition file holds one client's raw training and test records (the data set's features,
test labels as a flag) and the data set's schema: ``write_partitions`` stands in for the
organisations when one data set is split into clients (the ``prepare`` step of a simulated
deployment). Either way, every client encodes with its schema and the scaling the ServerApp
sends, exactly as the in-process backend does.

Encoding a large partition takes seconds (1.5 s for s3's client 1 on a 2-core machine), and
Flower starts a fresh ClientApp process for every message, so ``encoded_partition`` encodes
once per set of scaling bounds and memory-maps the encoded copy in every later message.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig

from fdagmm.data.datamodule import (
    ClientData,
    ClientRecords,
    client_records,
    encode_client,
    record_counts,
    site_records,
)
from fdagmm.data.dataset import ConnectionDataset, build_dataset
from fdagmm.data.features import FeatureEncoder, Scaling
from fdagmm.data.partition import FilesPartition, Partitioner
from fdagmm.data.schema import TableSchema
from fdagmm.errors import ConfigError
from fdagmm.serialization import atomic_dir, load_payload, save_payload

FORMAT_VERSION = 2
# Where a ClientApp keeps its encoded copies: <output-dir>/flower/encoded (on its own site).
ENCODED_DIR = Path("flower") / "encoded"


@dataclass(frozen=True)
class NodeData:
    """What a SuperNode's ``--node-config`` says its records are: the organisation's own files
    (``client-id``: its number in the federation, 0 the evaluated one; ``data-path``: its
    training file(s); ``test-path``: its labelled test file(s), optional; several files
    separated by commas), or with ``data-path`` alone a partition file."""

    client_id: int | None  # None: a partition file
    data_paths: tuple[Path, ...]
    test_paths: tuple[Path, ...] = ()

    @classmethod
    def of(cls, node_config: dict) -> NodeData:
        if "data-path" not in node_config:
            raise ConfigError("the SuperNode's --node-config has no data-path: name its records' file")
        paths = lambda key: tuple(Path(p.strip()) for p in str(node_config.get(key, "")).split(",") if p.strip())  # noqa: E731
        if "client-id" not in node_config:
            if "test-path" in node_config:
                raise ConfigError("the SuperNode's --node-config has a test-path but no client-id: an organisation's own files need both")
            return cls(None, paths("data-path"))
        return cls(int(node_config["client-id"]), paths("data-path"), paths("test-path"))

    @property
    def files(self) -> tuple[Path, ...]:
        return (*self.data_paths, *self.test_paths)


def node_records(node: NodeData, cfg: DictConfig) -> tuple[ClientRecords, TableSchema]:
    """The node's records and the schema they were read with: its own files with the run's
    data set (``cfg.data``), or its partition file."""
    if node.client_id is None:
        return load_partition(node.data_paths[0])
    site, dataset = _site(node, cfg)
    return site_records(dataset, node.client_id, site.sites[0]), dataset.schema


def _site(node: NodeData, cfg: DictConfig) -> tuple[FilesPartition, ConnectionDataset]:
    spec = {"train_path": [str(p) for p in node.data_paths], "test_path": [str(p) for p in node.test_paths] or None}
    site = FilesPartition("site", [spec])
    return site, build_dataset(site.data_config(cfg.data))


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


def encoded_partition(node: NodeData, cfg: DictConfig, scaling: Scaling, cache_dir: Path) -> tuple[ClientData, FeatureEncoder]:
    """The node's records encoded with ``scaling``, memory-mapped from an encoded copy under
    ``cache_dir`` (written on first use). The copy is keyed by the files' identities, the
    client id and the scaling, so a rewritten file or another scaling never read a stale copy."""
    identity = f"{FORMAT_VERSION}|{node.client_id}"
    for path in node.files:
        path = path.resolve()
        if not path.is_file():
            raise FileNotFoundError(f"no file at {path}: check the SuperNode's --node-config data-path and test-path")
        stat = path.stat()
        identity += f"|{path}|{stat.st_size}|{stat.st_mtime_ns}"
    cdf = b"" if scaling.cdf is None else scaling.cdf.tobytes()
    key = hashlib.sha256(
        identity.encode() + scaling.minimum.tobytes() + scaling.maximum.tobytes() + scaling.log_scaled.tobytes() + cdf
    ).hexdigest()[:16]
    entry = cache_dir / key
    if not (entry / "client.json").is_file():
        records, schema = node_records(node, cfg)
        encoder = FeatureEncoder(scaling, schema)
        data = encode_client(records, encoder)
        with atomic_dir(entry) as tmp:  # whole or absent, also if the process dies mid-write
            np.save(tmp / "train_x.npy", data.train_x.numpy())
            np.save(tmp / "test_x.npy", data.test_x.numpy())
            np.save(tmp / "test_is_anomaly.npy", data.test_is_anomaly)
            (tmp / "client.json").write_text(json.dumps({"client_id": data.client_id}))
    else:  # the schema alone (a partition file: read whole, as it holds it)
        schema = load_partition(node.data_paths[0])[1] if node.client_id is None else _site(node, cfg)[1].schema
        encoder = FeatureEncoder(scaling, schema)
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
