"""Files of tensors and plain data (checkpoints, exported models): atomic writes, safe reads;
and the dirs a run writes to, checked before it starts."""

from __future__ import annotations

import os
import pickle
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from fdagmm.errors import ConfigError, DataError, first_line


@contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` for the block to write; renamed onto ``path`` when the
    block ends normally, so that a reader (or a crash) sees the previous file or the whole new
    one, never part of it; removed when the block fails."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """A temporary dir beside ``path`` for the block to fill; renamed onto ``path`` when the
    block ends normally, unless another process made ``path`` meanwhile (that one stays);
    removed when the block fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}-"))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        os.replace(tmp, path)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)


def save_payload(path: Path, payload: dict[str, Any]) -> None:
    """torch.save, atomically: a crash leaves the previous file intact."""
    with atomic_file(path) as tmp:
        torch.save(payload, tmp)


def load_payload(path: Path, kind: str, format_version: int | tuple[int, ...], remedy: str) -> dict[str, Any]:
    """Read a payload with ``weights_only=True`` (tensors and plain data, no code), checking its
    format (one version, or any of several); any failure is a one-line DataError naming
    ``kind`` and the ``remedy``."""
    versions = format_version if isinstance(format_version, tuple) else (format_version,)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, zipfile.BadZipFile) as e:
        raise DataError(f"{path} is corrupt or not an FDAGMM {kind} ({first_line(e)}): {remedy}") from e
    if not isinstance(payload, dict) or payload.get("format") not in versions:
        raise DataError(f"{path} is not an FDAGMM {kind} of format {' or '.join(map(str, versions))}: {remedy}")
    return payload


def check_writable_dir(setting: str, path: str | Path, alternative: str = "") -> None:
    """Create the dir ``path`` if needed and write a file there, or raise a one-line ConfigError
    naming ``setting``: before any work, rather than a traceback when the first file is written."""
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        raise ConfigError(
            f"{setting}: cannot create or write the directory {path} ({e.strerror or type(e).__name__}); "
            f"pass a writable one{alternative}"
        ) from e
