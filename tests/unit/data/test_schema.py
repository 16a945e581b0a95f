"""The data-set schema (fdagmm.data.schema): the built-in schemas and their roles, the one-line
refusals of a bad schema YAML, the run's overrides, the YAML round trip and the fingerprint."""

import dataclasses

import numpy as np
import pytest
import yaml

from fdagmm.data.schema import KEEP, Categorical, NumericScaling, TableSchema, load_schema
from fdagmm.errors import ConfigError

KDD_CATEGORICAL = ["protocol_type", "service", "flag"]
UNSW_CATEGORICAL = ["proto", "service", "state"]


def _one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message, message
    return message


def _tiny(**changes) -> dict:
    """A small valid schema YAML mapping, changed by ``changes``."""
    spec = {
        "name": "tiny",
        "header": True,
        "columns": ["flow_id", "bytes", "rate", "ttl", "proto", "label"],
        "drop": ["flow_id"],
        "numeric": {"bytes": {"log": 1000}, "rate": "unit", "ttl": {"bound": [0, 255]}},
        "categorical": {"proto": ["tcp", "udp"]},
        "label": "label",
        "benign_labels": ["BENIGN"],
    }
    spec.update(changes)
    return spec


def _write(tmp_path, spec) -> str:
    path = tmp_path / "schema.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return str(path)


# The built-in schemas -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, n_features, categorical, label, drop, anomaly, header",
    [
        ("kdd99", 41, KDD_CATEGORICAL, "label", (), "normal", False),
        ("nsl_kdd", 41, KDD_CATEGORICAL, "label", ("difficulty",), "attacks", False),
        ("unsw_nb15", 42, UNSW_CATEGORICAL, "label", ("id",), "attacks", True),
    ],
)
def test_built_in_schemas_have_their_feature_counts_and_roles(name, n_features, categorical, label, drop, anomaly, header):
    schema = load_schema(name)
    assert schema.name == name
    assert len(schema.features) == n_features
    assert schema.categorical_features == categorical
    assert len(schema.numeric_features) == n_features - len(categorical)
    # Numeric features first (in file order), then the categorical blocks.
    assert list(schema.features) == [*schema.numeric_features, *categorical]
    assert schema.numeric_features == [c for c in schema.columns if c in schema.numeric]
    assert schema.label == label and schema.labelled
    assert schema.drop == drop
    assert schema.anomaly == anomaly
    assert schema.header is header
    # Neither the label, the attack category nor a dropped column is a feature.
    roles = {label, *drop, *(c for c in [schema.attack_category] if c)}
    assert not roles & set(schema.features)
    # Every column has exactly one role.
    assert sorted([*schema.features, *schema.info_columns, *schema.drop]) == sorted(schema.columns)


def test_kdd99_roles():
    schema = load_schema("kdd99")
    assert len(schema.columns) == 42
    assert schema.label_suffix == "."
    assert schema.benign_labels == ("normal",)
    assert len(schema.attack_labels) == 22 and "smurf" in schema.attack_labels
    assert len(schema.categorical["service"].values) == 70  # the data set's, not the 10% file's 66
    assert schema.categorical["flag"].hash_buckets == 0
    # DAGMM's convention: normal traffic is the anomaly class.
    np.testing.assert_array_equal(schema.is_anomaly(["normal", "smurf", "neptune"]), [True, False, False])


def test_nsl_kdd_roles():
    schema = load_schema("nsl_kdd")
    assert len(schema.columns) == 43 and schema.columns[-2:] == ("label", "difficulty")
    assert schema.attack_labels is None  # open: the test file has attack types training never saw
    assert schema.label_suffix == ""
    assert schema.features == load_schema("kdd99").features
    np.testing.assert_array_equal(schema.is_anomaly(["normal", "smurf", "mscan"]), [False, True, True])


