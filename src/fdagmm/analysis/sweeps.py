"""Reading sweeps: every job of Hydra multirun dirs, with its config, overrides and metrics."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf


@dataclass(frozen=True)
class SweepJob:
    """One job dir of a sweep."""

    dir: Path
    cfg: DictConfig  # its resolved config (.hydra/config.yaml)
    overrides: list[str]  # its command-line overrides (.hydra/overrides.yaml)
    metrics: dict[str, Any] | None  # metrics.json; None: the job failed or has not finished

    @property
    def name(self) -> str:
        return self.dir.name

    def has(self, file: str) -> bool:
        return (self.dir / file).is_file()


def sweep_jobs(sweep_dirs: Path | Iterable[Path]) -> list[SweepJob]:
    """Every job (a dir holding ``.hydra/config.yaml``) of one sweep dir or several, each
    sweep's in name order; a sweep dir with no job is a FileNotFoundError."""
    jobs = []
    for sweep_dir in [sweep_dirs] if isinstance(sweep_dirs, Path) else list(sweep_dirs):
        found = sorted(p.parent.parent for p in Path(sweep_dir).glob("*/.hydra/config.yaml"))
        if not found:
            raise FileNotFoundError(f"{sweep_dir} holds no Hydra job dirs (*/.hydra/config.yaml)")
        for job in found:
            overrides = job / ".hydra" / "overrides.yaml"
            metrics = job / "metrics.json"
            jobs.append(SweepJob(
                dir=job,
                cfg=OmegaConf.load(job / ".hydra" / "config.yaml"),
                overrides=list(OmegaConf.load(overrides)) if overrides.is_file() else [],
                metrics=json.loads(metrics.read_text()) if metrics.is_file() else None,
            ))  # fmt: skip
    return jobs
