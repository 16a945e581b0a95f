"""KDDCUP99's schema under the names the KDD tests use (file-order features, the label, ...)."""

from pathlib import Path
from types import SimpleNamespace

from fdagmm.data.dataset import ConnectionDataset
from fdagmm.data.reading import iter_chunks, read_table
from fdagmm.data.schema import load_schema

SCHEMA = load_schema("kdd99")
KDD99 = SimpleNamespace(
    schema=SCHEMA,
    features=tuple(c for c in SCHEMA.columns if c != SCHEMA.label),  # in file order
    numeric_features=SCHEMA.numeric_features,
    categorical_features=SCHEMA.categorical_features,
    categories={c: SCHEMA.categorical[c].values for c in SCHEMA.categorical_features},
    label=SCHEMA.label,
    normal_label=SCHEMA.benign_labels[0],
    known_labels=frozenset([*SCHEMA.benign_labels, *SCHEMA.attack_labels]),
    unit_interval=tuple(c for c, s in SCHEMA.numeric.items() if s.kind == "unit"),
    log_scales={c: s.scale for c, s in SCHEMA.numeric.items() if s.kind == "log"},
)


def read_kdd_file(path):
    """A KDDCUP99 file as training reads it."""
    return read_table(path, SCHEMA).frame


def iter_record_chunks(path, chunk_size: int):
    """A KDDCUP99-format file as scoring reads it."""
    return iter_chunks(path, SCHEMA, chunk_size)


def kdd_dataset(path, cache_dir=None):
    """A KDDCUP99 file as a data set (its records split by the partition, as in the study)."""
    return ConnectionDataset("kdd99", SCHEMA, [Path(path)], cache_dir=None if cache_dir is None else Path(cache_dir))
