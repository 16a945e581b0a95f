"""Files of tensors and plain data (checkpoints, exported models): atomic writes, safe reads."""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from fdagmm.errors import DataError, first_line


def save_payload(path: Path, payload: dict[str, Any]) -> None:
    """torch.save to a temporary file, then rename: a crash leaves the previous file intact."""
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_payload(path: Path, kind: str, format_version: int, remedy: str) -> dict[str, Any]:
    """Read a payload with ``weights_only=True`` (tensors and plain data, no code), checking its
    format; any failure is a one-line DataError naming ``kind`` and the ``remedy``."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, zipfile.BadZipFile) as e:
        raise DataError(f"{path} is corrupt or not an FDAGMM {kind} ({first_line(e)}): {remedy}") from e
    if not isinstance(payload, dict) or payload.get("format") != format_version:
        raise DataError(f"{path} is not an FDAGMM {kind} of format {format_version}: {remedy}")
    return payload
