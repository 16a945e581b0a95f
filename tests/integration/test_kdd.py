"""Reading KDDCUP99: the real file's schema and counts, and one clear error per kind of bad input."""

import gzip
import shutil
import urllib.error
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fdagmm.data import kdd99
from fdagmm.errors import DataError
from helpers.kdd import KDD99, kdd_dataset, read_kdd_file

# From ../shared/data/README.md.
LABEL_COUNTS = {
    "smurf": 280790, "neptune": 107201, "normal": 97278, "back": 2203, "satan": 1589,
    "ipsweep": 1247, "portsweep": 1040, "warezclient": 1020, "teardrop": 979, "pod": 264,
    "nmap": 231, "guess_passwd": 53, "buffer_overflow": 30, "land": 21, "warezmaster": 20,
    "imap": 12, "rootkit": 10, "loadmodule": 9, "ftp_write": 8, "multihop": 7, "phf": 4,
    "perl": 3, "spy": 2,
}  # fmt: skip


def test_real_file_schema_and_label_counts(kdd_frame):
    assert list(kdd_frame.columns) == [*KDD99.features, KDD99.label]
    assert len(kdd_frame) == 494021
    assert kdd_frame[KDD99.label].value_counts().to_dict() == LABEL_COUNTS
    assert kdd_frame["service"].nunique() == 66  # of the schema's 70
    assert len(KDD99.categories["service"]) == 70
    for column in KDD99.numeric_features:
        assert np.issubdtype(kdd_frame[column].dtype, np.number), column


def test_plain_csv_and_gzip_give_the_same_frame(kdd_lines, tmp_path):
    plain = tmp_path / "slice.csv"
    plain.write_text("".join(kdd_lines[:500]))
    gz = tmp_path / "slice_without_gz_suffix"
    with gzip.open(gz, "wt") as f:
        f.writelines(kdd_lines[:500])
    a, b = read_kdd_file(plain), read_kdd_file(gz)
    assert len(a) == 500
    assert a.equals(b)


def test_a_present_file_is_read_without_the_fetcher(kdd_lines, tmp_path, monkeypatch):
    path = tmp_path / "kddcup.data_10_percent.gz"
    path.write_bytes(gzip.compress("".join(kdd_lines[:50]).encode()))
    monkeypatch.setattr(kdd99, "fetch_into", lambda *a: pytest.fail("fetcher called"))
    assert len(kdd_dataset(path).read([path])) == 50


def test_fetcher_writes_the_file_where_it_was_expected(kdd_lines, tmp_path, monkeypatch):
    """scikit-learn's own parsing and cache, with the download replaced by a local copy: the
    file it writes at the default place reads as the original."""
    source = tmp_path / "source" / "kddcup.data_10_percent.gz"
    source.parent.mkdir()
    source.write_bytes(gzip.compress("".join(kdd_lines[::500]).encode()))

    def local_download(archive, dirname, **kwargs):
        shutil.copy(source, Path(dirname) / archive.filename)

    monkeypatch.setattr("sklearn.datasets._kddcup99._fetch_remote", local_download)
    target = tmp_path / "data" / "kddcup.data_10_percent.gz"
    target.parent.mkdir()
    fetched = kdd_dataset(target).read([target])
    assert target.is_file()
    pd.testing.assert_frame_equal(fetched, read_kdd_file(source), check_dtype=False)


def _write(tmp_path, lines, name="bad.csv"):
    path = tmp_path / name
    path.write_text("".join(lines))
    return path


def _error(path) -> str:
    with pytest.raises(DataError) as e:
        read_kdd_file(path)
    message = str(e.value)
    assert "\n" not in message
    return message


def test_missing_file(tmp_path):
    message = _error(tmp_path / "nope.gz")
    assert "not found" in message and "data.train_path" in message


def test_truncated_gzip(kdd_path, tmp_path):
    path = tmp_path / "truncated.gz"
    path.write_bytes(kdd_path.read_bytes()[:200_000])
    assert "download it again" in _error(path)


def test_wrong_number_of_columns(kdd_lines, tmp_path):
    lines = [",".join(line.split(",")[1:]) for line in kdd_lines[:10]]
    assert "line 1 has 41 comma-separated fields" in _error(_write(tmp_path, lines))


def test_extra_field_on_a_later_line(kdd_lines, tmp_path):
    lines = kdd_lines[:10]
    lines[6] = "0," + lines[6]
    assert "line 7" in _error(_write(tmp_path, lines))


def test_non_numeric_value_names_line_and_column(kdd_lines, tmp_path):
    lines = kdd_lines[:10]
    fields = lines[4].split(",")
    fields[4] = "12x"  # src_bytes
    lines[4] = ",".join(fields)
    message = _error(_write(tmp_path, lines))
    assert "line 5" in message and "src_bytes" in message and "'12x'" in message


@pytest.mark.parametrize("value", ["", "nan", "inf"])
def test_missing_or_non_finite_number(kdd_lines, tmp_path, value):
    lines = kdd_lines[:10]
    fields = lines[2].split(",")
    fields[24] = value  # serror_rate
    lines[2] = ",".join(fields)
    message = _error(_write(tmp_path, lines))
    assert "line 3" in message and "serror_rate" in message


def test_unknown_label(kdd_lines, tmp_path):
    lines = kdd_lines[:10]
    lines[8] = lines[8].rsplit(",", 1)[0] + ",mystery.\n"
    message = _error(_write(tmp_path, lines))
    assert "line 9" in message and "mystery" in message


def test_unknown_category_value(kdd_lines, tmp_path):
    lines = kdd_lines[:10]
    fields = lines[1].split(",")
    fields[1] = "sctp"  # protocol_type
    lines[1] = ",".join(fields)
    message = _error(_write(tmp_path, lines))
    assert "line 2" in message and "protocol_type" in message and "sctp" in message


def test_no_file_and_no_network_says_what_to_do(tmp_path, monkeypatch):
    def offline(**kwargs):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr("sklearn.datasets.fetch_kddcup99", offline)
    missing = tmp_path / "kddcup.data_10_percent.gz"
    with pytest.raises(DataError) as e:
        kdd_dataset(missing).read([missing])
    message = str(e.value)
    assert "could not download" in message and "data.train_path=" in message and str(tmp_path) in message
