"""who_gains' summary per alpha: counts of gaining, losing and harmed clients, and the clients'
mean AUROC as mean (std) over seeds, on a hand-made table of gains."""

import pandas as pd
import pytest

from fdagmm.analysis.who_gains import gain_summary


def test_the_summary_counts_clients_and_averages_each_seed_before_the_seeds():
    gains = pd.DataFrame({
        "alpha": [0.1] * 4 + [5.0] * 2, "seed": [0, 0, 1, 1, 0, 0], "client": [0, 1, 0, 1, 0, 1], "n_train": [10] * 6,
        "auroc_federated": [0.8, 0.6, 0.9, 0.7, 0.95, 0.97], "auroc_alone": [0.7, 0.7, 0.7, 0.7, 0.9, 0.99],
    })  # fmt: skip
    gains["gain"] = gains.auroc_federated - gains.auroc_alone
    summary = gain_summary(gains)
    low = summary.loc[0.1]
    assert (low["clients"], low["gain"], low["lose"], low["harmed (< -0.01)"]) == (4, 2, 1, 1)
    # seed 0's clients average 0.7, seed 1's 0.8: mean 0.75, sample std 0.0707
    assert low["AUROC federated"] == "0.7500 (0.0707)" and low["AUROC alone"] == "0.7000 (0.0000)"
    high = summary.loc[5.0]
    assert (high["gain"], high["lose"], high["harmed (< -0.01)"]) == (1, 1, 1)
    assert high["worst gain"] == pytest.approx(-0.02) and high["mean gain"] == pytest.approx(0.015)
    assert high["AUROC federated"] == "0.9600"  # one seed: the mean alone
