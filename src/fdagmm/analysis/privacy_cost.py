"""What differential privacy costs: AUROC against epsilon, from the sweeps of
``make privacy-cost`` (conf/experiment/privacy_cost.yaml) or ``make private-learning``
(conf/experiment/private_learning.yaml), client-level, or ``make record-dp``
(conf/experiment/record_dp_cost.yaml), record-level; with their references: an untrained
network and each client alone.

Reads every job dir under the given sweep dirs (``.hydra/config.yaml`` and ``metrics.json``)
and writes a Markdown table (mean and standard deviation over seeds of the evaluated client's,
the mean client's and the worst client's AUROC, per scoring mixture, network and epsilon) and
a figure.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from fdagmm.analysis.markdown import markdown_table  # noqa: E402
from fdagmm.analysis.sweeps import sweep_jobs  # noqa: E402

AUROCS = {"final": "client 0", "clients_mean": "mean client", "clients_worst": "worst client"}
# A learning rate below this leaves the network at its initialisation: the untrained reference.
UNTRAINED_LR = 1e-9
ALONE = "each client alone"
# Validation AUROCs this close count as a tie in the learning-rate rule.
LR_TIE = 1e-3


def chosen_learning_rates(validation_dir: Path) -> dict[float, float]:
    """The record-level DP learning-rate rule (docs/privacy.md, "What record-level DP costs"):
    per target epsilon, the ``model.optimizer.lr`` of the validation sweep with the highest
    mean client-0 AUROC over its seeds; ties within ``LR_TIE`` go to the larger rate."""
    runs = {}
    for job in sweep_jobs([validation_dir]):
        if job.metrics is None:
            raise FileNotFoundError(f"{job.dir} has no metrics.json: the job failed or is still running")
        if OmegaConf.select(job.cfg, "data.evaluate_on") != "validation":
            raise ValueError(f"{job.dir} was tested on the test set: the rule chooses on validation data only")
        key = (float(job.cfg.privacy.target_epsilon), float(job.cfg.model.optimizer.lr))
        runs.setdefault(key, []).append(job.metrics["final"]["test/auroc"])
    chosen = {}
    for target in sorted({t for t, _ in runs}):
        means = {lr: sum(a) / len(a) for (t, lr), a in runs.items() if t == target}
        best = max(means.values())
        chosen[target] = max(lr for lr, mean in means.items() if mean >= best - LR_TIE)
    return chosen


def collect(sweep_dirs: list[Path], learning_rates: dict[float, float] | None = None) -> pd.DataFrame:
    """One row per finished federated job: its epsilon target (inf without privacy), mixture,
    network (trained, or untrained below ``UNTRAINED_LR``), seed, the noise multiplier and
    epsilon it ran with, and its AUROCs. Jobs of clients trained alone (``method=local``)
    make one row per seed, over the clients run alone, and the federated rows are then
    taken over the same clients (their ``per_client`` AUROCs), so that all compare alike.
    With ``learning_rates`` (target epsilon -> rate, ``chosen_learning_rates``), a private job
    counts only at its epsilon's chosen rate."""
    rows, alone = [], {}
    jobs = sweep_jobs(sweep_dirs)
    for job in jobs:
        if job.metrics is None:
            raise FileNotFoundError(f"{job.dir} has no metrics.json: the job failed or is still running")
        if OmegaConf.select(job.cfg, "method.name") == "local":
            alone.setdefault(int(job.cfg.seed), {})[int(job.cfg.method.home_client)] = job.metrics["final"]["test/auroc"]
    compared = sorted({k for by_client in alone.values() for k in by_client})
    for job in jobs:
        cfg, metrics = job.cfg, job.metrics
        if OmegaConf.select(cfg, "method.name") == "local":
            continue
        privacy = metrics.get("privacy", {})
        lr = OmegaConf.select(cfg, "model.optimizer.lr", default=None)
        if learning_rates is not None and cfg.privacy.name != "none" and lr != learning_rates.get(cfg.privacy.target_epsilon):
            continue
        if compared:
            aurocs = [metrics["per_client"][f"client{k}"]["test/auroc"] for k in compared]
            values = {"client 0": aurocs[0], "mean client": sum(aurocs) / len(aurocs), "worst client": min(aurocs)}
        else:
            values = {label: metrics[key]["test/auroc"] for key, label in AUROCS.items()}
        rows.append({
            "target": cfg.privacy.target_epsilon if cfg.privacy.name != "none" else math.inf,
            "mixture": cfg.fed.gmm_stats,
            "network": "untrained" if lr is not None and lr < UNTRAINED_LR else "trained",
            "seed": cfg.seed,
            "lr": lr,
            # Record-level DP solves a z per client: the first client compared's (client 0's).
            "z": privacy.get("noise_multiplier", privacy.get("noise_multiplier_by_client", {}).get(f"client{(compared or [0])[0]}", 0.0)),
            "delta": privacy.get("delta", math.nan),
            "epsilon": privacy.get("epsilon", math.inf),
            **values,
        })  # fmt: skip
    for seed, by_client in alone.items():
        aurocs = [by_client[k] for k in compared if k in by_client]
        rows.append({
            "target": math.inf, "mixture": "local", "network": ALONE, "seed": seed, "lr": math.nan, "z": 0.0, "delta": math.nan, "epsilon": math.inf,
            "client 0": aurocs[0], "mean client": sum(aurocs) / len(aurocs), "worst client": min(aurocs),
        })  # fmt: skip
    return pd.DataFrame(rows)


