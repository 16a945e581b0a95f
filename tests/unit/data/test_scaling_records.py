"""data.scaling_records: which records set the encoder's min-max bounds (data.scaling=federated_minmax)."""

import pytest
import torch
from helpers.kdd import kdd_dataset
from helpers.synthetic import write_kdd_file

from fdagmm.data.datamodule import ClientsDataModule
from fdagmm.data.partition import StudyScenario


@pytest.fixture(scope="module")
def synthetic_file(tmp_path_factory):
    return write_kdd_file(tmp_path_factory.mktemp("data") / "synthetic.csv.gz", n=3000, seed=2)


def _clients(path, scaling_records):
    partitioner = StudyScenario("s4", [0.1, 0.9], [1.0, 0.0])
    dm = ClientsDataModule(kdd_dataset(path), 256, partitioner, 0, [0], scaling="federated_minmax", scaling_records=scaling_records)
    dm.setup()
    return dm


def test_all_records_put_every_encoded_value_in_the_unit_interval(synthetic_file):
    dm = _clients(synthetic_file, "all")
    x = torch.cat([t for c in dm.clients for t in (c.train_x, c.test_x)])
    assert x.min() >= 0 and x.max() <= 1
    assert len(x) == 3000  # every record of the file, train and test, inside the bounds


def test_training_records_leave_test_records_outside_the_unit_interval(synthetic_file):
    dm = _clients(synthetic_file, "train")
    assert 0 <= dm.clients[0].train_x.min() and dm.clients[0].train_x.max() <= 1
    # Client 0's training attacks do not span the normal records of the test sets.
    assert any(((c.test_x < 0) | (c.test_x > 1)).any() for c in dm.clients)
