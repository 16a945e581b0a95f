"""FedAvg and the study's methods give the numbers they gave before the federation core was
redesigned (strategies, partitioners, K clients): recorded with the code of commit 21ffc9c on
this slice (every 16th record of the real file), scenario s4, 2 rounds, seed 0, CPU, with the
study's scaling (data.scaling=federated_minmax, which experiment=reproduce pins)."""

import pytest
from hydra import compose, initialize

from fdagmm.run.experiment import train

RECORDED = {'fdagmm': {'final': {'test/auroc': 0.8859494868755914,
                      'test/avg_precision': 0.7172930151869082,
                      'test/f1': 0.6616428033157498,
                      'test/precision': 0.7353433835845896,
                      'test/recall': 0.6013698630136987,
                      'test/threshold': 4.331292976381563},
            'history': [{'round': 1,
                         'test/auroc': 0.882389313047233,
                         'test/avg_precision': 0.708850004910445,
                         'test/f1': 0.624048706240487,
                         'test/precision': 0.702054794520548,
                         'test/recall': 0.5616438356164384,
                         'test/threshold': 4.632988091986083,
                         'train/loss/client0': 90.24598693847656,
                         'train/loss/client1': 141.97346635298297},
                        {'round': 2,
                         'test/auroc': 0.8859494868755914,
                         'test/avg_precision': 0.7172930151869082,
                         'test/f1': 0.6616428033157498,
                         'test/precision': 0.7353433835845896,
                         'test/recall': 0.6013698630136987,
                         'test/threshold': 4.331292976381563,
                         'train/loss/client0': 57.21343994140625,
                         'train/loss/client1': 61.55502596768466}],
            'partition': {'client0': {'n_test': 2221, 'n_test_anomalies': 730, 'n_train': 1490},
                          'client1': {'n_test': 16254, 'n_test_anomalies': 5341, 'n_train': 10912}}},
 'local': {'final': {'test/auroc': 0.8290225370487767,
                     'test/avg_precision': 0.6389181236824981,
                     'test/f1': 0.6098859315589353,
                     'test/precision': 0.6854700854700855,
                     'test/recall': 0.5493150684931507,
                     'test/threshold': -5.207524176589418},
           'history': [{'round': 1,
                        'test/auroc': 0.8272337219665022,
                        'test/avg_precision': 0.6347578406918586,
                        'test/f1': 0.6004583651642476,
                        'test/precision': 0.6787564766839378,
                        'test/recall': 0.5383561643835616,
                        'test/threshold': -5.358720592736009,
                        'train/loss/train': 89.40926361083984},
                       {'round': 2,
                        'test/auroc': 0.8290225370487767,
                        'test/avg_precision': 0.6389181236824981,
                        'test/f1': 0.6098859315589353,
                        'test/precision': 0.6854700854700855,
                        'test/recall': 0.5493150684931507,
                        'test/threshold': -5.207524176589418,
                        'train/loss/train': 80.02533721923828}],
           'partition': {'client0': {'n_test': 2221, 'n_test_anomalies': 730, 'n_train': 1490},
                         'client1': {'n_test': 16254, 'n_test_anomalies': 5341, 'n_train': 10912}}},
 'pooled': {'final': {'test/auroc': 0.8881250976176694,
                      'test/avg_precision': 0.7209500877212542,
                      'test/f1': 0.6671686746987951,
                      'test/precision': 0.7408026755852842,
                      'test/recall': 0.6068493150684932,
                      'test/threshold': 5.027312780196141},
            'history': [{'round': 1,
                         'test/auroc': 0.884889244140643,
                         'test/avg_precision': 0.713784976814256,
                         'test/f1': 0.6586102719033232,
                         'test/precision': 0.734006734006734,
                         'test/recall': 0.5972602739726027,
                         'test/threshold': 4.668861204568683,
                         'train/loss/train': 110.83676382211539},
                        {'round': 2,
                         'test/auroc': 0.8881250976176694,
                         'test/avg_precision': 0.7209500877212542,
                         'test/f1': 0.6671686746987951,
                         'test/precision': 0.7408026755852842,
                         'test/recall': 0.6068493150684932,
                         'test/threshold': 5.027312780196141,
                         'train/loss/train': 50.39293964092548}],
            'partition': {'client0': {'n_test': 2221, 'n_test_anomalies': 730, 'n_train': 1490},
                          'client1': {'n_test': 16254, 'n_test_anomalies': 5341, 'n_train': 10912}}},
 'remote': {'final': {'test/auroc': 0.9990301328443495,
                      'test/avg_precision': 0.9985757035771499,
                      'test/f1': 0.9892593630335295,
                      'test/precision': 0.9869549012299664,
                      'test/recall': 0.9915746114959746,
                      'test/threshold': -0.10720324018115868},
            'history': [{'round': 1,
                         'test/auroc': 0.9988508112184721,
                         'test/avg_precision': 0.9982956582760205,
                         'test/f1': 0.9874813153961136,
                         'test/precision': 0.9854559015476413,
                         'test/recall': 0.9895150720838795,
                         'test/threshold': -0.5036484988757672,
                         'train/loss/train': 145.9022771661932},
                        {'round': 2,
                         'test/auroc': 0.9990301328443495,
                         'test/avg_precision': 0.9985757035771499,
                         'test/f1': 0.9892593630335295,
                         'test/precision': 0.9869549012299664,
                         'test/recall': 0.9915746114959746,
                         'test/threshold': -0.10720324018115868,
                         'train/loss/train': 79.03611061789773}],
            'partition': {'client0': {'n_test': 2221, 'n_test_anomalies': 730, 'n_train': 1490},
                          'client1': {'n_test': 16254, 'n_test_anomalies': 5341, 'n_train': 10912}}}}