def table(runs: pd.DataFrame) -> pd.DataFrame:
    grouped = runs.groupby(["mixture", "network", "target"])
    out = grouped.agg(seeds=("seed", "count"), lr=("lr", "first"), z=("z", "mean"), epsilon=("epsilon", "max"))
    for label in AUROCS.values():
        mean, std = grouped[label].mean(), grouped[label].std()
        out[f"AUROC {label}"] = [f"{m:.4f} ± {s:.4f}" for m, s in zip(mean, std)]
    out["z"] = out["z"].map(lambda z: f"{z:.3f}" if z else "-")
    out["lr"] = out["lr"].map(lambda lr: "-" if lr is None or math.isnan(lr) else f"{lr:g}")
    out["epsilon"] = out["epsilon"].map(lambda e: "∞" if math.isinf(e) else f"{e:.3f}")
    return out.reset_index().rename(columns={"target": "target ε", "z": "noise z", "epsilon": "ε after the last round"})


def plot(runs: pd.DataFrame, path: Path) -> None:
    """AUROC (mean and worst client) against epsilon, one line per mixture; bars: std over seeds."""
    targets = sorted(runs["target"].unique())
    deltas = sorted(d for d in runs["delta"].unique() if not math.isnan(d))
    position = {t: i for i, t in enumerate(targets)}
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    for ax, label in zip(axes, ("mean client", "worst client")):
        for (mixture, network), group in runs.groupby(["mixture", "network"]):
            stats = group.groupby("target")[label].agg(["mean", "std"])
            name = f"{mixture} mixture" + ("" if network == "trained" else f", {network}")
            ax.errorbar([position[t] for t in stats.index], stats["mean"], yerr=stats["std"], marker="o", capsize=3, label=name)
        ax.set_xticks(range(len(targets)), ["∞ (no DP)" if math.isinf(t) else f"{t:g}" for t in targets])
        ax.set_xlabel("ε" + (f" (δ = {', '.join(f'{d:g}' for d in deltas)})" if deltas else ""))
        ax.set_title(f"AUROC, {label}")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("AUROC")
    axes[0].legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_privacy_cost(sweep_dirs: list[Path], figure: Path, wall_time_s: float | None = None, validation_dir: Path | None = None) -> str:
    """The table as Markdown (returned and written next to the first sweep) and the figure;
    with ``validation_dir``, the private jobs at the learning rates it chooses."""
    learning_rates = None if validation_dir is None else chosen_learning_rates(validation_dir)
    runs = collect(sweep_dirs, learning_rates)
    plot(runs, figure)
    rows = table(runs).map(lambda v: "∞" if isinstance(v, float) and math.isinf(v) else v)
    lines = [markdown_table(rows, index_name=None)]
    if learning_rates is not None:
        chosen = ", ".join(f"ε {t:g}: {lr:g}" for t, lr in learning_rates.items())
        lines.append(f"\nLearning rates chosen on validation data ({validation_dir}): {chosen}.")
    if wall_time_s is not None:
        lines.append(f"\nWall time: {wall_time_s / 60:.1f} min for {len(runs)} runs.")
    markdown = "\n".join(lines) + "\n"
    (sweep_dirs[0].parent / "privacy_cost.md").write_text(markdown)
    return markdown
