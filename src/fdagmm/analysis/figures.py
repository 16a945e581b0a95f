"""ROC curves and energies by attack family, from the ``model.pt`` of finished DAGMM runs on a
data set whose benign traffic trains.

Each run's test set is rebuilt from its resolved config (data, partition, seed) and scored by
its exported detector; the AUROC must match the run's own before anything is drawn
(``energy_by_kind.scored_test_records``, as for the KDDCUP99 study's figures). PCA reconstruction
error, fitted on the same pooled training records (``method=pca_pooled``: deterministic), is
drawn beside them as the classical reference. Attack families: the schema's
``attack_category`` column where it has one (UNSW-NB15); otherwise the attack types that occur
in the training file against those that are new in the test set (NSL-KDD's KDDTest+ holds 17
types that never occur in training). Writes, into the first sweep dir, ``roc.png`` and
``energy_by_family.png`` and ``energy_by_family.md`` (per run and family: records, AUROC
against the benign records, share flagged).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from sklearn.metrics import roc_auc_score, roc_curve  # noqa: E402

from fdagmm.detection.baselines import PCAReconstructionScorer  # noqa: E402
from fdagmm.analysis.energy_by_kind import scored_test_records  # noqa: E402
from fdagmm.analysis.markdown import markdown_table  # noqa: E402
from fdagmm.analysis.report import column_of  # noqa: E402
from fdagmm.analysis.sweeps import sweep_jobs  # noqa: E402

BENIGN = "benign"
SEEN, NEW = "attack types seen in training", "attack types new in the test set"


def families(dataset, test: pd.DataFrame, train_labels: np.ndarray) -> np.ndarray:
    """Each test record's family: ``benign``, else its attack category, else seen or new type."""
    schema = dataset.schema
    benign = ~dataset.is_anomaly(test)
    if schema.attack_category is not None:
        family = test[schema.attack_category].to_numpy(dtype=str)
    else:
        family = np.where(np.isin(dataset.labels(test), train_labels), SEEN, NEW)
    return np.where(benign, BENIGN, family)


def run_scores(run_dir: Path) -> dict:
    """A DAGMM run's test records (energies, anomaly flags, families), its threshold, and the
    PCA reference's scores on the same records."""
    detector, dataset, records, energy = scored_test_records(run_dir)
    client = records[OmegaConf.create(detector.config).method.eval_client]
    pooled_train = pd.concat([r.train for r in records], ignore_index=True)
    pca = PCAReconstructionScorer().fit(detector.encoder.transform(pooled_train))
    train_labels = dataset.labels(dataset.read(dataset.train_paths))
    return {
        "data": dataset.name, "energy": energy, "pca": pca.decision_function(detector.encoder.transform(client.test)),
        "is_anomaly": client.test_is_anomaly, "family": families(dataset, client.test, np.unique(train_labels)),
        "threshold": detector.threshold,
    }  # fmt: skip


def collect_runs(sweep_dirs: list[Path], seed: int) -> dict[tuple[str, str], dict]:
    """The DAGMM runs of ``seed`` by (data set, name): the column and the size of its code."""
    runs = {}
    for job in sweep_jobs(sweep_dirs):
        cfg = job.cfg
        if int(cfg.seed) != seed or not job.has("model.pt") or job.metrics is None:
            continue
        column = column_of(cfg, job.metrics["strategy"])
        runs[(cfg.data.name, f"{column}, latent {cfg.model.net.latent_dim}")] = run_scores(job.dir)
    if not runs:
        raise FileNotFoundError(f"no finished DAGMM run of seed {seed} in {', '.join(map(str, sweep_dirs))}")
    return runs


def plot_roc(runs: dict, path: Path) -> None:
    data_sets = sorted({d for d, _ in runs})
    fig, axes = plt.subplots(1, len(data_sets), figsize=(5 * len(data_sets), 4.4), dpi=110, squeeze=False)
    for ax, data in zip(axes[0], data_sets):
        mine = {c: r for (d, c), r in runs.items() if d == data}
        reference = next(iter(mine.values()))
        for name, run in [*mine.items(), ("PCA reconstruction pooled", {**reference, "energy": reference["pca"]})]:
            fpr, tpr, _ = roc_curve(run["is_anomaly"], run["energy"])
            ax.plot(fpr, tpr, label=f"{name} ({roc_auc_score(run['is_anomaly'], run['energy']):.3f})", linewidth=1)
        ax.plot([0, 1], [0, 1], color="grey", linewidth=0.5, linestyle=":")
        ax.set(title=data, xlabel="false-positive rate (benign flagged)", ylabel="true-positive rate (attacks flagged)")
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def family_table(runs: dict) -> pd.DataFrame:
    """Per run and family: records, AUROC against the benign records, share above the threshold."""
    rows = []
    for (data, name), run in runs.items():
        benign = run["family"] == BENIGN
        for family in sorted(set(run["family"]), key=lambda f: (f != BENIGN, f)):
            part = run["family"] == family
            auroc = np.nan if family == BENIGN else roc_auc_score(part[benign | part], run["energy"][benign | part])
            rows.append({"data": data, "run": name, "family": family, "records": int(part.sum()),
                         "AUROC vs benign": auroc, "flagged": float((run["energy"][part] > run["threshold"]).mean())})  # fmt: skip
    return pd.DataFrame(rows).set_index("data")


def plot_families(runs: dict, name: str, path: Path) -> None:
    """The cumulative distribution of the energies of the runs named ``name`` (minus the run's
    threshold: flagged > 0), benign records and each attack family."""
    mine = {d: r for (d, n), r in runs.items() if n == name}
    if not mine:
        raise FileNotFoundError(f"no run named {name!r}: the runs are {sorted({n for _, n in runs})}")
    fig, axes = plt.subplots(1, len(mine), figsize=(6 * len(mine), 4.2), dpi=110, squeeze=False)
    for ax, (data, run) in zip(axes[0], sorted(mine.items())):
        for family in sorted(set(run["family"]), key=lambda f: (f != BENIGN, f)):
            values = np.sort(run["energy"][run["family"] == family] - run["threshold"])
            ax.plot(values, np.arange(1, len(values) + 1) / len(values), label=f"{family} ({len(values)})",
                    linewidth=2.0 if family == BENIGN else 0.9, color="k" if family == BENIGN else None)  # fmt: skip
        ax.axvline(0, color="grey", linewidth=0.8, linestyle=":")
        ax.set_xscale("symlog", linthresh=1)
        ax.set(title=f"{data}: {name}", xlabel="energy minus the run's threshold (flagged > 0)", ylabel="share of the family at or below")
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_figures(sweep_dirs: list[Path], seed: int, name: str) -> Path:
    """The figures of the DAGMM runs of ``seed``; the energy histograms of the runs named ``name``
    (a column and the size of its code, as ``collect_runs`` names them: ``pooled, latent 8``)."""
    runs = collect_runs(sweep_dirs, seed)
    out = Path(sweep_dirs[0])
    plot_roc(runs, out / "roc.png")
    plot_families(runs, name, out / "energy_by_family.png")
    text = [
        f"# ROC curves and energies by attack family (seed {seed})",
        "",
        "AUROC vs benign: the family's records against the benign test records. Flagged: energy above the run's threshold.",
        "",
        markdown_table(family_table(runs).round(4), index_name="data"),
        "",
        "![ROC curves](roc.png)",
        "",
        "![Energy by family](energy_by_family.png)",
        "",
    ]
    path = out / "energy_by_family.md"
    path.write_text("\n".join(text))
    return path
