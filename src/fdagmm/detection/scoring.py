"""Score a file of connection records with an exported detector, chunk by chunk.

The file is read with the model's schema (``Detector.encoder.schema``): a headered file by
column name, in any order, extra columns refused unless the schema drops them; the label is
optional (with it, the summary measures the scores against it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from fdagmm.detection.detector import Detector
from fdagmm.errors import DataError
from fdagmm.detection.evaluation import detection_metrics
from fdagmm.data.reading import iter_chunks, where
from fdagmm.data.schema import TableSchema
from fdagmm.serialization import atomic_file
from fdagmm.tracking import print_metrics_table

# How many bad lines, and lines out of range, the summary lists (all of them are counted).
LISTED_LINES = 10
# The scores' columns (then ``label`` when the records have one); energies written so that they
# read back to the same float64.
SCORE_COLUMNS = ("line", "energy", "is_anomaly", "out_of_range")
FLOAT_FORMAT = "%.17g"


@dataclass
class ScoredRecords:
    """A batch of records scored: what every way of scoring (file, stream, service) reports."""

    energy: np.ndarray  # float64 per record
    flagged: np.ndarray  # bool per record: energy above the threshold, or a value out of range
    beyond: np.ndarray  # (records, numeric features) bool: values far outside the scaling range
    out_of_range: list[list[str]]  # per record, the names of its features out of range

    def rows(self, line_numbers: np.ndarray, frame: pd.DataFrame, schema) -> pd.DataFrame:
        """The records' lines of the scores CSV (``label`` too when the frame has the schema's)."""
        rows = pd.DataFrame({
            "line": line_numbers, "energy": self.energy, "is_anomaly": self.flagged.astype(int),
            "out_of_range": [";".join(names) for names in self.out_of_range],
        })  # fmt: skip
        if schema.label is not None and schema.label in frame:
            rows["label"] = frame[schema.label].to_numpy(dtype=str)
        return rows


def score_records(detector: Detector, frame: pd.DataFrame, threshold: float) -> ScoredRecords:
    """Energies and flags of parsed records (``RecordChunk.frame``'s columns).

    A record with a numeric value far outside the scaling range (``FeatureEncoder.out_of_range``)
    is scored with that value clipped and flagged whatever its energy: far outside the training
    range is what an operator wants to see.
    """
    energy = detector.energy(frame)
    beyond = detector.encoder.out_of_range(frame)
    flagged = energy > threshold
    names = detector.encoder.numeric_features
    out_of_range: list[list[str]] = [[]] * len(energy)  # one shared empty list; replaced, never changed
    for i in np.flatnonzero(beyond.any(axis=1)):
        flagged[i] = True
        out_of_range[i] = [f for f, out in zip(names, beyond[i]) if out]
    return ScoredRecords(energy, flagged, beyond, out_of_range)


@dataclass
class ScoreSummary:
    n_scored: int
    n_flagged: int
    threshold: float
    unknown_categories: dict[str, int]
    bad_lines: list[tuple[int, str]] = field(default_factory=list)
    n_out_of_range: int = 0  # records flagged for values far outside the scaling range
    out_of_range: list[tuple[int, str]] = field(default_factory=list)  # the first LISTED_LINES: (line, values)
    metrics: dict[str, float] | None = None  # when the file has labels


def scoring_schema(detector: Detector, drop_columns: list[str]) -> TableSchema:
    """The model's schema, reading past a headered input's extra ``drop_columns`` (never its features)."""
    schema = detector.encoder.schema
    features = [c for c in drop_columns if c in schema.features]
    if features:
        raise DataError(f"drop_columns: {features} are features the model needs; only extra columns can be read past")
    return schema.with_overrides(drop_columns=list(drop_columns))


def score_file(
    detector: Detector,
    input_path: Path,
    output_path: Path,
    threshold: float,
    chunk_size: int,
    on_bad_line: str,
    show_progress: bool = True,
    drop_columns: list[str] = (),
) -> ScoreSummary:
    """Write ``line,energy,is_anomaly,out_of_range`` (and ``label`` when present) for every record.

    ``out_of_range`` names a record's features far outside the scaling range (``score_records``);
    other records leave it empty. Memory holds one chunk of records, plus
    an energy, a flag and a label per record when the file has labels (for the summary's
    metrics). The output appears only once complete.
    """
    if on_bad_line not in ("fail", "skip"):
        raise DataError(f"on_bad_line must be fail or skip, got {on_bad_line!r}")
    n_scored = n_flagged = n_out_of_range = 0
    schema = scoring_schema(detector, drop_columns)
    unknown: dict[str, int] = {}  # per column without hash buckets: values outside its vocabulary
    bad_lines: list[tuple[int, str]] = []
    out_of_range: list[tuple[int, str]] = []
    labelled_energy: list[np.ndarray] = []
    labelled_flagged: list[np.ndarray] = []
    labelled_anomaly: list[np.ndarray] = []
    progress = Progress(TextColumn("scoring"), BarColumn(), TextColumn("{task.completed:,} records"), TimeElapsedColumn(), disable=not show_progress)
    with atomic_file(output_path) as tmp:  # the output appears only once complete
        with progress, open(tmp, "w") as out:
            task = progress.add_task("score", total=None)
            for chunk in iter_chunks(input_path, schema, chunk_size):
                if chunk.bad_lines and on_bad_line == "fail":
                    raise DataError(f"{input_path}: {where(*chunk.bad_lines[0])}; pass on_bad_line=skip to score the other lines")
                bad_lines += chunk.bad_lines
                if len(chunk.frame) == 0:
                    continue
                scored = score_records(detector, chunk.frame, threshold)
                rows = scored.rows(chunk.line_numbers, chunk.frame, schema)
                if "label" in rows:
                    labelled_energy.append(scored.energy)
                    labelled_flagged.append(scored.flagged)
                    labelled_anomaly.append(schema.is_anomaly(rows["label"].to_numpy(dtype=str)))
                rows.to_csv(out, header=n_scored == 0, index=False, float_format=FLOAT_FORMAT)
                n_scored += len(rows)
                n_flagged += int(scored.flagged.sum())
                beyond_rows = np.flatnonzero(scored.beyond.any(axis=1))
                for i in beyond_rows[: LISTED_LINES - len(out_of_range)]:
                    out_of_range.append((int(chunk.line_numbers[i]), _beyond_range(detector, chunk.frame.iloc[i], scored.beyond[i])))
                n_out_of_range += len(beyond_rows)
                for column, count in detector.encoder.unknown_counts(chunk.frame).items():
                    unknown[column] = unknown.get(column, 0) + count
                progress.update(task, advance=len(chunk.frame) + len(chunk.bad_lines))
            if n_scored == 0:
                out.write(",".join(SCORE_COLUMNS) + "\n")
    metrics = None
    if labelled_energy:
        is_anomaly = np.concatenate(labelled_anomaly)
        if 0 < is_anomaly.sum() < len(is_anomaly):  # AUROC needs both classes
            metrics = detection_metrics(is_anomaly, np.concatenate(labelled_energy), threshold, np.concatenate(labelled_flagged))
    return ScoreSummary(n_scored, n_flagged, threshold, unknown, bad_lines, n_out_of_range, out_of_range, metrics)


def _beyond_range(detector: Detector, record: pd.Series, beyond: np.ndarray) -> str:
    """``src_bytes 1e+308 (scaling range 0 to 6.9e+08)`` for each numeric value out of range
    (federated_minmax's range is the training records'; schema_log's, the schema's)."""
    scaling = detector.encoder.scaling
    return ", ".join(
        f"{name} {record[name]:.6g} (scaling range {scaling.minimum[j]:.6g} to {scaling.maximum[j]:.6g})"
        for j, name in enumerate(detector.encoder.numeric_features) if beyond[j]
    )  # fmt: skip


def print_summary(summary: ScoreSummary, output: Path, console: Console, anomaly: str) -> None:
    console.print(
        f"scored {summary.n_scored:,} records, flagged {summary.n_flagged:,} "
        f"(energy > {summary.threshold:.6g}{', or out of range' if summary.n_out_of_range else ''}); scores in {output}"
    )
    unknown = {c: n for c, n in summary.unknown_categories.items() if n}
    if unknown:
        console.print("values outside the training vocabulary (encoded as all-zeros): "
                      + ", ".join(f"{c} {n:,}" for c, n in unknown.items()))  # fmt: skip
    if summary.n_out_of_range:
        listed = "; ".join(f"line {n}: {why}" for n, why in summary.out_of_range)
        more = summary.n_out_of_range - len(summary.out_of_range)
        console.print(
            f"{summary.n_out_of_range:,} records far outside the scaling range, flagged as anomalies "
            f"(column out_of_range): {listed}" + (f"; and {more:,} more" if more > 0 else "")
        )
    if summary.bad_lines:
        listed = "; ".join(where(n, why) for n, why in summary.bad_lines[:LISTED_LINES])
        more = len(summary.bad_lines) - LISTED_LINES
        console.print(f"skipped {len(summary.bad_lines):,} malformed lines: {listed}" + (f"; and {more:,} more" if more > 0 else ""))
    if summary.metrics:
        print_metrics_table(f"against the file's labels (anomaly class: {anomaly})", {"": summary.metrics}, console)
