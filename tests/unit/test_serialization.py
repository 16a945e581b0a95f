"""Atomic writes: a reader, or a crash, sees the previous file or dir or the whole new one."""

import pytest

from fdagmm.serialization import atomic_dir, atomic_file


def test_a_file_is_replaced_whole_and_a_failed_write_leaves_the_old_one(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text("old")
    with atomic_file(path) as tmp:
        tmp.write_text("new")
        assert path.read_text() == "old"  # not before the block ends
    assert path.read_text() == "new"
    with pytest.raises(RuntimeError), atomic_file(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert path.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_a_dir_appears_whole_and_one_made_meanwhile_stays(tmp_path):
    entry = tmp_path / "cache" / "abc"
    with atomic_dir(entry) as tmp:
        (tmp / "a.npy").write_text("1")
        assert not entry.exists()
    assert (entry / "a.npy").read_text() == "1"
    with atomic_dir(entry) as tmp:  # another process's entry is already there
        (tmp / "a.npy").write_text("2")
    assert (entry / "a.npy").read_text() == "1"
    with pytest.raises(RuntimeError), atomic_dir(tmp_path / "cache" / "def") as tmp:
        raise RuntimeError("crash mid-write")
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["abc"]
