"""Aggregate a sweep's runs into the study's tables and figures.

Reads every job dir of one or more Hydra multiruns (``.hydra/config.yaml`` and
``metrics.json``) and writes, into the first sweep dir: ``report.md``, one CSV per metric,
``f1_by_scenario.png``, ``rounds.png`` and, when federations and the pooled bound are both
there, ``gap_to_pooled.png``. A column is a method, with its strategy when that is not FedAvg
and ``untrained`` for a network trained 0 epochs. A job without ``metrics.json``, or a
(scenario, column, seed) of the grid with no job, is listed as missing rather than averaged away.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from fdagmm.analysis.markdown import markdown_table  # noqa: E402
from fdagmm.analysis.sweeps import sweep_jobs  # noqa: E402
from fdagmm.data.schema import load_schema  # noqa: E402
from fdagmm.detection.evaluation import THRESHOLD_REFS  # noqa: E402

# Columns in the study's order, then the other strategies and the classical baselines (any
# other column follows, sorted); each is labelled as its runs name it (metrics.json's label:
# DAGMM C0, FDAGMM, DAGMM C0&C1, DAGMM C1 in the study's two-client scenarios).
METHODS = (
    "local", "local_untrained", "fdagmm", "fdagmm_fedavgm", "fdagmm_fedadam", "fdagmm_fedprox", "fdagmm_fedper",
    "pooled", "remote", "iforest_local", "iforest_pooled", "pca_local", "pca_pooled",
)  # fmt: skip
METRICS = {
    "test/precision": "Precision",
    "test/recall": "Recall",
    "test/f1": "F1",
    "test/auroc": "AUROC",
    "test/avg_precision": "Average precision",
    "test/auroc_reconstruction": "AUROC of DAGMM's reconstruction error",  # DAGMM runs only
}
THRESHOLDED = ["test/precision", "test/recall", "test/f1"]


@dataclass
class Sweep:
    runs: pd.DataFrame  # one row per finished job: scenario, method, seed, job, metrics
    other_ref: pd.DataFrame  # the same jobs' P, R, F1 with the other threshold reference
    histories: dict[tuple[str, str, int], pd.DataFrame]  # per-round history of each job, by (scenario, column, seed)
    missing: list[str]  # failed jobs and holes in the grid, one line each
    non_finite: list[str]  # jobs with a NaN or inf loss or metric, one line each
    settings: dict[str, object]
    other_ref_name: str
    labels: dict[str, str]  # column -> its name in tables


def column_of(cfg, strategy: str) -> str:
    """A job's column: its method, with a strategy other than FedAvg, ``_untrained`` at 0 epochs."""
    name = cfg.method.name + (f"_{strategy}" if cfg.method.federated and strategy != "fedavg" else "")
    return name + ("_untrained" if cfg.fed.rounds == 0 and cfg.method.get("detector") is None else "")


def column_label(cfg, label: str) -> str:
    """metrics.json's label, saying which columns are references rather than candidates."""
    if cfg.fed.rounds == 0 and cfg.method.get("detector") is None:
        return f"{label} (untrained)"
    if not cfg.method.federated and cfg.method.trains_on == "all":
        return f"{label} (ideal bound)" if cfg.method.get("detector") is None else f"{label} (pooled, non-private reference)"
    return label


