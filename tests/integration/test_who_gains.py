"""who_gains on two tiny real sweeps (K=3 Dirichlet clients, 1 round): each client's gain is its
federated AUROC minus its AUROC alone, read from the jobs' own metrics."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fdagmm.analysis.who_gains import client_gains, write_who_gains

ROOT = Path(__file__).resolve().parents[2]


def _sweeps(root: Path, *common: str) -> tuple[Path, Path]:
    """A federated sweep (FedAvg) and an alone sweep (each of three clients) of ``common``."""
    for name, method in (("fedavg", ["method=fdagmm"]), ("alone", ["method=local", "method.home_client=0,1,2"])):
        result = subprocess.run(
            [sys.executable, "src/train.py", *common, "partition.num_clients=3", "seed=0", "fed.rounds=1", "data.cache_dir=null",
             *method, f"hydra.sweep.dir={root / name}"],
            cwd=ROOT, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
    return root / "fedavg", root / "alone"


@pytest.fixture(scope="module")
def sweeps(kdd_slice, tmp_path_factory) -> tuple[Path, Path]:
    """KDDCUP99's who_gains: the skew is partition.alpha."""
    return _sweeps(tmp_path_factory.mktemp("who_gains"), "experiment=who_gains", f"data.train_path={kdd_slice}", "partition.alpha=0.5,5")


@pytest.fixture(scope="module")
def attack_sweeps(unsw_path, tmp_path_factory) -> tuple[Path, Path]:
    """Each organisation its own attacks (UNSW-NB15): the skew is partition.attack_alpha."""
    return _sweeps(
        tmp_path_factory.mktemp("who_gains_attacks"), "experiment=who_gains_attacks", "data=unsw_nb15", f"data.train_path={unsw_path}",
        "partition.attack_alpha=0.5,5",
    )  # fmt: skip


def _metrics(sweep_dir: Path, *parts: str) -> dict:
    (job,) = [j for j in sweep_dir.iterdir() if j.is_dir() and all(p in (j / ".hydra" / "overrides.yaml").read_text() for p in parts)]
    return json.loads((job / "metrics.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("fixture, skew", [("sweeps", "partition.alpha"), ("attack_sweeps", "partition.attack_alpha")])
def test_gains_are_the_federated_minus_the_alone_auroc_of_each_client(request, fixture, skew):
    federated_dir, alone_dir = request.getfixturevalue(fixture)
    gains = client_gains(federated_dir, alone_dir)
    assert len(gains) == 2 * 3  # two partitions x three clients
    for row in gains.itertuples():
        federated = _metrics(federated_dir, f"{skew}={row.alpha:g}")
        alone = _metrics(alone_dir, f"{skew}={row.alpha:g}", f"method.home_client={row.client}")
        client = f"client{row.client}"
        assert row.n_train == federated["partition"][client]["n_train"] == alone["partition"][client]["n_train"]
        assert row.auroc_federated == federated["per_client"][client]["test/auroc"]
        assert row.auroc_alone == alone["final"]["test/auroc"]
        assert row.gain == pytest.approx(row.auroc_federated - row.auroc_alone, abs=1e-15)
    report = write_who_gains(federated_dir, alone_dir).read_text()
    assert report.startswith("# Who gains from federation (fedavg)") and f"alpha: {skew}." in report
    assert "| 0.5 | 3 |" in report and "| 5.0 | 3 |" in report  # each alpha's three clients
    for alpha, part in gains.groupby("alpha"):  # one seed: the clients' mean AUROC, federated and alone
        assert f"| {part.auroc_federated.mean():.4f} | {part.auroc_alone.mean():.4f} |" in report
    assert (federated_dir / "who_gains.png").stat().st_size > 0


def test_who_gains_refuses_a_dir_without_jobs(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"holds no Hydra job dirs \(\*/.hydra/config.yaml\)"):
        client_gains(tmp_path, tmp_path)
    (tmp_path / "0_fdagmm_s3_seed0" / ".hydra").mkdir(parents=True)  # a job that did not finish
    (tmp_path / "0_fdagmm_s3_seed0" / ".hydra" / "config.yaml").write_text("seed: 0\n")
    with pytest.raises(FileNotFoundError, match="holds no finished Hydra jobs"):
        client_gains(tmp_path, tmp_path)


def test_who_gains_refuses_jobs_of_another_experiment(tmp_path):
    job = tmp_path / "0_fdagmm_s3_seed0"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "config.yaml").write_text("partition:\n  name: s3\n")
    (job / "metrics.json").write_text('{"final": {"test/auroc": 0.8}}')
    with pytest.raises(ValueError, match="not a run of experiment=who_gains"):
        client_gains(tmp_path, tmp_path)
