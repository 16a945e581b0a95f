"""Choose the personalised federation by the rule of docs/results.md ("Personalisation: the
rule, fixed before any candidate's result") from ``make personalisation-selection``'s sweeps.

The sweeps lie under one root as ``<data set>/k<K>/<candidate>/`` beside
``<data set>/k<K>/alone/`` (the clients trained alone); every job ran on validation data. A
(client, partition) pair is harmed under a candidate when its validation AUROC under it is more
than ``HARM`` below its AUROC alone. The rule:

1. It chooses only over the whole grid: every data set of ``DATA_SETS`` and every K of
   ``K_VALUES``, each with every candidate, all candidates over the same pairs.
2. The fewest harmed pairs wins; a tie goes to the higher mean gain, then to the earlier
   candidate in ``CANDIDATES``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from fdagmm.analysis.markdown import markdown_table
from fdagmm.analysis.sweeps import sweep_jobs
from fdagmm.analysis.who_gains import HARM, client_gains
from fdagmm.data.dataset import VALIDATION
from fdagmm.errors import DataError

# The candidates in the rule's order (the last tie-break); the names are the Makefile's
# federations (FEDERATION_<name>) and the sweep dirs'.
CANDIDATES = ("fedavg", "own_mixture", "fedper", "fedper_own_mixture")
DATA_SETS = ("nsl_kdd", "unsw_nb15")
K_VALUES = (5, 10)

PAIR = ["data", "k", "alpha", "seed", "client"]


@dataclass
class PersonalisationSelection:
    table: pd.DataFrame  # one row per candidate: pairs, harmed, mean and worst gain
    harmed_by_cell: pd.DataFrame  # harmed pairs per (data set, K, alpha), one column per candidate
    chosen: str | None  # None: the grid is incomplete
    missing: list[str]  # what the grid lacks for a choice


def _require_validation(sweep_dir: Path) -> None:
    for job in sweep_jobs(sweep_dir):
        if job.cfg.data.get("evaluate_on") != VALIDATION:
            raise DataError(f"{job.dir}: tested on the test set, not on validation data: choose only from data.evaluate_on=validation runs")


def candidate_gains(root: Path) -> pd.DataFrame:
    """One row per (data set, K, alpha, seed, client, candidate): the who-gains columns."""
    frames = []
    for alone in sorted(root.glob("*/k*/alone")):
        _require_validation(alone)
        for candidate in CANDIDATES:
            sweep = alone.parent / candidate
            if sweep.is_dir():
                _require_validation(sweep)
                frames.append(client_gains(sweep, alone).assign(data=alone.parent.parent.name, k=int(alone.parent.name[1:]), candidate=candidate))
    if not frames:
        raise FileNotFoundError(f"{root} holds no <data set>/k<K>/<candidate> sweep beside an alone sweep: run make personalisation-selection SWEEP_DIR={root}")
    return pd.concat(frames, ignore_index=True)


def _missing(gains: pd.DataFrame) -> list[str]:
    """What keeps the rule from choosing: a (data set, K) or a candidate absent, or candidates
    over different pairs."""
    missing = []
    for data in DATA_SETS:
        for k in K_VALUES:
            present = set(gains.candidate[(gains.data == data) & (gains.k == k)])
            missing += [f"{data} K={k} {c}" for c in CANDIDATES if c not in present]
    pairs = {c: set(map(tuple, part[PAIR].values)) for c, part in gains.groupby("candidate")}
    every = set().union(*pairs.values())
    missing += [f"{c}: {len(every - p)} of {len(every)} pairs" for c, p in pairs.items() if p != every]
    return missing


def select_personalisation(root: Path) -> PersonalisationSelection:
    gains = candidate_gains(root)
    harmed = gains.gain < -HARM
    table = (
        gains.assign(harmed=harmed).groupby("candidate")
        .agg(pairs=("gain", "size"), harmed=("harmed", "sum"), mean_gain=("gain", "mean"), worst_gain=("gain", "min"))
        .reindex([c for c in CANDIDATES if c in set(gains.candidate)])
    )  # fmt: skip
    by_cell = gains.assign(harmed=harmed).pivot_table(index=["data", "k", "alpha"], columns="candidate", values="harmed", aggfunc="sum")
    by_cell = by_cell.reindex(columns=table.index).astype(int)
    missing = _missing(gains)
    chosen = None
    if not missing:
        chosen = min(table.index, key=lambda c: (table.harmed[c], -table.mean_gain[c], CANDIDATES.index(c)))
    return PersonalisationSelection(table, by_cell, chosen, missing)


def markdown(selection: PersonalisationSelection) -> str:
    table = selection.table
    cells = pd.DataFrame({
        "pairs": table.pairs, f"harmed (< -{HARM})": table.harmed,
        "mean gain": table.mean_gain.map("{:.4f}".format), "worst gain": table.worst_gain.map("{:.4f}".format),
    })  # fmt: skip
    cells.index = [f"`{c}`" + (" **chosen**" if c == selection.chosen else "") for c in table.index]
    by_cell = selection.harmed_by_cell.copy()
    by_cell.index = [f"{d} K={k} alpha {a:g}" for d, k, a in by_cell.index]
    lines = [
        "Validation AUROC under each candidate federation against each client alone, over every "
        "(client, partition) pair; gain = AUROC federated - AUROC alone.",
        "",
        markdown_table(cells, index_name="candidate"),
        "",
        "Harmed pairs per data set, K and attack_alpha:",
        "",
        markdown_table(by_cell, index_name="cell"),
        "",
    ]
    if selection.chosen is None:
        lines.append("No choice: the rule needs the whole grid; missing: " + "; ".join(selection.missing))
    else:
        lines.append(f"Chosen (rule: fewest harmed; ties to the higher mean gain, then the earlier candidate): `{selection.chosen}`")
    return "\n".join(lines) + "\n"


def write_personalisation(root: Path) -> Path:
    path = root / "personalisation.md"
    path.write_text(markdown(select_personalisation(root)))
    return path
