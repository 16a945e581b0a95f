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
import statistics
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
# Validation AUROCs this close count as a tie in the tuning rules.
TIE = 1e-3
# Overrides that say where a job ran, on which data, seed and budget: not part of a setting.
NOT_A_SETTING = ("seed", "privacy.target_epsilon", "data.evaluate_on", "data.test_fraction", "experiment", "hydra.sweep.dir")


def setting(overrides: list[str]) -> str:
    """What a job tried: its overrides less ``NOT_A_SETTING``, sorted, space-separated."""
    return " ".join(sorted(o for o in overrides if o.split("=", 1)[0].lstrip("+~") not in NOT_A_SETTING))


def chosen_settings(validation_dirs: list[Path]) -> dict[float | None, str]:
    """The private runs' tuning rules (docs/privacy.md: record-level DP's learning rate,
    "What record-level DP costs"; DP-FedAvg's, "Tuning DP-FedAvg"): per target epsilon of the
    validation sweeps, the setting (``setting``) with the highest mean client-0 AUROC over its
    seeds. Ties within ``TIE`` go to the setting of the sweep dir given first and, within one
    dir, to the larger learning rate. A validation at one epsilon chooses for every epsilon
    (key ``None``)."""
    runs, rank = {}, {}
    for position, validation_dir in enumerate(validation_dirs):
        for job in sweep_jobs([validation_dir]):
            if job.metrics is None:
                raise FileNotFoundError(f"{job.dir} has no metrics.json: the job failed or is still running")
            if OmegaConf.select(job.cfg, "data.evaluate_on") != "validation":
                raise ValueError(f"{job.dir} was tested on the test set: the rule chooses on validation data only")
            key = (float(job.cfg.privacy.target_epsilon), setting(job.overrides))
            runs.setdefault(key, []).append(job.metrics["final"]["test/auroc"])
            rank.setdefault(key[1], (position, -float(job.cfg.model.optimizer.lr)))
    chosen = {}
    for target in sorted({t for t, _ in runs}):
        means = {s: sum(a) / len(a) for (t, s), a in runs.items() if t == target}
        best = max(means.values())
        chosen[target] = min((s for s, mean in means.items() if mean >= best - TIE), key=rank.__getitem__)
    return {None: next(iter(chosen.values()))} if len(chosen) == 1 else chosen


def setting_for(chosen: dict[float | None, str], target: float) -> str:
    """The setting ``chosen_settings`` chose for ``target``."""
    if None in chosen:
        return chosen[None]
    if target not in chosen:
        raise ValueError(f"the validation sweeps have no runs at epsilon {target:g}: validate at every epsilon of the test sweeps, or at one")
    return chosen[target]


def update_to_noise(metrics: dict) -> float:
    """The median over rounds of DP-FedAvg's update-to-noise ratio (``privacy/update_to_noise``:
    the clipped mean update's norm over its noise's); NaN for a run without it."""
    ratios = [r["privacy/update_to_noise"] for r in metrics.get("history", []) if "privacy/update_to_noise" in r]
    return statistics.median(ratios) if ratios else math.nan


def collect(sweep_dirs: list[Path], chosen: dict[float | None, str] | None = None) -> pd.DataFrame:
    """One row per finished federated job: its epsilon target (inf without privacy), mixture,
    network (trained, or untrained below ``UNTRAINED_LR``), seed, the noise multiplier and
    epsilon it ran with, and its AUROCs. Jobs of clients trained alone (``method=local``)
    make one row per seed, over the clients run alone, and the federated rows are then
    taken over the same clients (their ``per_client`` AUROCs), so that all compare alike.
    With ``chosen`` (``chosen_settings``), a private job counts only in its epsilon's chosen
    setting."""
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
        if chosen is not None and cfg.privacy.name != "none" and setting(job.overrides) != setting_for(chosen, float(cfg.privacy.target_epsilon)):
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
            "update_to_noise": update_to_noise(metrics),
            **values,
        })  # fmt: skip
    for seed, by_client in alone.items():
        aurocs = [by_client[k] for k in compared if k in by_client]
        rows.append({
            "target": math.inf, "mixture": "local", "network": ALONE, "seed": seed, "lr": math.nan, "z": 0.0, "delta": math.nan, "epsilon": math.inf, "update_to_noise": math.nan,
            "client 0": aurocs[0], "mean client": sum(aurocs) / len(aurocs), "worst client": min(aurocs),
        })  # fmt: skip
    return pd.DataFrame(rows)