def collect(sweep_dirs: Path | list[Path]) -> Sweep:
    """Every job of ``sweep_dirs`` (one sweep dir or several: e.g. a study sweep and a baselines sweep)."""
    rows, other_rows, histories, missing, non_finite, labels = [], [], {}, [], [], {}
    settings: dict[str, object] = {}
    for job in sweep_jobs(sweep_dirs):
        cfg, metrics = job.cfg, job.metrics
        if metrics is None:
            missing.append(f"{job.name}: no metrics.json (the job failed or was stopped; see its train.log)")
            continue
        key = {"scenario": cfg.partition.name, "method": column_of(cfg, metrics["strategy"]), "seed": int(cfg.seed)}
        labels.setdefault(key["method"], column_label(cfg, metrics["label"]))
        settings = settings or _settings(cfg)
        rows.append({**key, "job": job.name, **metrics["final"]})
        other = next(r for r in THRESHOLD_REFS if r != cfg.eval.threshold_ref)
        if other in metrics["final_by_threshold_ref"]:  # runs with eval.compare_threshold_refs=true
            other_rows.append({**key, **metrics["final_by_threshold_ref"][other]})
        history = pd.DataFrame(metrics["history"])
        histories[(key["scenario"], key["method"], key["seed"])] = history
        numbers = history.select_dtypes("number")
        bad = [c for c in numbers if not np.isfinite(numbers[c].dropna()).all()]
        bad += [k for k, v in metrics["final"].items() if not np.isfinite(v)]
        if bad:
            non_finite.append(f"{job.name}: non-finite {', '.join(sorted(set(bad)))}")
    runs = pd.DataFrame(rows, columns=["scenario", "method", "seed", "job", *METRICS])
    grid = itertools.product(sorted(runs.scenario.unique()), columns_of(runs), sorted(runs.seed.unique()))
    present = set(zip(runs.scenario, runs.method, runs.seed))
    missing += [f"scenario {s}, method {m}, seed {seed}: no finished job" for s, m, seed in grid if (s, m, seed) not in present]
    return Sweep(
        runs=runs,
        other_ref=pd.DataFrame(other_rows, columns=["scenario", "method", "seed", *METRICS]),
        histories=histories,
        missing=missing,
        non_finite=non_finite,
        settings=settings,
        other_ref_name=next(r for r in THRESHOLD_REFS if r != settings.get("threshold reference")),
        labels=labels,
    )


def columns_of(runs: pd.DataFrame) -> list[str]:
    """The columns present: METHODS' order, then any other, sorted."""
    present = set(runs.method)
    return [m for m in METHODS if m in present] + sorted(present - set(METHODS))


