"""The attack families of the figures and their table, on hand-made records."""

import numpy as np
import pandas as pd
import pytest

from fdagmm.data.dataset import ConnectionDataset
from fdagmm.data.schema import load_schema
from fdagmm.analysis.figures import BENIGN, NEW, SEEN, families, family_table


def _dataset(name):
    return ConnectionDataset(name, load_schema(name), train_paths=[])


def test_families_use_the_attack_category_where_the_schema_has_one():
    test = pd.DataFrame({"label": ["0", "1", "1"], "attack_cat": ["Normal", "DoS", "Worms"]})
    np.testing.assert_array_equal(families(_dataset("unsw_nb15"), test, np.array(["0", "1"])), [BENIGN, "DoS", "Worms"])


def test_families_without_a_category_split_seen_and_new_attack_types():
    test = pd.DataFrame({"label": ["normal", "neptune", "mscan"]})
    got = families(_dataset("nsl_kdd"), test, np.array(["normal", "neptune", "smurf"]))
    np.testing.assert_array_equal(got, [BENIGN, SEEN, NEW])


def test_family_table_measures_each_family_against_the_benign_records():
    run = {
        "energy": np.array([0.0, 1.0, 2.0, 10.0, 11.0, 1.5]),
        "family": np.array([BENIGN, BENIGN, BENIGN, "DoS", "DoS", "Worms"]),
        "threshold": 5.0,
    }
    table = family_table({("unsw_nb15", "pooled, latent 8"): run}).set_index("family")
    assert table.loc[BENIGN, "records"] == 3 and np.isnan(table.loc[BENIGN, "AUROC vs benign"])
    assert table.loc["DoS", "AUROC vs benign"] == 1.0 and table.loc["DoS", "flagged"] == 1.0
    # Worms (1.5) is above two of the three benign records: AUROC 2/3, and below the threshold.
    assert table.loc["Worms", "AUROC vs benign"] == pytest.approx(2 / 3) and table.loc["Worms", "flagged"] == 0.0
