"""The LightningDataModule that turns a data set and a partition into encoded client partitions."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Sampler, TensorDataset

from fdagmm.data.dataset import ConnectionDataset
from fdagmm.data.features import FeatureEncoder, ScalingStats, federation_scaling
from fdagmm.data.partition import FilesPartition, Partitioner, SiteFiles
from fdagmm.errors import ConfigError, DataError
from fdagmm.seeding import derive_seed

log = logging.getLogger(__name__)


@dataclass
class ClientData:
    """One client's encoded records: inliers to train on; inliers and anomalies to test on."""

    client_id: int
    train_x: Tensor  # (n_train, D) float32
    test_x: Tensor  # (n_test, D) float32; no rows when the data set has no labels
    test_is_anomaly: np.ndarray  # (n_test,) bool: of the data set's anomaly class

    @property
    def n_train(self) -> int:
        return len(self.train_x)

    def to(self, device: torch.device) -> ClientData:
        """The same records with their tensors on ``device`` (held there for the whole run:
        a GPU then trains and scores without copying records each round)."""
        return ClientData(self.client_id, self.train_x.to(device), self.test_x.to(device), self.test_is_anomaly)


@dataclass
class ClientRecords:
    """One client's raw records, as its organisation holds them: rows ``train_idx`` of
    ``train_frame`` (inliers to train on) and rows ``test_idx`` of ``test_frame`` (inliers and
    anomalies to test on)."""

    client_id: int
    train_frame: pd.DataFrame  # may be the whole data set, shared by every client's records
    train_idx: np.ndarray
    test_frame: pd.DataFrame  # the same frame, or the data set's test set
    test_idx: np.ndarray
    test_is_anomaly: np.ndarray  # (n_test,) bool

    # Copies made on demand, one client at a time: on the full data set, every client's
    # frames at once would double the peak memory of loading.
    @property
    def train(self) -> pd.DataFrame:
        return self.train_frame.iloc[self.train_idx]

    @property
    def test(self) -> pd.DataFrame:
        return self.test_frame.iloc[self.test_idx]


def client_records(dataset: ConnectionDataset, partitioner: Partitioner | FilesPartition, seed: int) -> list[ClientRecords]:
    """Read the data set and split it into the partitioner's clients (every client non-empty).
    With a test set of the data set's own, every client is tested on all of it, or with
    ``partition.attack_alpha`` on its own share (``Partitioner.deal_test_pool``). With
    ``partition=files`` each client reads its own files instead."""
    if isinstance(partitioner, FilesPartition):
        return [site_records(dataset, k, site) for k, site in enumerate(partitioner.sites)]
    if partitioner.attack_alpha is not None and dataset.schema.anomaly != "attacks":
        raise ConfigError(
            f"partition.attack_alpha deals attacks to the clients' test sets; data set {dataset.name} flags "
            f"{dataset.schema.anomaly} traffic (anomaly: {dataset.schema.anomaly}): set partition.attack_alpha=null"
        )
    if partitioner.group_column is not None:
        dataset = dataset.grouped_by(partitioner.group_column)
    pools = dataset.pools(seed)
    shared_test = pools.test is not None or not dataset.schema.labelled
    groups = dataset.families(pools.train) if partitioner.group_column is None else pools.train[partitioner.group_column].to_numpy(dtype=str)
    splits = partitioner.split(groups, dataset.is_anomaly(pools.train), seed, all_train=shared_test)
    if pools.test is None:
        test_frame, test_is_anomaly = pools.train, dataset.is_anomaly(pools.train)
        return [
            ClientRecords(s.client_id, pools.train, s.train_idx, test_frame, s.test_idx, test_is_anomaly[s.test_idx])
            for s in splits
        ]
    test_is_anomaly = dataset.is_anomaly(pools.test)
    dealt = partitioner.deal_test_pool(dataset.families(pools.test), test_is_anomaly, [len(s.train_idx) for s in splits], seed)
    test_rows = dealt or [np.arange(len(pools.test))] * len(splits)
    return [
        ClientRecords(s.client_id, pools.train, s.train_idx, pools.test, rows, test_is_anomaly[rows])
        for s, rows in zip(splits, test_rows)
    ]