def test_unsw_nb15_roles():
    schema = load_schema("unsw_nb15")
    assert len(schema.columns) == 45 and schema.columns[0] == "id" and schema.columns[-2:] == ("attack_cat", "label")
    assert schema.attack_category == "attack_cat"
    assert schema.info_columns == ["label", "attack_cat"]
    assert schema.benign_labels == ("0",) and schema.attack_labels == ("1",)
    assert schema.numeric["sttl"] == NumericScaling("bound", low=0.0, high=255.0)
    assert schema.numeric["dur"] == NumericScaling("log", scale=3600.0)
    assert schema.numeric["is_sm_ips_ports"] == NumericScaling("unit")
    assert schema.categorical["proto"].hash_buckets == 16 and "tcp" in schema.categorical["proto"].values
    assert "-" in schema.categorical["service"].values
    np.testing.assert_array_equal(schema.is_anomaly(["0", "1", "1"]), [False, True, True])


def test_a_schema_yaml_file_loads(tmp_path):
    schema = load_schema(_write(tmp_path, _tiny()))
    assert schema.features == ("bytes", "rate", "ttl", "proto")
    assert schema.numeric["bytes"] == NumericScaling("log", scale=1000.0)
    assert schema.numeric["ttl"] == NumericScaling("bound", low=0.0, high=255.0)
    assert schema.categorical["proto"] == Categorical(("tcp", "udp"), 0)
    assert schema.anomaly == "attacks" and schema.non_finite == "refuse"  # the defaults


def test_unknown_schema_name_is_one_line_listing_the_built_in_ones():
    with pytest.raises(ConfigError) as e:
        load_schema("no_such_data_set")
    message = _one_line(e)
    assert "no_such_data_set" in message
    for name in ("kdd99", "nsl_kdd", "unsw_nb15"):
        assert name in message


# Bad schema files: one line naming what is wrong ----------------------------------------------


@pytest.mark.parametrize(
    "changes, named",
    [
        # A column with no kind (not numeric, categorical, dropped, the label or the attack category).
        ({"columns": ["flow_id", "bytes", "rate", "ttl", "proto", "mystery", "label"]}, "mystery"),
        # A key the schema does not have.
        ({"lables": ["x"]}, "lables"),
        # Bad scalings.
        ({"numeric": {"bytes": "sqrt", "rate": "unit", "ttl": {"bound": [0, 255]}}}, "sqrt"),
        ({"numeric": {"bytes": {"log": -5}, "rate": "unit", "ttl": {"bound": [0, 255]}}}, "bytes"),
        ({"numeric": {"bytes": {"log": 1000}, "rate": "unit", "ttl": {"bound": [255, 0]}}}, "ttl"),
        ({"numeric": {"bytes": {"log": 1000}, "rate": "unit", "ttl": {"bound": [0]}}}, "bound"),
        # A role naming a column the schema does not have.
        ({"numeric": {"bytes": {"log": 1000}, "rate": "unit", "ttl": {"bound": [0, 255]}, "ghost": "unit"}}, "ghost"),
        ({"label": "verdict"}, "verdict"),
        # A column that is both numeric and categorical.
        ({"categorical": {"proto": ["tcp"], "rate": ["x"]}}, "rate"),
        # A label with no benign values.
        ({"benign_labels": []}, "benign_labels"),
        ({"anomaly": "benign"}, "anomaly"),
        ({"non_finite": "ignore"}, "non_finite"),
        ({"categorical": {"proto": {"hash_buckets": 0}}}, "proto"),
        ({"columns": ["flow_id", "bytes", "bytes", "rate", "ttl", "proto", "label"]}, "bytes"),
    ],
)
def test_bad_schema_file_is_a_one_line_config_error_naming_it(tmp_path, changes, named):
    path = _write(tmp_path, _tiny(**changes))
    with pytest.raises(ConfigError) as e:
        load_schema(path)
    message = _one_line(e)
    assert named in message, message
    assert path in message, message  # says which file


def test_untyped_column_message_says_how_to_fix_it(tmp_path):
    with pytest.raises(ConfigError, match=r"\['mystery'\] have no kind: list them under numeric, categorical or drop"):
        load_schema(_write(tmp_path, _tiny(columns=["flow_id", "bytes", "rate", "ttl", "proto", "mystery", "label"])))


def test_schema_without_columns_is_refused(tmp_path):
    spec = _tiny()
    del spec["columns"]
    with pytest.raises(ConfigError) as e:
        load_schema(_write(tmp_path, spec))
    assert "'columns'" in _one_line(e)


