"""Small files cut from the real KDDCUP99 file, for the tests that need real records."""

import gzip
from pathlib import Path


def every_nth_record(kdd_lines: list[str], path: Path, n: int) -> Path:
    """Every n-th record of the real file, written to ``path`` as gzip."""
    with gzip.open(path, "wt") as f:
        f.writelines(kdd_lines[::n])
    return path
