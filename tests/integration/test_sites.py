"""Organisations with their own records, in process: partition=files (each client its own
files, read with the run's data set) and partition=by_column (the values of a column are the
clients), on slices of the real UNSW-NB15 testing set. Record counts are checked against the
files as pandas reads them."""

import logging

import pandas as pd
import pytest
from helpers.dataset_files import every_nth, read_lines, write_lines
from hydra import compose, initialize

from fdagmm.errors import ConfigError
from fdagmm.run.experiment import train

pytestmark = pytest.mark.slow


def _cfg(output_dir, *overrides):
    with initialize(version_base="1.3", config_path="../../conf"):
        return compose(
            config_name="config",
            overrides=[f"paths.output_dir={output_dir}", "data=unsw_nb15", "data.cache_dir=null", "trainer.accelerator=cpu",
                       "fed.rounds=2", "model.compile=false", "torch_threads=1", *overrides],
        )  # fmt: skip


@pytest.fixture(scope="module")
def unsw_lines(unsw_path):
    return read_lines(unsw_path)


@pytest.fixture(scope="module")
def site_files(unsw_lines, tmp_path_factory):
    """Three sites' files cut from the testing set: site 0 trains and tests, site 1 only trains."""
    d = tmp_path_factory.mktemp("sites")
    return {
        "a_train": write_lines(d / "a_train.csv", every_nth(unsw_lines, 40, header=True, offset=0)),
        "a_test": write_lines(d / "a_test.csv", every_nth(unsw_lines, 40, header=True, offset=1)),
        "b_train": write_lines(d / "b_train.csv", every_nth(unsw_lines, 25, header=True, offset=2)),
    }


def _benign(path) -> int:
    return int((pd.read_csv(path, encoding="utf-8-sig")["label"] == 0).sum())


def test_each_client_trains_on_its_own_files_and_one_without_a_test_file_is_not_evaluated(site_files, tmp_path, caplog):
    f = site_files
    clients = f"[{{train_path: {f['a_train']}, test_path: {f['a_test']}}}, {{train_path: {f['b_train']}}}]"
    with caplog.at_level(logging.INFO, logger="fdagmm"):
        payload = train(_cfg(tmp_path, "partition=files", f"partition.clients={clients}", "partition.name=two_sites"))
    a_test = pd.read_csv(f["a_test"], encoding="utf-8-sig")
    assert payload["partition"] == {
        "client0": {"n_train": _benign(f["a_train"]), "n_test": len(a_test), "n_test_anomalies": int(a_test["label"].sum())},
        "client1": {"n_train": _benign(f["b_train"]), "n_test": 0, "n_test_anomalies": 0},
    }
    assert list(payload["per_client"]) == ["client0"]  # client 1 trained, unevaluated
    assert 0.5 < payload["final"]["test/auroc"] <= 1.0
    assert "clients [1] trained and were not evaluated" in caplog.text
    assert "(no test_path)" in caplog.text


def test_the_evaluated_client_needs_a_test_file(site_files, tmp_path):
    clients = f"[{{train_path: {site_files['b_train']}}}, {{train_path: {site_files['a_train']}, test_path: {site_files['a_test']}}}]"
    with pytest.raises(ConfigError, match="client 0, the evaluated client .* has no test_path: give it one"):
        train(_cfg(tmp_path, "partition=files", f"partition.clients={clients}"))


@pytest.mark.parametrize(
    ("clients", "message"),
    [
        ("null", "partition=files needs its clients' files"),  # the option's default: not given
        ("[]", "partition=files needs its clients' files"),
        ("[{test_path: a.csv}]", r"partition.clients\[0\] has no train_path"),
        ("[{train_path: a.csv, site: x}]", r"partition.clients\[0\]: unknown keys \['site'\]"),
    ],
)
def test_impossible_client_lists_are_one_line_config_errors(tmp_path, clients, message):
    with pytest.raises(ConfigError, match=message):
        train(_cfg(tmp_path, "partition=files", f"partition.clients={clients}"))


def test_a_column_the_schema_drops_splits_clients_and_every_value_is_one(unsw_lines, tmp_path):
    """A site column added to the file (declared with data.drop_columns): every value is a
    client, the most frequent first; each client's half of its benign records trains, the
    rest and its own attacks test."""
    records = every_nth(unsw_lines, 20, header=True)
    sites = ["north" if i % 5 == 0 else "south" if i % 5 < 3 else "east" for i in range(len(records) - 1)]
    lines = [records[0].rstrip("\n") + ",site\n", *(r.rstrip("\n") + f",{s}\n" for r, s in zip(records[1:], sites))]
    path = write_lines(tmp_path / "sites.csv", lines)
    payload = train(_cfg(tmp_path / "run", f"data.train_path={path}", "data.test_fraction=null", "data.drop_columns=[site]",
                         "partition=by_column", "partition.column=site"))  # fmt: skip
    frame = pd.read_csv(path, encoding="utf-8-sig")
    order = [site for site, _ in sorted(frame["site"].value_counts().items(), key=lambda kv: (-kv[1], kv[0]))]
    assert order[-1] == "north"  # 1 record in 5; south and east 2 in 5 each
    expected = {}
    for k, site in enumerate(order):
        mine = frame[frame["site"] == site]
        benign, attacks = int((mine["label"] == 0).sum()), int((mine["label"] == 1).sum())
        expected[f"client{k}"] = {"n_train": benign // 2, "n_test": benign - benign // 2 + attacks, "n_test_anomalies": attacks}
    assert payload["partition"] == expected
    assert payload["n_clients"] == 3 and payload["scenario"] == "site_k3"


def test_by_column_without_a_column_is_a_one_line_config_error(tmp_path):
    with pytest.raises(ConfigError, match="partition=by_column needs the column whose values are the clients: partition.column=NAME"):
        train(_cfg(tmp_path, "partition=by_column"))
