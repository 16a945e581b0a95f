"""What client-level differential privacy costs: AUROC against epsilon, from the sweeps of
``make privacy-cost`` (conf/experiment/privacy_cost.yaml).

Reads every job dir under the given sweep dirs (``.hydra/config.yaml`` and ``metrics.json``)
and writes a Markdown table (mean and standard deviation over seeds of the evaluated client's,
the mean client's and the worst client's AUROC, per epsilon and scoring mixture) and a figure.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from fdagmm.analysis.markdown import markdown_table  # noqa: E402
from fdagmm.analysis.sweeps import sweep_jobs  # noqa: E402

AUROCS = {"final": "client 0", "clients_mean": "mean client", "clients_worst": "worst client"}


def collect(sweep_dirs: list[Path]) -> pd.DataFrame:
    """One row per finished job: its epsilon target (inf without privacy), mixture, seed,
    the noise multiplier and epsilon it ran with, and its AUROCs."""
    rows = []
    for job in sweep_jobs(sweep_dirs):
        if job.metrics is None:
            raise FileNotFoundError(f"{job.dir} has no metrics.json: the job failed or is still running")
        cfg, privacy = job.cfg, job.metrics.get("privacy", {})
        rows.append({
            "target": cfg.privacy.target_epsilon if cfg.privacy.name == "dp" else math.inf,
            "mixture": cfg.fed.gmm_stats,
            "seed": cfg.seed,
            "z": privacy.get("noise_multiplier", 0.0),
            "epsilon": privacy.get("epsilon", math.inf),
            **{label: job.metrics[key]["test/auroc"] for key, label in AUROCS.items()},
        })  # fmt: skip
    return pd.DataFrame(rows)


def table(runs: pd.DataFrame) -> pd.DataFrame:
    grouped = runs.groupby(["mixture", "target"])
    out = grouped.agg(seeds=("seed", "count"), z=("z", "mean"), epsilon=("epsilon", "max"))
    for label in AUROCS.values():
        mean, std = grouped[label].mean(), grouped[label].std()
        out[f"AUROC {label}"] = [f"{m:.4f} ± {s:.4f}" for m, s in zip(mean, std)]
    out["z"] = out["z"].map(lambda z: f"{z:.3f}" if z else "-")
    out["epsilon"] = out["epsilon"].map(lambda e: "∞" if math.isinf(e) else f"{e:.3f}")
    return out.reset_index().rename(columns={"target": "target ε", "z": "noise z", "epsilon": "ε after the last round"})


def plot(runs: pd.DataFrame, path: Path) -> None:
    """AUROC (mean and worst client) against epsilon, one line per mixture; bars: std over seeds."""
    targets = sorted(runs["target"].unique())
    position = {t: i for i, t in enumerate(targets)}
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    for ax, label in zip(axes, ("mean client", "worst client")):
        for mixture, group in runs.groupby("mixture"):
            stats = group.groupby("target")[label].agg(["mean", "std"])
            ax.errorbar([position[t] for t in stats.index], stats["mean"], yerr=stats["std"], marker="o", capsize=3,
                        label=f"{mixture} mixture")  # fmt: skip
        ax.set_xticks(range(len(targets)), ["∞ (no DP)" if math.isinf(t) else f"{t:g}" for t in targets])
        ax.set_xlabel("ε (δ = 1e-3)")
        ax.set_title(f"AUROC, {label}")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("AUROC")
    axes[0].legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_privacy_cost(sweep_dirs: list[Path], figure: Path, wall_time_s: float | None = None) -> str:
    """The table as Markdown (returned and written next to the first sweep) and the figure."""
    runs = collect(sweep_dirs)
    plot(runs, figure)
    rows = table(runs).map(lambda v: "∞" if isinstance(v, float) and math.isinf(v) else v)
    lines = [markdown_table(rows, index_name=None)]
    if wall_time_s is not None:
        lines.append(f"\nWall time: {wall_time_s / 60:.1f} min for {len(runs)} runs.")
    markdown = "\n".join(lines) + "\n"
    (sweep_dirs[0].parent / "privacy_cost.md").write_text(markdown)
    return markdown