@pytest.mark.parametrize("text", ["[1, 2, 3]\n", "name: [unclosed\n"])
def test_a_file_that_is_not_a_yaml_mapping_is_refused(tmp_path, text):
    path = tmp_path / "schema.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_schema(str(path))
    assert str(path) in _one_line(e)


# A run's overrides ----------------------------------------------------------------------------


def test_label_column_null_moves_the_label_to_drop():
    schema = load_schema("nsl_kdd").with_overrides(label_column=None)
    assert schema.label is None and not schema.labelled
    assert "label" in schema.drop and "difficulty" in schema.drop
    assert schema.features == load_schema("nsl_kdd").features
    assert schema.info_columns == []


def test_label_column_null_keeps_the_attack_category_out_of_the_features():
    schema = load_schema("unsw_nb15").with_overrides(label_column=None)
    assert "label" in schema.drop and schema.label is None
    assert "attack_cat" not in schema.features and len(schema.features) == 42


def test_keep_changes_nothing():
    schema = load_schema("unsw_nb15")
    assert schema.with_overrides() == schema
    assert schema.with_overrides(label_column=KEEP, benign_labels=KEEP, non_finite=KEEP).digest == schema.digest


def test_drop_columns_are_added_and_leave_the_features():
    base = load_schema("unsw_nb15")
    schema = base.with_overrides(drop_columns=["sttl", "proto"])
    assert schema.drop == ("id", "sttl", "proto")
    assert "sttl" not in schema.features and "proto" not in schema.features
    assert len(schema.features) == len(base.features) - 2
    assert schema.categorical_features == ["service", "state"]
    assert schema.digest != base.digest


def test_drop_columns_naming_an_unknown_column_of_a_headerless_schema_is_refused():
    with pytest.raises(ConfigError) as e:
        load_schema("nsl_kdd").with_overrides(drop_columns=["Flow ID"])
    message = _one_line(e)
    assert "data.drop_columns" in message and "Flow ID" in message and "nsl_kdd" in message


def test_drop_columns_naming_an_extra_column_of_a_headered_schema_reads_past_it():
    base = load_schema("unsw_nb15")
    schema = base.with_overrides(drop_columns=["Flow ID"])
    assert schema.columns == (*base.columns, "Flow ID") and "Flow ID" in schema.drop
    assert schema.features == base.features


def test_label_column_onto_a_feature_takes_it_out_of_the_features():
    base = load_schema("unsw_nb15")
    schema = base.with_overrides(label_column="attack_cat", benign_labels=["Normal"])
    assert schema.label == "attack_cat" and schema.benign_labels == ("Normal",)
    assert "label" in schema.drop  # the former label is read past
    assert schema.attack_labels is None
    moved = base.with_overrides(label_column="proto", benign_labels=["tcp"])
    assert "proto" not in moved.features and moved.label == "proto"
    assert moved.categorical_features == ["service", "state"]


def test_label_column_onto_the_attack_category_makes_it_the_label_once():
    """data=unsw_nb15 data.label_column=attack_cat 'data.benign_labels=[Normal]': the attack
    family becomes the label; the column must not hold two roles (the reader would return it
    twice)."""
    schema = load_schema("unsw_nb15").with_overrides(label_column="attack_cat", benign_labels=["Normal"])
    assert schema.label == "attack_cat" and "label" in schema.drop
    assert schema.info_columns == ["attack_cat"], schema.info_columns
    np.testing.assert_array_equal(schema.is_anomaly(["Normal", "DoS"]), [False, True])


def test_label_column_not_a_column_is_refused():
    with pytest.raises(ConfigError) as e:
        load_schema("nsl_kdd").with_overrides(label_column="Label")
    assert "data.label_column=Label" in _one_line(e)


def test_bad_non_finite_override_is_refused_naming_the_overrides():
    with pytest.raises(ConfigError) as e:
        load_schema("nsl_kdd").with_overrides(non_finite="zero")
    message = _one_line(e)
    assert "non_finite" in message and "after the data.* overrides" in message


def test_benign_labels_and_non_finite_overrides():
    schema = load_schema("nsl_kdd").with_overrides(benign_labels=["normal", "snmpguess"], non_finite="clip")
    assert schema.benign_labels == ("normal", "snmpguess")
    assert schema.non_finite == "clip"
    np.testing.assert_array_equal(schema.is_anomaly(["normal", "snmpguess", "neptune"]), [False, False, True])


