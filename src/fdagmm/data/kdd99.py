"""KDDCUP99's published files, and scikit-learn's fetcher for them.

The data set's schema is data (``schemas/kdd99.yaml``); this module knows only where its
files come from: a KDDCUP99 file missing at its default place (``data/kddcup.data_10_percent.gz``
or ``data/kddcup.data.gz``) is downloaded there through scikit-learn's ``fetch_kddcup99``.
"""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

from fdagmm.data.schema import TableSchema, load_schema
from fdagmm.errors import DataError, first_line
from fdagmm.serialization import atomic_file

log = logging.getLogger(__name__)

NAME = "kdd99"
# File name in the UCI KDD archive -> whether scikit-learn's fetcher calls it percent10.
PUBLISHED_FILES = {"kddcup.data_10_percent.gz": True, "kddcup.data.gz": False}


def schema() -> TableSchema:
    """KDDCUP99's schema (``schemas/kdd99.yaml``)."""
    return load_schema(NAME)


def fetch_if_missing(path: Path, schema: TableSchema) -> None:
    """A KDDCUP99 file missing at the name it is published under is downloaded there."""
    if schema.name == NAME and path.name in PUBLISHED_FILES and not path.is_file():
        fetch_into(path)


def fetch_into(path: Path) -> None:
    """Download the published file named like ``path`` into ``path`` (gzip CSV, as published)."""
    from sklearn.datasets import fetch_kddcup99

    log.info("%s is not there: downloading it through scikit-learn's fetch_kddcup99", path)
    try:
        bunch = fetch_kddcup99(data_home=str(path.parent), percent10=PUBLISHED_FILES[path.name], as_frame=True)
    except Exception as e:  # no network, a refused download, a broken cache: all the same fix
        raise DataError(
            f"KDDCUP99 is not at {path} and scikit-learn could not download it ({type(e).__name__}: {first_line(e)}); "
            f"download {path.name} from the UCI KDD archive and put it there, or pass data.train_path=<file>"
        ) from e
    frame = bunch.frame
    for column in frame.columns:  # the fetcher's text values are bytes
        frame[column] = frame[column].map(lambda v: v.decode("ascii") if isinstance(v, bytes) else v)
    with atomic_file(path) as tmp, gzip.open(tmp, "wt", encoding="utf-8") as f:
        frame.to_csv(f, header=False, index=False)
