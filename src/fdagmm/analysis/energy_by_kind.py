"""Why a model misses: the energies of the evaluated client's test records by kind, from the
``model.pt`` of finished runs.

Three kinds: ``normal`` records (the anomalies of this protocol), the common attacks (each
type at least ``COMMON_SHARE`` of the file's attack records: smurf and neptune in KDDCUP99)
and the rare ones (every other attack type). Each run's test set is rebuilt from its own
resolved config (data, partition, seed), scored by its exported detector and checked against
the run's own AUROC before anything is drawn. Writes, into the first sweep dir,
``energy_by_kind.md`` (per scenario, column and kind: records, share flagged, median energy
above the threshold) and ``energy_by_kind.png`` (histograms of energy minus the run's threshold).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from fdagmm.config import build  # noqa: E402
from fdagmm.data.datamodule import client_records  # noqa: E402
from fdagmm.data.dataset import ConnectionDataset, build_dataset  # noqa: E402
from fdagmm.detection.detector import Detector  # noqa: E402
from fdagmm.analysis.markdown import markdown_table  # noqa: E402
from fdagmm.analysis.report import collect, column_of  # noqa: E402
from fdagmm.analysis.sweeps import sweep_jobs  # noqa: E402

COMMON_SHARE = 0.01
KINDS = ("normal", "common attacks", "rare attacks")
# The energies recomputed on the CPU must give the run's AUROC (its own device's float order aside).
AUROC_AGREEMENT = 1e-3


def record_kinds(labels: np.ndarray, file_labels: np.ndarray, benign_labels: list[str]) -> np.ndarray:
    """Each label's kind; an attack type's share is counted over the whole file's attacks."""
    attacks = file_labels[~np.isin(file_labels, benign_labels)]
    types, counts = np.unique(attacks, return_counts=True)
    common = set(types[counts >= COMMON_SHARE * len(attacks)])
    return np.where(np.isin(labels, benign_labels), KINDS[0], np.where(np.isin(labels, list(common)), KINDS[1], KINDS[2]))


@functools.lru_cache(maxsize=4)
def _client_records(data_yaml: str, partition_yaml: str, seed: int) -> tuple[ConnectionDataset, list]:
    """The data set and the partition's clients, read and split once for every run of the
    same data, scenario and seed."""
    dataset = build_dataset(OmegaConf.create(data_yaml))
    return dataset, client_records(dataset, build(OmegaConf.create(partition_yaml)), seed)


def scored_test_records(run_dir: Path, data_path: str | None = None) -> tuple[Detector, ConnectionDataset, list, np.ndarray]:
    """A run's exported detector, its data set, every client's records (``ClientRecords``) and
    the energies of the evaluated client's test records, checked against the run's own AUROC."""
    detector = Detector.load(run_dir)
    cfg = OmegaConf.create(detector.config)
    if data_path is not None:
        cfg.data.train_path = data_path
    dataset, records = _client_records(OmegaConf.to_yaml(cfg.data), OmegaConf.to_yaml(cfg.partition), cfg.seed)
    client = records[cfg.method.eval_client]
    energy = detector.energy(client.test)
    final = json.loads((run_dir / "metrics.json").read_text())["final"]["test/auroc"]
    auroc = roc_auc_score(client.test_is_anomaly, energy)
    if abs(auroc - final) > AUROC_AGREEMENT:
        raise ValueError(f"{run_dir}: its model scores AUROC {auroc:.4f} here against {final:.4f} in its run; is it the same data?")
    return detector, dataset, records, energy


def run_energies(run_dir: Path, data_path: str | None = None) -> pd.DataFrame:
    """The evaluated client's test records of one run: kind and energy minus the run's threshold."""
    detector, dataset, records, energy = scored_test_records(run_dir, data_path)
    client = records[OmegaConf.create(detector.config).method.eval_client]
    kinds = record_kinds(dataset.labels(client.test), dataset.labels(client.train_frame), list(dataset.schema.benign_labels))
    return pd.DataFrame({"kind": pd.Categorical(kinds, KINDS),
                         "above_threshold": energy - detector.threshold})  # fmt: skip