def summary(runs: pd.DataFrame, metric: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Mean, sample standard deviation and count over seeds: scenarios x columns."""
    grouped = runs.groupby(["scenario", "method"])[metric]
    methods = columns_of(runs)
    shape = lambda s: s.unstack("method").reindex(columns=methods)  # noqa: E731
    return shape(grouped.mean()), shape(grouped.std(ddof=1)), shape(grouped.count())


def format_table(runs: pd.DataFrame, metric: str, labels: dict[str, str]) -> pd.DataFrame:
    mean, std, count = summary(runs, metric)
    n_seeds = count.max().max()
    cells = mean.copy().astype(object)
    for s, m in itertools.product(mean.index, mean.columns):
        if pd.isna(mean.loc[s, m]):
            ran = ((runs.scenario == s) & (runs.method == m)).any()
            cells.loc[s, m] = "n/a" if ran else "missing"  # n/a: the method has no such metric
            continue
        spread = "" if pd.isna(std.loc[s, m]) else f" ({std.loc[s, m]:.4f})"
        partial = "" if count.loc[s, m] == n_seeds else f" [{count.loc[s, m]} of {n_seeds} seeds]"
        cells.loc[s, m] = f"{mean.loc[s, m]:.4f}{spread}{partial}"
    return cells.rename(columns=labels)


def write_csv(runs: pd.DataFrame, metric: str, path: Path, labels: dict[str, str]) -> None:
    """The table in numbers: per scenario, each method's mean, std and seed count."""
    mean, std, count = summary(runs, metric)
    parts = {"mean": mean, "std": std, "n_seeds": count}
    table = pd.concat(parts, axis=1).swaplevel(axis=1)
    table = table.reindex(columns=[(m, p) for m in mean.columns for p in parts])
    table.columns = [f"{labels[m]} {p}" for m, p in table.columns]
    table.to_csv(path, index_label="scenario", float_format="%.6f")


def plot_f1_by_scenario(runs: pd.DataFrame, path: Path, labels: dict[str, str]) -> None:
    mean, std, _ = summary(runs, "test/f1")
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=110)
    width = 0.8 / len(mean.columns)
    x = np.arange(len(mean.index))
    for i, method in enumerate(mean.columns):
        ax.bar(x + (i - (len(mean.columns) - 1) / 2) * width, mean[method], width,
               yerr=std[method].fillna(0), capsize=3, label=labels[method])  # fmt: skip
    ax.set_xticks(x, mean.index)
    ax.set_xlabel("scenario")
    ax.set_ylabel("F1 (mean and std over seeds)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, ncols=4, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_rounds(sweep: Sweep, path: Path) -> None:
    """FDAGMM's AUROC and F1 per round on the evaluated client, mean and +-1 std band, with
    the final levels of the local and pooled baselines."""
    scenarios = sorted({s for s, m, _ in _per_round(sweep) if m == "fdagmm"})
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), dpi=110, sharex=True)
    for metric, ax in zip(["test/auroc", "test/f1"], axes):
        for color, scenario in zip(plt.rcParams["axes.prop_cycle"].by_key()["color"], scenarios):
            curves = _curves(sweep, scenario, "fdagmm", metric)
            mean, std = curves.mean(axis=1), curves.std(axis=1, ddof=1).fillna(0)
            ax.plot(mean.index, mean, color=color, label=f"{scenario} FDAGMM")
            ax.fill_between(mean.index, mean - std, mean + std, color=color, alpha=0.2)
            for method, style in (("local", "--"), ("pooled", ":")):
                level = sweep.runs.query("scenario == @scenario and method == @method")[metric].mean()
                if not np.isnan(level):
                    ax.axhline(level, color=color, linestyle=style, linewidth=1)
        ax.set_title(f"{METRICS[metric]} on the evaluated client's test set")
        ax.set_xlabel("communication round")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for method, style in (("local", "--"), ("pooled", ":")):
        if method in sweep.labels:
            axes[0].plot([], [], "k" + style, linewidth=1, label=f"{sweep.labels[method]} (final)")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _per_round(sweep: Sweep) -> dict[tuple[str, str, int], pd.DataFrame]:
    """The histories measured after every round (eval.every_n_rounds=1): curves, not points."""
    return {k: h for k, h in sweep.histories.items() if "test/auroc" in h and h["test/auroc"].notna().all() and len(h)}


def _curves(sweep: Sweep, scenario: str, column: str, metric: str) -> pd.DataFrame:
    """One column per seed with a per-round history: ``metric`` by round."""
    return pd.concat(
        [h.set_index("round")[metric].dropna() for (s, m, _), h in _per_round(sweep).items() if s == scenario and m == column],
        axis=1,
    )


def federated_columns(sweep: Sweep) -> list[str]:
    return [c for c in columns_of(sweep.runs) if c.startswith("fdagmm")]


