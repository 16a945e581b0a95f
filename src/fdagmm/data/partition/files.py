"""partition=files: each client is an organisation's own files, read with the run's data set
(its schema and overrides): ``clients=[{train_path: a.csv, test_path: a_test.csv},
{train_path: b.csv}, ...]``, each path a file or a list of files.

A client's training files' inliers train (its anomalies are left out, and the log counts
them); its test files, labelled, are its test set. A client without test files trains but
is not evaluated. Nothing is split: the files are the clients, so the data set's own files
(``data.train_path``, ``data.test_path``, ``data.test_fraction``) are not read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from fdagmm.errors import ConfigError

SITE_KEYS = ("train_path", "test_path")


@dataclass(frozen=True)
class SiteFiles:
    """One organisation's files."""

    train_paths: tuple[Path, ...]
    test_paths: tuple[Path, ...]  # empty: trained, not evaluated


class FilesPartition:
    """The clients as listed: client k holds ``clients[k]``'s files."""

    def data_config(self, data: DictConfig) -> DictConfig:
        """The ``data`` config over the clients' files: every client's training files are the
        data set's (a schema inferred from them must be the same for all), and it has no test
        set of its own."""
        train = [str(p) for site in self.sites for p in site.train_paths]
        return OmegaConf.merge(data, {"train_path": train, "test_path": None, "test_fraction": None})

    def __init__(self, name: str, clients: Any):
        if isinstance(clients, (DictConfig, ListConfig)):
            clients = OmegaConf.to_container(clients, resolve=True)
        if not isinstance(clients, list) or not clients:
            raise ConfigError(
                "partition=files needs its clients' files: "
                "'partition.clients=[{train_path: a.csv, test_path: a_test.csv}, {train_path: b.csv}]'"
            )
        self.name = name
        self.sites = [_site(k, c) for k, c in enumerate(clients)]
        self.num_clients = len(self.sites)


def _site(k: int, spec: Any) -> SiteFiles:
    if not isinstance(spec, Mapping):
        raise ConfigError(f"partition.clients[{k}] must be a mapping {{train_path: ..., test_path: ...}}, got {spec!r}")
    unknown = sorted(set(spec) - set(SITE_KEYS))
    if unknown:
        raise ConfigError(f"partition.clients[{k}]: unknown keys {unknown}; a client has {' and '.join(SITE_KEYS)}")
    train = _paths(spec.get("train_path"), f"partition.clients[{k}].train_path")
    if not train:
        raise ConfigError(f"partition.clients[{k}] has no train_path: give each client its training file(s)")
    return SiteFiles(train, _paths(spec.get("test_path"), f"partition.clients[{k}].test_path"))


def _paths(value: Any, key: str) -> tuple[Path, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (Path(value),)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(Path(v) for v in value)
    raise ConfigError(f"{key} must be a file or a list of files, got {value!r}")
