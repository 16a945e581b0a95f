"""partition.attack_alpha on the real files: each organisation tests on its own share of the
data set's test set, every attack family dealt over the clients in Dirichlet proportions
(UNSW-NB15's families from attack_cat, NSL-KDD's from its attack types); refused where normal
traffic is the anomaly (KDDCUP99's study convention)."""

import numpy as np
import pytest

from fdagmm.api import compose_config
from fdagmm.config import build
from fdagmm.data.datamodule import ClientsDataModule, client_records
from fdagmm.data.dataset import build_dataset
from fdagmm.errors import ConfigError
from fdagmm.run.experiment import train

pytestmark = pytest.mark.slow


def _cfg(output_dir, *overrides):
    common = [f"paths.output_dir={output_dir}", "data.cache_dir=null", "trainer.accelerator=cpu", "model.compile=false", "torch_threads=1"]
    return compose_config([*common, *overrides])


def _records(cfg):
    return client_records(build_dataset(cfg.data), build(cfg.partition), cfg.seed)


def test_unsw_attack_families_are_dealt_over_the_clients_test_sets(unsw_path, tmp_path):
    data = ("data=unsw_nb15", f"data.train_path={unsw_path}", "partition=dirichlet", "partition.num_clients=5", "partition.alpha=5.0")
    shared = _records(_cfg(tmp_path, *data))
    records = _records(_cfg(tmp_path, *data, "partition.attack_alpha=0.1"))
    pool = shared[0].test  # without attack_alpha every client tests on the whole test half
    assert all(len(r.test) == len(pool) for r in shared) and len(pool) == 41_166
    rows = np.concatenate([r.test_idx for r in records])
    assert len(rows) == len(pool) == len(np.unique(rows))  # each test record tested by one client
    for r, s in zip(records, shared):
        np.testing.assert_array_equal(r.train_idx, s.train_idx)  # training shares unchanged
        assert r.test_is_anomaly.sum() >= 1 and (~r.test_is_anomaly).sum() >= 1
        np.testing.assert_array_equal(r.test_is_anomaly, r.test["label"].to_numpy() == "1")
    families = sorted(set(pool["attack_cat"]) - {"Normal"})
    assert len(families) == 9
    shares = np.array([[(r.test["attack_cat"] == f).sum() / (pool["attack_cat"] == f).sum() for r in records] for f in families])
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)
    # Dirichlet(0.1) over 5 clients: most families sit mostly with one organisation
    assert (shares.max(axis=1) > 0.7).sum() >= 5
    benign_share = [(~r.test_is_anomaly).sum() / (~shared[0].test_is_anomaly).sum() for r in records]
    train_share = [len(r.train_idx) / sum(len(s.train_idx) for s in records) for r in records]
    np.testing.assert_allclose(benign_share, train_share, atol=1e-3)


def test_the_datamodule_knows_whether_its_clients_share_one_test_set(unsw_path, kdd_slice, tmp_path):
    def shared_test(*overrides):
        cfg = _cfg(tmp_path, "partition=iid", "partition.num_clients=3", *overrides)
        d = cfg.data
        datamodule = ClientsDataModule(build_dataset(d), d.batch_size, build(cfg.partition), cfg.seed, [0, 1, 2], d.scaling, d.scaling_records)
        datamodule.setup()
        return datamodule.shared_test

    unsw = ("data=unsw_nb15", f"data.train_path={unsw_path}")
    assert shared_test(*unsw)  # the data set's own test set, whole, for every client
    assert not shared_test(*unsw, "partition.attack_alpha=0.5")  # dealt out
    assert not shared_test(f"data.train_path={kdd_slice}")  # each client's own test half


def test_nsl_kdd_test_attacks_are_dealt_by_attack_type(nsl_train_path, nsl_test_path, tmp_path):
    cfg = _cfg(tmp_path, "data=nsl_kdd", f"data.train_path={nsl_train_path}", f"data.test_path={nsl_test_path}", "partition=iid",
               "partition.num_clients=4", "partition.attack_alpha=0.5")  # fmt: skip
    records = _records(cfg)
    assert sum(len(r.test_idx) for r in records) == 22_544
    assert sum(int(r.test_is_anomaly.sum()) for r in records) == 22_544 - 9_711
    types = [set(r.test.loc[r.test_is_anomaly, "label"]) for r in records]
    assert set().union(*types) == set(records[0].test_frame.loc[~records[0].test_frame["label"].eq("normal"), "label"])
    assert len({frozenset(t) for t in types}) > 1  # the organisations see different attacks


def test_a_run_with_attack_skew_tests_each_client_on_its_own_share(unsw_path, tmp_path):
    payload = train(_cfg(tmp_path, "data=unsw_nb15", f"data.train_path={unsw_path}", "partition=iid", "partition.num_clients=3",
                         "partition.attack_alpha=0.5", "fed.rounds=1"))  # fmt: skip
    counts = payload["partition"]
    assert sum(c["n_test"] for c in counts.values()) == 41_166
    assert sum(c["n_test_anomalies"] for c in counts.values()) == 22_666
    assert len({c["n_test_anomalies"] for c in counts.values()}) == 3
    assert all(0.0 < m["test/auroc"] <= 1.0 for m in payload["per_client"].values())


def test_the_named_own_attacks_federation_runs_fedavg_over_five_organisations_own_attacks(unsw_path, tmp_path):
    payload = train(_cfg(tmp_path, "experiment=own_attacks", "data=unsw_nb15", f"data.train_path={unsw_path}", "fed.rounds=1"))
    counts = payload["partition"]
    assert payload["strategy"] == "fedavg" and payload["scenario"] == "dirichlet_k5_a1.0_attacks0.5"
    assert len(counts) == len(payload["per_client"]) == 5
    assert sum(c["n_test"] for c in counts.values()) == 41_166
    assert len({c["n_train"] for c in counts.values()}) == 5  # unequal shares of the benign records


def test_attack_alpha_where_normal_traffic_is_the_anomaly_is_refused_in_one_line(kdd_slice, tmp_path):
    cfg = _cfg(tmp_path, f"data.train_path={kdd_slice}", "partition=iid", "partition.num_clients=3", "partition.attack_alpha=0.5")
    with pytest.raises(ConfigError, match=r"^partition.attack_alpha deals attacks .* flags normal traffic \(anomaly: normal\): set partition.attack_alpha=null$"):
        train(cfg)