def test_anomaly_override_flips_the_class_that_trains():
    study = load_schema("kdd99")
    benign_trains = study.with_overrides(anomaly="attacks")
    labels = ["normal", "smurf", "neptune"]
    np.testing.assert_array_equal(study.is_anomaly(labels), [True, False, False])
    np.testing.assert_array_equal(benign_trains.is_anomaly(labels), [False, True, True])
    assert benign_trains.digest != study.digest  # a different data set to the parse cache and model.pt
    with pytest.raises(ConfigError, match=r"anomaly must be one of attacks, normal, got .benign. \(after the data.\* overrides\)"):
        study.with_overrides(anomaly="benign")


# Round trip, fingerprint, first difference ----------------------------------------------------


@pytest.mark.parametrize("name", ["kdd99", "nsl_kdd", "unsw_nb15"])
def test_to_dict_from_dict_round_trip(name):
    schema = load_schema(name)
    again = TableSchema.from_dict(schema.to_dict())
    assert again == schema
    assert again.digest == schema.digest
    assert again.first_difference(schema) is None
    # Through the YAML text too (what `python src/schema.py infer` prints and a user pins).
    from_yaml = TableSchema.from_dict(yaml.safe_load(schema.to_yaml()))
    assert from_yaml == schema and from_yaml.digest == schema.digest


def test_round_trip_of_an_overridden_and_hashed_schema():
    schema = dataclasses.replace(
        load_schema("unsw_nb15").with_overrides(label_column=None, drop_columns=["sttl"], non_finite="drop"),
        categorical={"proto": Categorical((), 8), "service": Categorical(("-", "dns"), 0), "state": Categorical(("FIN",), 2)},
    )
    again = TableSchema.from_dict(yaml.safe_load(schema.to_yaml()))
    assert again == schema and again.digest == schema.digest


def test_digest_differs_between_schemas_and_with_any_change():
    digests = {load_schema(n).digest for n in ("kdd99", "nsl_kdd", "unsw_nb15")}
    assert len(digests) == 3
    base = load_schema("unsw_nb15")
    changed = dataclasses.replace(base, numeric={**base.numeric, "dur": NumericScaling("log", scale=60.0)})
    assert changed.digest != base.digest
    assert len(base.digest) == 16


def test_first_difference_names_the_differing_key():
    base = load_schema("unsw_nb15")
    assert base.first_difference(load_schema("unsw_nb15")) is None
    rescaled = dataclasses.replace(base, numeric={**base.numeric, "dur": NumericScaling("log", scale=60.0)})
    difference = base.first_difference(rescaled)
    assert difference.startswith("numeric.dur:") and "3600" in difference and "60" in difference
    assert base.first_difference(base.with_overrides(non_finite="clip")).startswith("non_finite:")
    assert base.first_difference(base.with_overrides(benign_labels=["0", "2"])).startswith("benign_labels:")
    assert base.first_difference(base.with_overrides(drop_columns=["dur"])).startswith("drop:")
    revocabulary = dataclasses.replace(base, categorical={**base.categorical, "state": Categorical(("FIN",), 4)})
    assert base.first_difference(revocabulary).startswith("categorical.state:")
    assert load_schema("kdd99").first_difference(load_schema("nsl_kdd")).startswith("name:")


def test_a_group_column_is_read_never_a_feature_and_leaves_other_schemas_digests_alone():
    base = load_schema("unsw_nb15")
    assert "group_column" not in base.to_dict()  # unset: the digest of every existing schema stands
    grouped = base.with_overrides(group_column="id")  # a dropped column, read for the partition
    assert "id" not in grouped.drop and "id" not in grouped.features and "id" in grouped.info_columns
    assert grouped.features == base.features
    assert TableSchema.from_dict(grouped.to_dict()) == grouped and grouped.digest != base.digest
    feature = base.with_overrides(group_column="proto")  # a feature stays one
    assert "proto" in feature.features and "proto" not in feature.info_columns
    with pytest.raises(ConfigError, match=r"partition.column=site: not a column of unsw_nb15.*data.drop_columns=\[site\]"):
        base.with_overrides(group_column="site")
    with pytest.raises(ConfigError, match="both the label and the group column"):
        base.with_overrides(group_column="label")
