"""The real NSL-KDD and UNSW-NB15 files through the data-set layer: record and label counts as
their READMEs give them, UNSW-NB15's seeded benign split, the parse cache, and schema
inference on a CICFlowMeter-style file derived from UNSW-NB15."""

import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers.dataset_files import IDENTIFIERS, cic_flow_lines, cic_name, every_nth, read_lines, write_lines
from hydra import compose, initialize

from fdagmm.data import loading
from fdagmm.data.dataset import ConnectionDataset, build_dataset
from fdagmm.data.inference import INFERRED_LOG_SCALE, infer_schema
from fdagmm.data.loading import load_table
from fdagmm.data.reading import read_table
from fdagmm.data.schema import NumericScaling, TableSchema, load_schema
from fdagmm.errors import ConfigError, DataError

ROOT = Path(__file__).resolve().parents[2]
NSL = load_schema("nsl_kdd")
UNSW = load_schema("unsw_nb15")
UNSW_ATTACKS = {
    "Generic": 18_871, "Exploits": 11_132, "Fuzzers": 6_062, "DoS": 4_089, "Reconnaissance": 3_496,
    "Analysis": 677, "Backdoor": 583, "Shellcode": 378, "Worms": 44,
}  # fmt: skip


@pytest.fixture(scope="module")
def unsw_frame(unsw_path) -> pd.DataFrame:
    return read_table(unsw_path, UNSW).frame


@pytest.fixture(scope="module")
def unsw_lines(unsw_path) -> list[str]:
    return read_lines(unsw_path)


def _row_hashes(frame: pd.DataFrame) -> Counter:
    """The records as a multiset (UNSW-NB15 holds duplicate records)."""
    return Counter(pd.util.hash_pandas_object(frame, index=False).tolist())


# Record and label counts -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "fixture, n_records, n_normal, n_labels",
    [
        ("nsl_train_path", 25_192, 13_449, 22),
        ("nsl_test_path", 22_544, 9_711, 38),
        ("nsl_test21_path", 11_850, 2_152, None),
    ],
)
def test_nsl_kdd_files_hold_their_published_counts(request, fixture, n_records, n_normal, n_labels):
    table = read_table(request.getfixturevalue(fixture), NSL)
    frame = table.frame
    assert len(frame) == n_records
    assert (frame["label"] == "normal").sum() == n_normal
    if n_labels is not None:
        assert frame["label"].nunique() == n_labels
    assert sorted(frame.columns) == sorted([*NSL.features, "label"])  # difficulty read past
    assert table.n_dropped == 0 and table.n_clipped == 0
    assert np.isfinite(frame[NSL.numeric_features].to_numpy(dtype=np.float64)).all()
    for column, cat in NSL.categorical.items():
        assert frame[column].isin(cat.values).all(), column
    dataset = ConnectionDataset("nsl_kdd", NSL, [request.getfixturevalue(fixture)])
    assert dataset.is_anomaly(frame).sum() == n_records - n_normal  # attacks are the anomalies


def test_kdd_test_plus_holds_attack_types_training_never_saw(nsl_train_path, nsl_test_path):
    train = set(read_table(nsl_train_path, NSL).frame["label"])
    test = set(read_table(nsl_test_path, NSL).frame["label"])
    # 17 attack types never occur in the full training set (the README); the 20% subset also lacks one more.
    assert len(test - train) >= 17
    assert {"mscan", "apache2", "processtable", "snmpguess"} <= test - train
    assert "normal" in train & test


def test_unsw_nb15_testing_set_holds_its_published_counts(unsw_frame):
    assert len(unsw_frame) == 82_332
    assert sorted(unsw_frame.columns) == sorted([*UNSW.features, "label", "attack_cat"])  # id read past
    assert (unsw_frame["label"] == "0").sum() == 37_000
    assert (unsw_frame["label"] == "1").sum() == 45_332
    counts = unsw_frame["attack_cat"].value_counts().to_dict()
    assert counts.pop("Normal") == 37_000
    assert counts == UNSW_ATTACKS
    # The attack family agrees with the label record by record.
    np.testing.assert_array_equal(unsw_frame["attack_cat"] == "Normal", unsw_frame["label"] == "0")
    assert np.isfinite(unsw_frame[UNSW.numeric_features].to_numpy(dtype=np.float64)).all()
    assert set(unsw_frame["state"]) <= set(UNSW.categorical["state"].values) | {"no"}
    assert "-" in set(unsw_frame["service"])