def table(runs: pd.DataFrame) -> pd.DataFrame:
    grouped = runs.groupby(["mixture", "network", "target"])
    out = grouped.agg(seeds=("seed", "count"), lr=("lr", "first"), z=("z", "mean"), epsilon=("epsilon", "max"), update_to_noise=("update_to_noise", "mean"))
    for label in AUROCS.values():
        mean, std = grouped[label].mean(), grouped[label].std()
        out[f"AUROC {label}"] = [f"{m:.4f} ± {s:.4f}" for m, s in zip(mean, std)]
    out["z"] = out["z"].map(lambda z: f"{z:.3f}" if z else "-")
    out["lr"] = out["lr"].map(lambda lr: "-" if lr is None or math.isnan(lr) else f"{lr:g}")
    out["epsilon"] = out["epsilon"].map(lambda e: "∞" if math.isinf(e) else f"{e:.3f}")
    out["update_to_noise"] = out["update_to_noise"].map(lambda r: "-" if math.isnan(r) else f"{r:.3f}")
    renamed = {"target": "target ε", "z": "noise z", "epsilon": "ε after the last round", "update_to_noise": "update / noise (median round, mean seed)"}
    return out.reset_index().rename(columns=renamed)


def plot(runs: pd.DataFrame, path: Path) -> None:
    """AUROC (mean and worst client) against epsilon, one line per mixture; bars: std over seeds.
    A reference without DP (the untrained network, the clients alone) is a dashed level across
    every epsilon, its band the std over seeds."""
    targets = sorted(runs["target"].unique())
    deltas = sorted(d for d in runs["delta"].unique() if not math.isnan(d))
    position = {t: i for i, t in enumerate(targets)}
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, label in zip(axes, ("mean client", "worst client")):
        for color, ((mixture, network), group) in zip(colors, runs.groupby(["mixture", "network"])):
            stats = group.groupby("target")[label].agg(["mean", "std"])
            name = f"{mixture} mixture" + ("" if network == "trained" else f", {network}")
            if network != "trained" and len(targets) > 1:
                mean, std = stats["mean"].iloc[0], stats["std"].fillna(0).iloc[0]
                ax.axhline(mean, color=color, linestyle="--", label=name)
                ax.axhspan(mean - std, mean + std, color=color, alpha=0.12)
                continue
            ax.errorbar([position[t] for t in stats.index], stats["mean"], yerr=stats["std"], color=color, marker="o", capsize=3, label=name)
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


def describe(chosen: dict[float | None, str]) -> str:
    """The chosen settings, one clause per epsilon (``-``: the configuration as it is)."""
    return ", ".join(("every ε" if t is None else f"ε {t:g}") + f": {s or '-'}" for t, s in chosen.items())


def write_privacy_cost(sweep_dirs: list[Path], figure: Path, wall_time_s: float | None = None, validation_dirs: list[Path] = ()) -> str:
    """The table as Markdown (returned and written next to the first sweep) and the figure;
    with ``validation_dirs``, the private jobs in the settings they choose."""
    chosen = chosen_settings(validation_dirs) if validation_dirs else None
    runs = collect(sweep_dirs, chosen)
    plot(runs, figure)
    rows = table(runs).map(lambda v: "∞" if isinstance(v, float) and math.isinf(v) else v)
    lines = [markdown_table(rows, index_name=None)]
    if chosen is not None:
        lines.append(f"\nSettings chosen on validation data ({', '.join(map(str, validation_dirs))}): {describe(chosen)}.")
    if wall_time_s is not None:
        lines.append(f"\nWall time: {wall_time_s / 60:.1f} min for {len(runs)} runs.")
    markdown = "\n".join(lines) + "\n"
    (sweep_dirs[0].parent / "privacy_cost.md").write_text(markdown)
    return markdown
