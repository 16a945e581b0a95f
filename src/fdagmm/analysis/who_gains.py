"""Who gains from federation (docs/results.md, "4. Who gains from federation"): each client's
AUROC trained alone against its AUROC under the federation, from the two sweeps of
``make who-gains``.

A federated job (``method=fdagmm``) reports every client's test metrics (metrics.json's
``per_client``) and training-set size (``partition``); an alone job (``method=local
method.home_client=k``) reports client k's. A client's gain is its federated AUROC minus its
AUROC alone, for the same partition (its skew, ``seed``): the skew is ``partition.attack_alpha``
where each organisation tests on its own attacks (``experiment=who_gains_attacks``), else
``partition.alpha``. Writes, into the
federated sweep dir: ``who_gains.md`` (per alpha: how many clients gain, lose, lose more than
``HARM``; the mean gain), ``who_gains.csv`` (one row per client and partition) and
``who_gains.png`` (gain against training-set size).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from fdagmm.analysis.markdown import markdown_table  # noqa: E402
from fdagmm.analysis.sweeps import sweep_jobs  # noqa: E402

# A client whose AUROC falls by more than this when it joins is counted as harmed.
HARM = 0.01


def skew(cfg) -> float | None:
    """A partition's Dirichlet parameter: ``partition.attack_alpha`` where the attacks are dealt
    (each organisation its own), else ``partition.alpha``; None for a partition without one."""
    attack_alpha = OmegaConf.select(cfg, "partition.attack_alpha")
    return attack_alpha if attack_alpha is not None else OmegaConf.select(cfg, "partition.alpha")


def _jobs(sweep_dir: Path) -> list[tuple[object, dict]]:
    """(config, metrics.json) of every finished job of a sweep."""
    jobs = []
    for job in sweep_jobs(sweep_dir):
        if job.metrics is not None:
            if skew(job.cfg) is None or "per_client" not in job.metrics:
                raise ValueError(f"{job.dir / 'metrics.json'}: not a run of experiment=who_gains (no partition.alpha or per_client)")
            jobs.append((job.cfg, job.metrics))
    if not jobs:
        raise FileNotFoundError(f"{sweep_dir} holds no finished Hydra jobs (*/.hydra/config.yaml with metrics.json)")
    return jobs


def client_gains(federated_dir: Path, alone_dir: Path) -> pd.DataFrame:
    """One row per (alpha, seed, client) present in both sweeps: n_train, AUROC federated,
    AUROC alone, gain."""
    federated = {}
    for cfg, metrics in _jobs(federated_dir):
        for client, values in metrics["per_client"].items():
            key = (float(skew(cfg)), int(cfg.seed), int(client.removeprefix("client")))
            federated[key] = (metrics["partition"][client]["n_train"], values["test/auroc"])
    rows = []
    for cfg, metrics in _jobs(alone_dir):
        key = (float(skew(cfg)), int(cfg.seed), int(cfg.method.home_client))
        if key in federated:
            n_train, auroc_federated = federated[key]
            auroc_alone = metrics["final"]["test/auroc"]
            rows.append({
                "alpha": key[0], "seed": key[1], "client": key[2], "n_train": n_train,
                "auroc_federated": auroc_federated, "auroc_alone": auroc_alone, "gain": auroc_federated - auroc_alone,
            })  # fmt: skip
    columns = ["alpha", "seed", "client", "n_train", "auroc_federated", "auroc_alone", "gain"]
    return pd.DataFrame(rows, columns=columns).sort_values(["alpha", "seed", "client"], ignore_index=True)


def gain_summary(gains: pd.DataFrame) -> pd.DataFrame:
    """Per alpha: clients (x partitions), how many gain, lose, are harmed; mean and worst gain;
    the clients' mean AUROC federated and alone, mean (std) over the seeds."""
    by_alpha = gains.groupby("alpha")["gain"]
    return pd.DataFrame({
        "clients": by_alpha.size(),
        "gain": by_alpha.apply(lambda g: int((g > 0).sum())),
        "lose": by_alpha.apply(lambda g: int((g < 0).sum())),
        f"harmed (< -{HARM})": by_alpha.apply(lambda g: int((g < -HARM).sum())),
        "mean gain": by_alpha.mean(),
        "worst gain": by_alpha.min(),
        "AUROC federated": _over_seeds(gains, "auroc_federated"),
        "AUROC alone": _over_seeds(gains, "auroc_alone"),
    })  # fmt: skip


def _over_seeds(gains: pd.DataFrame, column: str) -> pd.Series:
    """Per alpha, the clients' mean of ``column`` in each seed, as "mean (std)" over the seeds
    (the mean alone from one seed)."""
    per_seed = gains.groupby(["alpha", "seed"])[column].mean().groupby("alpha")
    return per_seed.mean().map("{:.4f}".format) + per_seed.std(ddof=1).map(lambda std: "" if pd.isna(std) else f" ({std:.4f})")


def plot_gains(gains: pd.DataFrame, path: Path, federation: str) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for alpha, part in gains.groupby("alpha"):
        ax.scatter(part.n_train, part.gain, s=18, alpha=0.7, label=f"alpha {alpha:g}")
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("client's training records")
    ax.set_ylabel("AUROC federated - AUROC alone")
    ax.set_title(f"Who gains from federation ({federation}; each client and partition)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_who_gains(federated_dir: Path, alone_dir: Path) -> Path:
    gains = client_gains(federated_dir, alone_dir)
    if gains.empty:
        raise ValueError(f"no client of {alone_dir} matches a federated run of {federated_dir} (same partition.alpha or attack_alpha, and seed)")
    gains.to_csv(federated_dir / "who_gains.csv", index=False)
    cfg, metrics = _jobs(federated_dir)[0]
    federation = metrics["strategy"] + (", each client's own mixture" if cfg.fed.gmm_stats == "local" else "")
    alpha = "partition.attack_alpha" if OmegaConf.select(cfg, "partition.attack_alpha") is not None else "partition.alpha"
    plot_gains(gains, federated_dir / "who_gains.png", federation)
    report = federated_dir / "who_gains.md"
    report.write_text(
        f"# Who gains from federation ({federation})\n\n"
        f"{len(gains)} (client, partition) pairs; gain = AUROC under the federation - AUROC trained alone; alpha: {alpha}.\n\n"
        + markdown_table(gain_summary(gains).round(4), index_name="alpha")
        + "\n\n![gain against training-set size](who_gains.png)\n"
    )
    return report