# UNSW-NB15's split: a seeded half of the benign records and of the attacks test -------------


def test_unsw_test_fraction_split_counts_and_seeds(unsw_path, unsw_frame):
    dataset = ConnectionDataset("unsw_nb15", UNSW, [unsw_path], test_fraction=0.5)
    pools = dataset.pools(seed=0)
    assert len(pools.train) == 18_500
    assert (pools.train["label"] == "0").all()  # only benign traffic trains
    assert len(pools.test) == 18_500 + 22_666
    assert (pools.test["label"] == "0").sum() == 18_500
    assert dataset.is_anomaly(pools.test).sum() == 22_666  # half of the 45,332 attacks
    assert set(pools.test["attack_cat"]) == {"Normal", *UNSW_ATTACKS}
    # The two halves of the benign records are the benign records, none of them twice.
    benign = unsw_frame[unsw_frame["label"] == "0"]
    assert _row_hashes(pools.train) + _row_hashes(pools.test[pools.test["label"] == "0"]) == _row_hashes(benign)

    again = dataset.pools(seed=0)
    pd.testing.assert_frame_equal(again.train, pools.train)
    pd.testing.assert_frame_equal(again.test, pools.test)
    other = dataset.pools(seed=1)
    assert len(other.train) == 18_500 and len(other.test) == 41_166
    assert _row_hashes(other.train) != _row_hashes(pools.train)


def test_unsw_validation_holds_out_training_side_records_only(unsw_path, unsw_frame):
    """Validation: a fifth of the training side's benign records and the training side's
    attacks; together with the test set and the records that train, every record once."""
    tested = ConnectionDataset("unsw_nb15", UNSW, [unsw_path], test_fraction=0.5).pools(seed=3)
    validated = ConnectionDataset("unsw_nb15", UNSW, [unsw_path], test_fraction=0.5, evaluate_on="validation").pools(seed=3)
    assert len(validated.train) == 14_800 and (validated.train["label"] == "0").all()
    assert (validated.test["label"] == "0").sum() == 3_700 and (validated.test["label"] == "1").sum() == 22_666
    assert _row_hashes(validated.train) + _row_hashes(validated.test[validated.test["label"] == "0"]) == _row_hashes(tested.train)
    assert _row_hashes(validated.train) + _row_hashes(validated.test) + _row_hashes(tested.test) == _row_hashes(unsw_frame)


def test_nsl_validation_never_reads_the_test_file(nsl_train_path, tmp_path):
    """The test file named is not read (it does not even exist); the training file's attacks
    validate, beside a fifth of its benign records."""
    dataset = ConnectionDataset(
        "nsl_kdd", NSL, [nsl_train_path], test_paths=[tmp_path / "absent.txt"], evaluate_on="validation", validation_fraction=0.2
    )
    pools = dataset.pools(seed=0)
    assert len(pools.train) == 13_449 - 2_690 and (pools.train["label"] == "normal").all()
    assert (pools.test["label"] == "normal").sum() == 2_690
    assert dataset.is_anomaly(pools.test).sum() == 11_743  # every attack of KDDTrain+_20Percent
    with pytest.raises(DataError, match="no such file|absent"):
        ConnectionDataset("nsl_kdd", NSL, [nsl_train_path], test_paths=[tmp_path / "absent.txt"]).pools(seed=0)


def test_validation_needs_a_test_set_and_attacks_on_the_training_side(nsl_train_path):
    with pytest.raises(ConfigError, match="data.evaluate_on=validation .* needs a test set"):
        ConnectionDataset("nsl_kdd", NSL, [nsl_train_path], evaluate_on="validation")
    with pytest.raises(ConfigError, match="data.evaluate_on must be one of test, validation"):
        ConnectionDataset("nsl_kdd", NSL, [nsl_train_path], test_fraction=0.5, evaluate_on="holdout")
    every_label = sorted(set(read_table(nsl_train_path, NSL).frame["label"]))
    benign_only = NSL.with_overrides(benign_labels=every_label)  # no record is an anomaly
    with pytest.raises(DataError, match="needs anomalies on the training side"):
        ConnectionDataset("nsl_kdd", benign_only, [nsl_train_path], test_fraction=0.5, evaluate_on="validation").pools(seed=0)


