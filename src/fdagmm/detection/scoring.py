"""Score a file of connection records with an exported detector, chunk by chunk."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from fdagmm.detection.detector import Detector
from fdagmm.errors import DataError
from fdagmm.detection.evaluation import detection_metrics
from fdagmm.data.kdd99 import KDD99, iter_record_chunks
from fdagmm.tracking import print_metrics_table

# How many bad lines the summary lists (all of them are counted).
LISTED_BAD_LINES = 10


@dataclass
class ScoreSummary:
    n_scored: int
    n_flagged: int
    threshold: float
    unknown_categories: dict[str, int]
    bad_lines: list[tuple[int, str]] = field(default_factory=list)
    metrics: dict[str, float] | None = None  # when the file has labels


def score_file(
    detector: Detector,
    input_path: Path,
    output_path: Path,
    threshold: float,
    chunk_size: int,
    on_bad_line: str,
    show_progress: bool = True,
) -> ScoreSummary:
    """Write ``line,energy,is_anomaly`` (and ``label`` when present) for every record.

    Memory holds one chunk of records, plus an energy and a label per record when the file
    has labels (for the summary's metrics). The output appears only once complete.
    """
    if on_bad_line not in ("fail", "skip"):
        raise DataError(f"on_bad_line must be fail or skip, got {on_bad_line!r}")
    tmp = output_path.with_name(output_path.name + ".tmp")
    n_scored = n_flagged = 0
    unknown = dict.fromkeys(KDD99.categorical_features, 0)
    bad_lines: list[tuple[int, str]] = []
    labelled_energy: list[np.ndarray] = []
    labelled_anomaly: list[np.ndarray] = []
    progress = Progress(TextColumn("scoring"), BarColumn(), TextColumn("{task.completed:,} records"), TimeElapsedColumn(), disable=not show_progress)
    try:
        with progress, open(tmp, "w") as out:
            task = progress.add_task("score", total=None)
            for chunk in iter_record_chunks(input_path, chunk_size):
                if chunk.bad_lines and on_bad_line == "fail":
                    line, why = chunk.bad_lines[0]
                    raise DataError(f"{input_path}: line {line}: {why}; pass on_bad_line=skip to score the other lines")
                bad_lines += chunk.bad_lines
                if len(chunk.frame) == 0:
                    continue
                energy = detector.energy(chunk.frame)
                flagged = energy > threshold
                rows = pd.DataFrame({"line": chunk.line_numbers, "energy": energy, "is_anomaly": flagged.astype(int)})
                if KDD99.label in chunk.frame:
                    rows["label"] = chunk.frame[KDD99.label].to_numpy()
                    labelled_energy.append(energy)
                    labelled_anomaly.append(chunk.frame[KDD99.label].to_numpy() == KDD99.normal_label)
                rows.to_csv(out, header=n_scored == 0, index=False, float_format="%.17g")
                n_scored += len(rows)
                n_flagged += int(flagged.sum())
                for column, count in detector.encoder.unknown_counts(chunk.frame).items():
                    unknown[column] += count
                progress.update(task, advance=len(chunk.frame) + len(chunk.bad_lines))
            if n_scored == 0:
                out.write("line,energy,is_anomaly\n")
        os.replace(tmp, output_path)
    finally:
        tmp.unlink(missing_ok=True)
    metrics = None
    if labelled_energy:
        is_anomaly = np.concatenate(labelled_anomaly)
        if 0 < is_anomaly.sum() < len(is_anomaly):  # AUROC needs both classes
            metrics = detection_metrics(is_anomaly, np.concatenate(labelled_energy), threshold)
    return ScoreSummary(n_scored, n_flagged, threshold, unknown, bad_lines, metrics)


def print_summary(summary: ScoreSummary, output: Path, console: Console) -> None:
    console.print(
        f"scored {summary.n_scored:,} records, flagged {summary.n_flagged:,} "
        f"(energy > {summary.threshold:.6g}); scores in {output}"
    )
    unknown = {c: n for c, n in summary.unknown_categories.items() if n}
    if unknown:
        console.print("values outside the training vocabulary (encoded as all-zeros): "
                      + ", ".join(f"{c} {n:,}" for c, n in unknown.items()))  # fmt: skip
    if summary.bad_lines:
        listed = "; ".join(f"line {n}: {why}" for n, why in summary.bad_lines[:LISTED_BAD_LINES])
        more = len(summary.bad_lines) - LISTED_BAD_LINES
        console.print(f"skipped {len(summary.bad_lines):,} malformed lines: {listed}" + (f"; and {more:,} more" if more > 0 else ""))
    if summary.metrics:
        print_metrics_table("against the file's labels (normal = anomaly)", {"": summary.metrics}, console)