def plot_gap_to_pooled(sweep: Sweep, path: Path, auroc_target: float = 0.02) -> None:
    """Per scenario and federated column: the pooled bound's mean minus the column's mean,
    for AUROC and F1 (positive: below the bound)."""
    columns = federated_columns(sweep)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), dpi=110)
    for metric, ax in zip(["test/auroc", "test/f1"], axes):
        mean, _, _ = summary(sweep.runs, metric)
        gap = mean[columns].rsub(mean["pooled"], axis=0)
        width = 0.8 / len(columns)
        x = np.arange(len(gap.index))
        for i, column in enumerate(columns):
            ax.bar(x + (i - (len(columns) - 1) / 2) * width, gap[column], width, label=sweep.labels[column])
        ax.axhline(0, color="k", linewidth=0.8)
        if metric == "test/auroc":
            ax.axhline(auroc_target, color="k", linestyle="--", linewidth=0.8, label=f"target: {auroc_target} below the bound")
        ax.set_xticks(x, gap.index)
        ax.set_xlabel("scenario")
        ax.set_title(f"{METRICS[metric]}: pooled bound minus federation (mean over seeds)", fontsize=9)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_rounds_by_strategy(sweep: Sweep, path: Path) -> None:
    """Each federated column's AUROC and F1 per round (mean over the seeds measured every
    round), one panel per scenario, with the pooled bound's final mean dotted."""
    scenarios = sorted({s for s, m, _ in _per_round(sweep) if m.startswith("fdagmm")})
    fig, axes = plt.subplots(2, len(scenarios), figsize=(3.2 * len(scenarios), 6), dpi=110, sharex=True, squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for row, metric in enumerate(["test/auroc", "test/f1"]):
        for ax, scenario in zip(axes[row], scenarios):
            for color, column in zip(colors, federated_columns(sweep)):
                curves = _curves(sweep, scenario, column, metric)
                if not curves.empty:
                    ax.plot(curves.index, curves.mean(axis=1), color=color, label=sweep.labels[column])
            level = sweep.runs.query("scenario == @scenario and method == 'pooled'")[metric].mean()
            if not np.isnan(level):
                ax.axhline(level, color="k", linestyle=":", linewidth=1, label=f"{sweep.labels['pooled']} (final)")
            ax.set_title(f"{scenario}: {METRICS[metric]}", fontsize=9)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in axes[1]:
        ax.set_xlabel("communication round")
    axes[0][0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(sweep_dirs: Path | list[Path], wall_time_s: float | None = None) -> Path:
    """Write report.md, table_<metric>.csv and the figures into the first of ``sweep_dirs``."""
    sweep = collect(sweep_dirs)
    sweep_dir = sweep_dirs if isinstance(sweep_dirs, Path) else Path(sweep_dirs[0])
    if sweep.runs.empty:
        raise FileNotFoundError(f"no job in {sweep_dir} finished: " + "; ".join(sweep.missing))
    seeds = sorted(sweep.runs.seed.unique())
    parts = [
        "# FDAGMM: reproduction of the study",
        "",
        f"Sweep{'s' if isinstance(sweep_dirs, list) and len(sweep_dirs) > 1 else ''} "
        f"{', '.join(f'`{d}`' for d in ([sweep_dirs] if isinstance(sweep_dirs, Path) else sweep_dirs))}: "
        f"{len(sweep.runs)} finished jobs, scenarios "
        f"{', '.join(sorted(sweep.runs.scenario.unique()))}, seeds {', '.join(map(str, seeds))}."
        + (f" Wall time of the sweep: {wall_time_s / 60:.1f} min." if wall_time_s is not None else ""),
        "",
        f"Cells: mean (sample standard deviation) over seeds. Positive class: the anomalies ({sweep.settings['anomalies']}).",
        "DAGMM C1 is evaluated on client 1's test set, every other method on client 0's.",
        "",
        "## Settings",
        "",
        *[f"- {k}: {v}" for k, v in sweep.settings.items()],
    ]
    for metric, name in METRICS.items():
        write_csv(sweep.runs, metric, sweep_dir / f"table_{metric.split('/')[1]}.csv", sweep.labels)
        parts += ["", f"## {name}", "", markdown_table(format_table(sweep.runs, metric, sweep.labels))]
    parts += [
        "",
        f"## Precision, recall and F1 with the `{sweep.other_ref_name}` threshold reference",
        "",
        "The same trained models and energies; only the threshold's reference set differs, "
        "so AUROC and average precision are unchanged."
        + ("" if not sweep.other_ref.empty else " Not measured in this sweep: run it with eval.compare_threshold_refs=true."),
    ]
    for metric in THRESHOLDED if not sweep.other_ref.empty else []:
        name = f"table_{metric.split('/')[1]}_{sweep.other_ref_name}_threshold.csv"
        write_csv(sweep.other_ref, metric, sweep_dir / name, sweep.labels)
        parts += ["", f"### {METRICS[metric]}", "", markdown_table(format_table(sweep.other_ref, metric, sweep.labels))]
    parts += ["", "## Missing or failed jobs", ""]
    parts += [f"- {line}" for line in sweep.missing] or ["None: every job of the grid finished."]
    parts += ["", "## Numerical faults", ""]
    parts += [f"- {line}" for line in sweep.non_finite] or [
        "None: every loss and metric of every round of every finished job is finite."
    ]
    plot_f1_by_scenario(sweep.runs, sweep_dir / "f1_by_scenario.png", sweep.labels)
    parts += ["", "## Figures", "", "![F1 by scenario and method](f1_by_scenario.png)", ""]
    if any(m == "fdagmm" for _, m, _ in _per_round(sweep)):
        plot_rounds(sweep, sweep_dir / "rounds.png")
        parts += ["![FDAGMM per communication round](rounds.png)", ""]
    if "pooled" in sweep.labels and federated_columns(sweep):
        plot_gap_to_pooled(sweep, sweep_dir / "gap_to_pooled.png")
        parts += ["![Gap to the pooled bound per scenario and strategy](gap_to_pooled.png)", ""]
    if len({m for _, m, _ in _per_round(sweep) if m.startswith("fdagmm")}) > 1:
        plot_rounds_by_strategy(sweep, sweep_dir / "rounds_by_strategy.png")
        parts += ["![Each strategy per communication round](rounds_by_strategy.png)", ""]
    path = sweep_dir / "report.md"
    path.write_text("\n".join(parts))
    return path


# The tuning rule of the strategy study, fixed before any result: the value with the
# higher mean AUROC; a tie within this goes to the higher mean F1.
AUROC_TIE = 0.005


def tuning_table(sweep_dirs: list[Path], key: str) -> tuple[pd.DataFrame, object]:
    """Mean AUROC and F1 per value of the override ``key`` over a tuning sweep's jobs (and per
    scenario), and the value the tuning rule picks."""
    rows = []
    for job in sweep_jobs(sweep_dirs):
        overrides = dict(o.split("=", 1) for o in job.overrides)
        if key not in overrides:
            raise ValueError(f"{job.dir}: no override {key}; pass the key the tuning sweep varies")
        if job.metrics is not None:
            final = job.metrics["final"]
            rows.append({key: overrides[key], "scenario": job.cfg.partition.name, "auroc": final["test/auroc"], "f1": final["test/f1"]})
    runs = pd.DataFrame(rows, columns=[key, "scenario", "auroc", "f1"])
    table = runs.groupby(key).agg(jobs=("auroc", "size"), auroc=("auroc", "mean"), f1=("f1", "mean"))
    for scenario, part in runs.groupby("scenario"):
        table[f"auroc {scenario}"] = part.groupby(key)["auroc"].mean()
    contenders = table[table.auroc >= table.auroc.max() - AUROC_TIE]
    return table, contenders.f1.idxmax()


def _settings(cfg) -> dict[str, object]:
    return {
        "rounds x local epochs": f"{cfg.fed.rounds} x {cfg.fed.local_epochs} "
        "(centralised methods: as many epochs)",
        "scoring mixture": cfg.fed.gmm_stats,
        "optimiser": f"Adam, learning rate {cfg.model.optimizer.lr}",
        "batch size": cfg.data.batch_size,
        "lambda1, lambda2, K": f"{cfg.model.lambda_energy}, {cfg.model.lambda_cov}, {cfg.model.net.n_components}",
        "anomaly ratio": cfg.eval.anomaly_ratio,
        "threshold reference": cfg.eval.threshold_ref,
        "data": f"{cfg.data.name}: {cfg.data.train_path}",
        "anomalies": "normal records" if cfg.data.schema and load_schema(cfg.data.schema).anomaly == "normal" else "attack records",
    }