def test_data_configs_build_their_data_sets(unsw_path, nsl_train_path, nsl_test_path):
    with initialize(version_base="1.3", config_path="../../conf"):
        unsw = compose(config_name="config", overrides=["data=unsw_nb15", f"data.train_path={unsw_path}", "data.cache_dir=null"])
        nsl = compose(
            config_name="config",
            overrides=["data=nsl_kdd", f"data.train_path={nsl_train_path}", f"data.test_path={nsl_test_path}", "data.cache_dir=null"],
        )  # fmt: skip
        unlabelled = compose(
            config_name="config",
            overrides=["data=unsw_nb15", f"data.train_path={unsw_path}", "data.label_column=null", "data.test_fraction=null",
                       "data.drop_columns=[sttl]"],
        )  # fmt: skip
    dataset = build_dataset(unsw.data)
    assert dataset.schema == UNSW and dataset.test_fraction == 0.5 and dataset.test_paths == []
    assert unsw.partition.name.startswith("iid")  # benign traffic trains: not the KDDCUP99 study's scenarios
    dataset = build_dataset(nsl.data)
    assert dataset.schema == NSL and dataset.test_paths == [nsl_test_path] and dataset.test_fraction is None
    dataset = build_dataset(unlabelled.data)
    assert not dataset.schema.labelled and "sttl" not in dataset.schema.features and "label" in dataset.schema.drop


# The parse cache --------------------------------------------------------------------------------


def _same_records(cached: pd.DataFrame, parsed: pd.DataFrame) -> None:
    """The same columns and values (the cache may hold text columns as categoricals)."""
    assert list(cached.columns) == list(parsed.columns)
    numeric = [c for c in parsed.columns if parsed[c].dtype == np.float64]
    np.testing.assert_array_equal(cached[numeric].to_numpy(dtype=np.float64), parsed[numeric].to_numpy())
    for c in parsed.columns:
        if c not in numeric:
            assert cached[c].astype(str).tolist() == parsed[c].tolist(), c


@pytest.mark.parametrize("fixture, schema", [("nsl_test_path", NSL), ("unsw_path", UNSW)], ids=["nsl_kdd", "unsw_nb15"])
def test_parse_cache_returns_the_parsed_records(request, tmp_path, monkeypatch, fixture, schema):
    path = request.getfixturevalue(fixture)
    parsed = read_table(path, schema)
    stored = load_table(path, schema, tmp_path)
    _same_records(stored.frame, parsed.frame)
    [entry] = tmp_path.iterdir()
    assert entry.name.startswith(f"{schema.name}-{schema.digest[:8]}-{loading.file_digest(path)[:24]}")

    def no_parsing(*args, **kwargs):
        raise AssertionError("parsed again despite a cache entry")

    monkeypatch.setattr(loading, "read_table", no_parsing)
    cached = load_table(path, schema, tmp_path)
    _same_records(cached.frame, parsed.frame)
    assert (cached.n_dropped, cached.n_clipped) == (parsed.n_dropped, parsed.n_clipped)
    # Another schema is parsed afresh, into its own entry.
    with pytest.raises(AssertionError, match="parsed again"):
        load_table(path, schema.with_overrides(drop_columns=["service"]), tmp_path)


def test_parse_cache_rebuilds_a_damaged_entry_and_keys_on_the_bytes(nsl_test21_path, tmp_path):
    parsed = read_table(nsl_test21_path, NSL).frame
    load_table(nsl_test21_path, NSL, tmp_path)
    [entry] = tmp_path.iterdir()
    (entry / "numeric.npy").write_bytes(b"not an array")
    _same_records(load_table(nsl_test21_path, NSL, tmp_path).frame, parsed)
    # The same bytes under another name: the same entry; other bytes: another.
    copy = tmp_path / "renamed.txt.gz"
    copy.write_bytes(nsl_test21_path.read_bytes())
    load_table(copy, NSL, tmp_path / "cache2")
    short = write_lines(tmp_path / "short.txt", read_lines(nsl_test21_path)[:100])
    assert len(load_table(short, NSL, tmp_path).frame) == 100
    assert len([p for p in tmp_path.iterdir() if p.name.startswith("nsl_kdd-")]) == 2


