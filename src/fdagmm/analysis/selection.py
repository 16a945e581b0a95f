"""Choose DAGMM's configuration from validation runs, by a rule fixed before the results.

Reads the job dirs of validation sweeps (``experiment=model_selection``: every job has
``data.evaluate_on=validation``; a job tested on a test set is refused) and tabulates, per
candidate (a job's Hydra overrides less the seed, the data set and the experiment), the mean
and standard deviation over seeds of the validation AUROC of the energy, and of the same
networks' reconstruction error (``test/auroc_reconstruction``), per data set.

The rule (docs/results.md, "Choosing the configuration"):

1. A candidate counts only with a finished job for every seed on every data set of the sweeps.
2. Its score is the mean, over the data sets, of its mean validation AUROC over the seeds.
3. Among the candidates within ``TIE`` of the best score, the simplest is chosen: the smallest
   latent code, then the fewest mixture components, then the paper's choices (the relative
   distance, learning rate 1e-4).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from fdagmm.data.dataset import VALIDATION
from fdagmm.errors import DataError
from fdagmm.analysis.markdown import markdown_table
from fdagmm.analysis.sweeps import sweep_jobs

# Scores closer than this are a tie, broken towards the simpler network: below the seed-to-seed
# spread of a configuration's validation AUROC.
TIE = 0.005

# Overrides that say where a job ran rather than what it trained.
NOT_CANDIDATE_KEYS = ("seed", "data", "experiment", "hydra.sweep.dir")

# The tie-break, in order: (override, its values from simplest to most complex). A value not
# listed sorts after the listed ones; a numeric setting not listed sorts ascending.
SIMPLER_FIRST = (
    ("model.net.latent_dim", None),
    ("model.net.n_components", None),
    ("model.net.distance_feature", ("relative", "log_relative")),
    ("model.optimizer.lr", ("1e-4", "0.0001")),
)


@dataclass
class Selection:
    table: pd.DataFrame  # one row per candidate: per data set mean, std and seeds; score
    chosen: str | None  # the chosen candidate's overrides, space-separated (None: none complete)
    incomplete: list[str]  # candidates left out by rule 1, with what they lack
    data_sets: list[str]
    seeds: list[int]


def validation_runs(sweep_dirs: list[Path]) -> pd.DataFrame:
    """One row per finished job: candidate, data set, seed, AUROC of the energy and of the error."""
    rows = []
    for job in sweep_jobs(sweep_dirs):
        cfg = job.cfg
        if cfg.data.get("evaluate_on") != VALIDATION:
            raise DataError(f"{job.dir}: tested on the test set, not on validation data: choose only from data.evaluate_on=validation runs")
        if job.metrics is None:
            continue  # counted as a missing seed of its candidate
        candidate = " ".join(sorted(o for o in job.overrides if o.split("=")[0].lstrip("+~") not in NOT_CANDIDATE_KEYS))
        final = job.metrics["final"]
        rows.append({
            "candidate": candidate or "(defaults)", "data": cfg.data.name, "seed": int(cfg.seed),
            "auroc": final.get("test/auroc", math.nan), "auroc_reconstruction": final.get("test/auroc_reconstruction", math.nan),
        })  # fmt: skip
    return pd.DataFrame(rows, columns=["candidate", "data", "seed", "auroc", "auroc_reconstruction"])


def select(sweep_dirs: list[Path], expected_candidates: list[str] = ()) -> Selection:
    """The table of every candidate of the sweeps and the rule's choice."""
    runs = validation_runs(sweep_dirs)
    if runs.empty:
        raise DataError(f"no finished job in {', '.join(map(str, sweep_dirs))}: nothing to choose from")
    data_sets, seeds = sorted(runs.data.unique()), sorted(runs.seed.unique())
    per_data = runs.groupby(["candidate", "data"]).agg(
        auroc=("auroc", "mean"), std=("auroc", "std"), seeds=("seed", "nunique"), reconstruction=("auroc_reconstruction", "mean")
    )
    table = per_data.unstack("data")
    table.columns = [f"{d} {stat}" for stat, d in table.columns]
    complete = (per_data["seeds"].unstack("data").reindex(columns=data_sets) == len(seeds)).all(axis=1)
    table["score"] = per_data["auroc"].unstack("data").reindex(columns=data_sets).mean(axis=1).where(complete)
    incomplete = [f"{c}: fewer than {len(seeds)} finished seeds on some data set" for c in table.index[~complete]]
    incomplete += [f"{c}: no finished job" for c in expected_candidates if c not in table.index]
    table = table.sort_values("score", ascending=False)
    eligible = table.index[table["score"] >= table["score"].max() - TIE] if complete.any() else []
    chosen = min(eligible, key=simplicity) if len(eligible) else None
    return Selection(table, chosen, incomplete, data_sets, seeds)


def simplicity(candidate: str) -> tuple:
    """The tie-break's sort key of a candidate (``SIMPLER_FIRST``)."""
    settings = dict(o.split("=", 1) for o in candidate.split() if "=" in o)
    key = []
    for name, order in SIMPLER_FIRST:
        value = settings.get(name)
        if value is None:
            key.append((0, 0.0))
        elif order is None:
            key.append((0, float(value)))
        else:
            key.append((order.index(value) if value in order else len(order), 0.0))
    return tuple(key)


def markdown(selection: Selection, choose: bool = True) -> str:
    """The table (AUROC mean (std) per data set, the reconstruction error's mean, the score)
    and, with ``choose``, the rule's choice."""
    cells = pd.DataFrame(index=[
        f"`{c}`" + (" **chosen**" if choose and c == selection.chosen else "") for c in selection.table.index
    ])  # fmt: skip
    for d in selection.data_sets:
        table = selection.table
        cells[d] = [f"{m:.4f} ({s:.4f})" for m, s in zip(table[f"{d} auroc"], table[f"{d} std"])]
        cells[f"{d} recon."] = [f"{r:.4f}" for r in table[f"{d} reconstruction"]]
    cells["score"] = [f"{s:.4f}" for s in selection.table["score"]]
    lines = [
        f"Validation AUROC, mean (std) over seeds {', '.join(map(str, selection.seeds))}; "
        "`recon.`: the same networks' reconstruction error as the score.",
        "",
        markdown_table(cells, index_name="candidate"),
    ]
    if selection.incomplete:
        lines += ["", "Left out (incomplete): " + "; ".join(selection.incomplete)]
    if choose:
        lines += ["", f"Chosen (rule: best score, ties within {TIE} to the simpler network): `{selection.chosen}`"]
    return "\n".join(lines) + "\n"