def site_records(dataset: ConnectionDataset, client_id: int, site: SiteFiles) -> ClientRecords:
    """One organisation's records from its own files: the training files' inliers train, the
    test files (labelled) test; no test files: an empty test set (not evaluated)."""
    train = dataset.inliers(dataset.read(list(site.train_paths)), f"client {client_id}'s train_path")
    if len(train) == 0:
        raise DataError(f"client {client_id}'s train_path ({', '.join(map(str, site.train_paths))}) holds no record that trains ({dataset.role} are flagged)")
    if site.test_paths:
        if not dataset.schema.labelled:
            raise ConfigError(f"client {client_id} has a test_path, but the data set has no labels to test with (data.label_column=null)")
        test = dataset.read(list(site.test_paths))
    else:
        test = train.iloc[:0]
    rows = np.arange(len(train))
    return ClientRecords(client_id, train, rows, test, np.arange(len(test)), dataset.is_anomaly(test))


def record_counts(n_train: int, test_is_anomaly: np.ndarray) -> dict[str, int]:
    """A client's record counts, as metrics.json's ``partition`` lists them."""
    return {"n_train": n_train, "n_test": len(test_is_anomaly), "n_test_anomalies": int(test_is_anomaly.sum())}


def tested_clients(counts: dict[str, dict[str, int]], labelled: bool) -> list[int]:
    """The clients (``record_counts`` by ``client<k>``) with test records; without labels,
    every client (each measures its threshold). The log names the others: trained, not
    evaluated (``partition=files`` without a ``test_path``)."""
    ids = [int(name.removeprefix("client")) for name in counts]
    tested = [k for k in ids if counts[f"client{k}"]["n_test"] or not labelled]
    if untested := [k for k in ids if k not in tested]:
        log.info("clients %s trained and were not evaluated: they have no test records (no test_path)", untested)
    return tested


def encode_client(records: ClientRecords, encoder: FeatureEncoder) -> ClientData:
    return ClientData(
        client_id=records.client_id,
        train_x=torch.from_numpy(encoder.transform(records.train)),
        test_x=torch.from_numpy(encoder.transform(records.test)),
        test_is_anomaly=records.test_is_anomaly,
    )