# Schema inference on a CICFlowMeter-style file derived from UNSW-NB15 --------------------------


@pytest.fixture(scope="module")
def flow_file(unsw_lines, tmp_path_factory) -> Path:
    """Every 20th UNSW-NB15 record (4,117: benign and attacks), CICFlowMeter-style."""
    return write_lines(tmp_path_factory.mktemp("flows") / "flows.csv", cic_flow_lines(every_nth(unsw_lines, 20, header=True)))


def test_inference_drops_identifiers_and_types_the_columns(flow_file):
    schema = infer_schema(flow_file, name="flows", label_column="Label", benign_labels=["BENIGN"])
    assert {*IDENTIFIERS, "Id"} == set(schema.drop)
    assert schema.categorical_features == ["Protocol", "Service", "State"]
    for c in schema.categorical_features:
        assert schema.categorical[c].values == () and schema.categorical[c].hash_buckets > 0  # hashed: no vocabulary to agree on
    numeric = [cic_name(c) for c in UNSW.numeric_features]
    assert schema.numeric_features == numeric
    assert len(schema.features) == 42
    assert schema.label == "Label" and schema.benign_labels == ("BENIGN",) and "Label" not in schema.features
    for c in numeric:
        assert schema.numeric[c] in (NumericScaling("unit"), NumericScaling("log", scale=INFERRED_LOG_SCALE)), c
    assert schema.numeric["Flow Duration"].kind == "log"  # durations beyond a second
    assert schema.numeric["Sttl"].kind == "log"  # TTLs up to 254: not in [0, 1]
    assert schema.numeric["Is Sm Ips Ports"].kind == "unit"


def test_inferred_schema_reads_the_same_numbers_as_the_unsw_schema(flow_file, unsw_lines, tmp_path):
    schema = infer_schema(flow_file, name="flows", label_column="Label", benign_labels=["BENIGN"])
    flows = read_table(flow_file, schema).frame
    original = read_table(write_lines(tmp_path / "slice.csv", every_nth(unsw_lines, 20, header=True)), UNSW).frame
    assert len(flows) == len(original) == 4_117
    for c in UNSW.numeric_features:
        np.testing.assert_array_equal(flows[cic_name(c)].to_numpy(), original[c].to_numpy(), err_msg=c)
    for c in UNSW.categorical_features:
        assert flows[cic_name(c)].tolist() == original[c].tolist(), c
    expected = np.where(original["label"] == "0", "BENIGN", original["attack_cat"])
    assert flows["Label"].tolist() == expected.tolist()
    np.testing.assert_array_equal(schema.is_anomaly(flows["Label"]), UNSW.is_anomaly(original["label"]))


def test_inference_refuses_unknown_columns_in_one_line(flow_file):
    with pytest.raises(DataError) as e:
        infer_schema(flow_file, label_column="label")
    assert "\n" not in str(e.value) and "data.label_column: ['label']" in str(e.value)
    with pytest.raises(DataError, match=r"data.drop_columns: \['Attack Category'\]"):
        infer_schema(flow_file, label_column="Label", benign_labels=["BENIGN"], drop_columns=["Attack Category"])


def test_schema_infer_cli_prints_the_inferred_schema(flow_file):
    result = subprocess.run(
        [sys.executable, "src/schema.py", "infer", str(flow_file), "--label", "Label", "--benign", "BENIGN", "--drop", "Tot Fwd Pkts"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    printed = TableSchema.from_dict(yaml.safe_load(result.stdout))
    expected = infer_schema(flow_file, name="flows", label_column="Label", benign_labels=["BENIGN"], drop_columns=["Tot Fwd Pkts"])
    assert printed == expected and printed.digest == expected.digest
    assert "Tot Fwd Pkts" in printed.drop
    refused = subprocess.run(
        [sys.executable, "src/schema.py", "infer", str(flow_file), "--label", "verdict"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    missing = subprocess.run(
        [sys.executable, "src/schema.py", "infer", str(flow_file.parent / "missing.csv")], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    for result, named in ((refused, "verdict"), (missing, "no file at")):
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and named in lines[0], lines
