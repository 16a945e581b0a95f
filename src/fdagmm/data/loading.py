"""Where the data set comes from: a file, data_dir's copy or scikit-learn, and a parse cache.

Parsing the 10% file takes seconds, and every job of a sweep would parse it again; with a
cache dir, a parsed and validated file is kept as arrays keyed by the SHA-256 of its bytes,
and a later run loads those. A changed file is parsed afresh, whatever its name or date.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from fdagmm.data.kdd99 import KDD99, fetch_kdd, read_kdd_file

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
# Every column stored as codes into a fixed vocabulary: the schema's categories, the labels.
VOCABULARIES = {**KDD99.categories, KDD99.label: sorted(KDD99.known_labels)}


def load_kdd(
    path: str | None, variant: str, data_dir: str | Path, cache_dir: str | Path | None = None
) -> pd.DataFrame:
    """The data set named by the config: ``path`` if given, else ``data_dir``'s copy, else
    scikit-learn's fetcher (which keeps its own cache)."""
    local = Path(data_dir) / KDD99.variant_files[variant]
    if path is None and not local.exists():
        return fetch_kdd(variant, data_dir)
    path = Path(path) if path is not None else local
    if cache_dir is None or not path.is_file():
        return read_kdd_file(path)
    return cached_read(path, Path(cache_dir), read_kdd_file)


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def cached_read(path: Path, cache_dir: Path, read: Callable[[Path], pd.DataFrame]) -> pd.DataFrame:
    """``read(path)``, or the arrays a previous call stored for a file with the same bytes."""
    entry = cache_dir / f"kddcup99-{file_digest(path)[:24]}"
    if entry.is_dir():
        try:
            return _load(entry)
        except (OSError, ValueError, KeyError) as e:  # a damaged entry is rebuilt, not trusted
            log.warning("rebuilding the damaged data cache %s (%s)", entry, e)
            shutil.rmtree(entry, ignore_errors=True)
    frame = read(path)
    _store(frame, entry)
    return frame


def _store(frame: pd.DataFrame, entry: Path) -> None:
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=entry.parent, prefix=".tmp-"))
    np.save(tmp / "numeric.npy", frame[KDD99.numeric_features].to_numpy(dtype=np.float64))
    codes = np.stack([pd.Index(v).get_indexer(frame[c]) for c, v in VOCABULARIES.items()], axis=1)
    np.save(tmp / "codes.npy", codes.astype(np.int16))
    (tmp / "meta.json").write_text(json.dumps({"format": FORMAT_VERSION, "n_records": len(frame)}))
    try:
        os.replace(tmp, entry)  # atomic: a reader sees a whole entry or none
    except OSError:  # another process stored the same entry first
        shutil.rmtree(tmp, ignore_errors=True)


def _load(entry: Path) -> pd.DataFrame:
    meta = json.loads((entry / "meta.json").read_text())
    if meta["format"] != FORMAT_VERSION:
        raise ValueError(f"cache format {meta['format']}, expected {FORMAT_VERSION}")
    numeric = np.load(entry / "numeric.npy")
    codes = np.load(entry / "codes.npy")
    if numeric.shape != (meta["n_records"], len(KDD99.numeric_features)) or codes.shape != (meta["n_records"], len(VOCABULARIES)):
        raise ValueError("arrays of the wrong shape")
    frame = pd.DataFrame(numeric, columns=KDD99.numeric_features, copy=False)  # one block: no per-column copies
    for j, (column, vocabulary) in enumerate(VOCABULARIES.items()):
        frame[column] = pd.Categorical.from_codes(codes[:, j], categories=vocabulary)
    return frame[[*KDD99.features, KDD99.label]]