@pytest.mark.slow
@pytest.mark.parametrize("method", sorted(RECORDED))
def test_the_study_gives_the_numbers_recorded_before_the_redesign(kdd_slice, tmp_path, method):
    with initialize(version_base="1.3", config_path="../../conf"):
        cfg = compose(
            config_name="config",
            overrides=[f"data.train_path={kdd_slice}", "data.cache_dir=null", f"paths.output_dir={tmp_path}", "scenario=s4",
                       "fed.rounds=2", "trainer.accelerator=cpu", f"method={method}", "data.scaling=federated_minmax"],
        )  # fmt: skip
    payload = train(cfg)
    expected = RECORDED[method]
    assert payload["partition"] == expected["partition"]
    assert set(payload["final"]) == set(expected["final"]) | ADDED_SINCE
    _assert_as_recorded(payload["final"], expected["final"])
    assert len(payload["history"]) == len(expected["history"])
    for got, want in zip(payload["history"], expected["history"]):
        _assert_as_recorded(got, want)


# Metrics added after the numbers were recorded (the reconstruction error's AUROC): new
# measurements of the same runs, which the recorded ones say nothing of.
ADDED_SINCE = {"test/auroc_reconstruction"}


def _recorded(got: dict, want: dict) -> dict:
    """``got`` less the metrics added since ``want`` was recorded."""
    return {k: v for k, v in got.items() if k not in ADDED_SINCE or k in want}


# Values computed in float32 (the energy threshold, the training losses): their last bits follow
# the CPU's vector kernels, so on another machine they match to float32's precision (relative,
# or absolute near zero, where a threshold can fall). The study's metrics (precision, recall,
# F1, AUROC, AP: ranks and counts) match exactly.
FLOAT32_VALUES = ("test/threshold", "train/loss/")
FLOAT32_TOLERANCE = {"rel": 1e-6, "abs": 1e-6}


def _assert_as_recorded(got: dict, want: dict) -> None:
    got = _recorded(got, want)
    assert set(got) == set(want)
    for key, value in want.items():
        tolerance = FLOAT32_TOLERANCE if key.startswith(FLOAT32_VALUES) else {"rel": 1e-12}
        assert got[key] == pytest.approx(value, **tolerance), key