def collect_energies(sweep_dirs: list[Path], columns: list[str], seed: int, data_path: str | None = None) -> pd.DataFrame:
    """One row per test record of every run of ``seed`` in ``columns``, by scenario and column."""
    frames, seen = [], {}
    for job in sweep_jobs(sweep_dirs):
        cfg = job.cfg
        if int(cfg.seed) != seed or job.metrics is None:
            continue
        column = column_of(cfg, job.metrics["strategy"])
        if column in columns:
            if (cfg.partition.name, column) in seen:
                raise ValueError(f"{job.dir} and {seen[cfg.partition.name, column]}: two runs of {cfg.partition.name}, {column}, "
                                 f"seed {seed}; pass sweeps with one run per scenario, column and seed")  # fmt: skip
            seen[cfg.partition.name, column] = job.dir
            frames.append(run_energies(job.dir, data_path).assign(scenario=cfg.partition.name, column=column))
    if not frames:
        raise FileNotFoundError(f"no finished run of seed {seed} in columns {', '.join(columns)} in {', '.join(map(str, sweep_dirs))}")
    energies = pd.concat(frames, ignore_index=True)
    return energies.assign(column=pd.Categorical(energies.column, [c for c in columns if c in set(energies.column)]))


def kind_table(energies: pd.DataFrame) -> pd.DataFrame:
    """Per scenario, column and kind: records, the share flagged, the median energy above the threshold."""
    grouped = energies.groupby(["scenario", "column", "kind"], observed=True)["above_threshold"]
    return pd.DataFrame({
        "records": grouped.size(),
        "flagged": grouped.apply(lambda e: float((e > 0).mean())),
        "median above threshold": grouped.median(),
    })  # fmt: skip


def plot_energy_by_kind(energies: pd.DataFrame, columns: list[str], labels: dict[str, str], path: Path) -> None:
    scenarios = sorted(energies.scenario.unique())
    fig, axes = plt.subplots(len(scenarios), len(KINDS), figsize=(11, 2.4 * len(scenarios)), dpi=110, squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for row, scenario in zip(axes, scenarios):
        for ax, kind in zip(row, KINDS):
            part = energies.query("scenario == @scenario and kind == @kind")
            for color, column in zip(colors, columns):
                values = part.loc[part.column == column, "above_threshold"]
                if len(values):
                    # symlog-spaced bins: energies span two orders of magnitude on both sides of the threshold
                    edges = np.sign(b := np.linspace(-2.5, 2.5, 51)) * (10 ** np.abs(b) - 1)
                    ax.hist(np.clip(values, edges[0], edges[-1]), bins=edges, histtype="step", color=color,
                            label=labels.get(column, column), weights=np.full(len(values), 1 / len(values)))  # fmt: skip
            ax.axvline(0, color="k", linewidth=0.8)
            ax.set_xscale("symlog", linthresh=1)
            ax.set_title(f"{scenario}: {kind} ({part.groupby('column').size().max()} records)", fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("energy minus the run's threshold (flagged > 0)")
    for row in axes:
        row[0].set_ylabel("share of records")
    axes[0][0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_energy_by_kind(sweep_dirs: list[Path], columns: list[str], seed: int, data_path: str | None = None) -> Path:
    energies = collect_energies(sweep_dirs, columns, seed, data_path)
    labels = collect(sweep_dirs).labels
    out = Path(sweep_dirs[0])
    plot_energy_by_kind(energies, columns, labels, out / "energy_by_kind.png")
    table = kind_table(energies).round(4).reset_index()
    table["column"] = table["column"].map(lambda c: labels.get(c, c))
    text = [
        f"# Energies of the evaluated client's test records by kind (seed {seed})",
        "",
        f"Kinds: `normal` (the anomalies); common attacks (each type >= {COMMON_SHARE:.0%} of the file's attacks); "
        "rare attacks (the other types). Flagged: energy above the run's threshold. For normal records that share "
        "is the recall; for attacks, the false-positive rate.",
        "",
        markdown_table(table.set_index("scenario")),
        "",
        "![Energy by kind](energy_by_kind.png)",
        "",
    ]
    path = out / "energy_by_kind.md"
    path.write_text("\n".join(text))
    return path
