"""A data set's files read once: the parse cache.

Parsing a large file takes seconds to minutes, and every job of a sweep would parse it again;
with a cache dir, a parsed and validated file is kept as arrays keyed by the SHA-256 of its
bytes and the schema it was read with, and a later run loads those. A changed file or a
changed schema is parsed afresh, whatever the file's name or date.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from fdagmm.data.reading import Table, read_table
from fdagmm.data.schema import TableSchema
from fdagmm.serialization import atomic_dir

log = logging.getLogger(__name__)

FORMAT_VERSION = 2


def load_table(path: Path, schema: TableSchema, cache_dir: Path | None) -> Table:
    """``read_table(path, schema)``, or the arrays a previous call stored for the same file
    bytes and schema."""
    if cache_dir is None or not path.is_file():  # no file: the reader says so in one line
        return read_table(path, schema)
    entry = cache_dir / f"{schema.name}-{schema.digest[:8]}-{file_digest(path)[:24]}"
    if entry.is_dir():
        try:
            return _load(entry)
        except (OSError, ValueError, KeyError) as e:  # a damaged entry is rebuilt, not trusted
            log.warning("rebuilding the damaged data cache %s (%s)", entry, e)
            shutil.rmtree(entry, ignore_errors=True)
    table = read_table(path, schema)
    _store(table, schema, entry)
    return table


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _store(table: Table, schema: TableSchema, entry: Path) -> None:
    frame = table.frame
    numeric = schema.numeric_features
    text = [c for c in frame.columns if c not in numeric]
    with atomic_dir(entry) as tmp:  # a reader sees a whole entry or none; another process's first one stays
        np.save(tmp / "numeric.npy", frame[numeric].to_numpy(dtype=np.float64))
        vocabularies = {}
        codes = np.zeros((len(frame), len(text)), dtype=np.int32)
        for j, c in enumerate(text):
            codes[:, j], uniques = pd.factorize(frame[c], sort=True)
            vocabularies[c] = [str(v) for v in uniques]
        np.save(tmp / "codes.npy", codes)
        meta = {
            "format": FORMAT_VERSION, "n_records": len(frame), "columns": list(frame.columns), "numeric": numeric,
            "vocabularies": vocabularies, "n_dropped": table.n_dropped, "n_clipped": table.n_clipped,
        }  # fmt: skip
        (tmp / "meta.json").write_text(json.dumps(meta))


def _load(entry: Path) -> Table:
    meta = json.loads((entry / "meta.json").read_text())
    if meta["format"] != FORMAT_VERSION:
        raise ValueError(f"cache format {meta['format']}, expected {FORMAT_VERSION}")
    numeric = np.load(entry / "numeric.npy")
    codes = np.load(entry / "codes.npy")
    vocabularies = meta["vocabularies"]
    if numeric.shape != (meta["n_records"], len(meta["numeric"])) or codes.shape != (meta["n_records"], len(vocabularies)):
        raise ValueError("arrays of the wrong shape")
    frame = pd.DataFrame(numeric, columns=meta["numeric"], copy=False)  # one block: no per-column copies
    for j, (column, vocabulary) in enumerate(vocabularies.items()):
        frame[column] = pd.Categorical.from_codes(codes[:, j], categories=vocabulary)
    return Table(frame[meta["columns"]], meta["n_dropped"], meta["n_clipped"])