class ShuffledBatches(Sampler[Tensor]):
    """Index tensors of the batches of a fresh random permutation each epoch.

    The same batches as ``BatchSampler(RandomSampler(...))`` with this generator, as tensors
    rather than lists of ints, so that a batch is one indexing operation. The permutation is
    drawn on the CPU (the same batches on every device) and sent to ``device`` once an epoch.
    """

    def __init__(self, n: int, batch_size: int, generator: torch.Generator, device: torch.device = torch.device("cpu")):
        self.n, self.batch_size, self.generator, self.device = n, batch_size, generator, device

    def __iter__(self) -> Iterator[Tensor]:
        return iter(torch.randperm(self.n, generator=self.generator).to(self.device).split(self.batch_size))

    def __len__(self) -> int:
        return -(-self.n // self.batch_size)


class PoissonBatches(Sampler[Tensor]):
    """``steps`` batches, each holding every record independently with probability
    ``sample_rate`` (so batches differ in size, and may be empty): the sampling DP-SGD's
    privacy amplification assumes. Drawn on the CPU from ``generator``, sent to ``device``."""

    def __init__(self, n: int, sample_rate: float, steps: int, generator: torch.Generator, device: torch.device = torch.device("cpu")):
        self.n, self.sample_rate, self.steps, self.generator, self.device = n, sample_rate, steps, generator, device

    def __iter__(self) -> Iterator[Tensor]:
        for _ in range(self.steps):
            yield (torch.rand(self.n, generator=self.generator) < self.sample_rate).nonzero().squeeze(1).to(self.device)

    def __len__(self) -> int:
        return self.steps


def poisson_batch_loader(x: Tensor, sample_rate: float, steps: int, generator: torch.Generator) -> DataLoader:
    """``PoissonBatches`` of ``x``, on the device ``x`` is on."""
    return DataLoader(TensorDataset(x), sampler=PoissonBatches(len(x), sample_rate, steps, generator, x.device), batch_size=None)


def batch_loader(x: Tensor, batch_size: int, seed: int) -> DataLoader:
    """Shuffled batches of ``x``, one tensor index per batch (no per-sample collate), on the
    device ``x`` is on."""
    batches = ShuffledBatches(len(x), batch_size, torch.Generator().manual_seed(seed), x.device)
    return DataLoader(TensorDataset(x), sampler=batches, batch_size=None)


class ClientsDataModule(pl.LightningDataModule):
    """Reads a data set, partitions it into clients (``partitioner``) and encodes each client.

    The numeric features are scaled by ``scaling`` (``features.federation_scaling``): fixed
    bounds from the schema, or (``federated_minmax``) the bounds of the training records of
    ``train_clients`` (the clients whose data the method trains on), combined from per-client
    statistics. ``train_dataloader``
    serves the union of those clients' training sets (centralised training); each client's
    encoded records are in ``clients`` (federated training).
    """

    def __init__(
        self,
        dataset: ConnectionDataset,
        batch_size: int,
        partitioner: Partitioner,
        seed: int,
        train_clients: list[int],
        scaling: str = "schema_log",
        scaling_records: str = "train",
    ):
        super().__init__()
        self.dataset = dataset
        self.batch_size = batch_size
        self.partitioner = partitioner
        self.seed = seed
        self.train_clients = list(train_clients)
        self.scaling = scaling
        self.scaling_records = scaling_records
        self.clients: list[ClientData] = []
        self.shared_test = False  # set by setup: whether every client is tested on the same records
        self.encoder: FeatureEncoder | None = None

    @property
    def input_dim(self) -> int:
        return self.encoder.dim

    def setup(self, stage: str | None = None) -> None:
        if self.clients:  # Lightning calls setup on every fit; the data is prepared once
            return
        records = client_records(self.dataset, self.partitioner, self.seed)
        schema = self.dataset.schema
        # A scaling made of records: each training client reports the statistics of its own
        # training records only (federated_minmax with scaling_records=all: of all its records).
        def client_stats() -> list[ScalingStats]:
            parts = [part for r in records for part in (r.train, r.test)] if self.scaling_records == "all" else [records[k].train for k in self.train_clients]
            return [ScalingStats.of(part, schema, self.scaling) for part in parts if len(part)]

        scaling = federation_scaling(self.scaling, schema, client_stats)
        self.encoder = FeatureEncoder(scaling, schema)
        self.clients = [encode_client(r, self.encoder) for r in records]
        # Every client tested on the same records (a data set's own test set, not dealt out).
        self.shared_test = all(r.test_frame is records[0].test_frame and np.array_equal(r.test_idx, records[0].test_idx) for r in records)

    def pooled_train_x(self) -> Tensor:
        """The training records of every client in ``train_clients``, in client order."""
        return torch.cat([self.clients[k].train_x for k in self.train_clients])

    def train_dataloader(self) -> DataLoader:
        # Batches cut where the Trainer trains: on a GPU, from records sent there once.
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        return batch_loader(self.pooled_train_x().to(device), self.batch_size, derive_seed(self.seed))

    def summary(self) -> dict[str, dict[str, int]]:
        """Record counts per client, for the log and metrics.json."""
        return {f"client{c.client_id}": record_counts(c.n_train, c.test_is_anomaly) for c in self.clients}
