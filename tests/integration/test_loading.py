"""The parse cache: same records as parsing, keyed by content, rebuilt when damaged."""

import gzip

import numpy as np
import pytest
from hydra import compose, initialize

from fdagmm.run.experiment import train
from helpers.kdd import KDD99, SCHEMA, read_kdd_file
from fdagmm.data.loading import load_table


def load_kdd(path, cache, schema=SCHEMA):
    return load_table(path, schema, cache).frame


def _same_records(a, b):
    np.testing.assert_array_equal(a[KDD99.numeric_features].to_numpy(np.float64), b[KDD99.numeric_features].to_numpy(np.float64))
    for column in [*KDD99.categorical_features, KDD99.label]:
        np.testing.assert_array_equal(a[column].to_numpy(dtype=str), b[column].to_numpy(dtype=str))


def test_cached_load_gives_the_parsed_records(kdd_slice, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = load_kdd(kdd_slice, cache)
    assert len(list(cache.iterdir())) == 1
    monkeypatch.setattr("fdagmm.data.loading.read_table", lambda *a: pytest.fail("parsed again"))
    second = load_kdd(kdd_slice, cache)
    _same_records(second, read_kdd_file(kdd_slice))
    _same_records(first, second)


def test_a_changed_file_is_parsed_again(kdd_lines, tmp_path):
    path, cache = tmp_path / "kdd.csv", tmp_path / "cache"
    path.write_text("".join(kdd_lines[:300]))
    assert len(load_kdd(path, cache)) == 300
    path.write_text("".join(kdd_lines[:400]))  # same name, other bytes
    assert len(load_kdd(path, cache)) == 400
    assert len(list(cache.iterdir())) == 2


def test_another_schema_is_parsed_again(kdd_lines, tmp_path):
    """The same bytes read with another schema (here: no label) are another entry."""
    path, cache = tmp_path / "kdd.csv", tmp_path / "cache"
    path.write_text("".join(kdd_lines[:300]))
    assert "label" in load_kdd(path, cache)
    unlabelled = load_kdd(path, cache, SCHEMA.with_overrides(label_column=None))
    assert "label" not in unlabelled and len(unlabelled) == 300
    assert len(list(cache.iterdir())) == 2


def test_a_damaged_entry_is_rebuilt(kdd_lines, tmp_path):
    path, cache = tmp_path / "kdd.csv.gz", tmp_path / "cache"
    path.write_bytes(gzip.compress("".join(kdd_lines[:300]).encode()))
    load_kdd(path, cache)
    (entry,) = cache.iterdir()
    (entry / "codes.npy").write_bytes(b"broken")
    _same_records(load_kdd(path, cache), read_kdd_file(path))


def test_training_results_do_not_depend_on_the_cache(kdd_slice, tmp_path):
    def run(name, cache_dir):
        with initialize(version_base="1.3", config_path="../../conf"):
            cfg = compose(
                config_name="config",
                overrides=[f"data.train_path={kdd_slice}", f"paths.output_dir={tmp_path / name}", "scenario=s4",
                           "fed.rounds=1", "trainer.accelerator=cpu", f"data.cache_dir={cache_dir}"],
            )  # fmt: skip
        return train(cfg)

    assert run("plain", "null") == run("cached", tmp_path / "cache") == run("from-cache", tmp_path / "cache")
