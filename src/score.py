"""Score connection records with a trained detector: `python src/score.py model=<run dir> input=<file>`.

The records are read with the schema of the data set the model was trained on (model.pt holds it):
- a file, scored whole into a CSV that appears once complete;
- `input=-`: standard input, each batch's rows written to standard output as it is scored
  (`exporter | python src/score.py model=<run dir> input=-`), until the input ends;
- `follow=true`: a file as it grows, surviving rotation and restarts, until stopped (Ctrl-C or
  SIGTERM, which score the lines already complete first).

Options (key=value): output, threshold, anomaly_ratio, on_bad_line=fail|skip, drop_columns=[...],
chunk_size, batch_size, max_delay_ms, offsets, debug (docs/scoring.md).
"""

import contextlib
import os
import signal
import sys
import threading
import time
from pathlib import Path

from rich.console import Console

from fdagmm.cli import key_value_help, one_line_errors
from fdagmm.config import ScoreConfig, score_config
from fdagmm.detection.detector import Detector
from fdagmm.detection.scoring import print_summary, score_file
from fdagmm.detection.streaming import FollowOptions, Follower, StreamScorer, StreamSummary, score_stdin
from fdagmm.serialization import check_writable_dir

# How often a followed file with nothing new is looked at (growth, rotation), at most.
POLL_S = 0.2


def main(args: list[str]) -> None:
    if args[:1] in (["-h"], ["--help"]):
        print(key_value_help(__doc__, ScoreConfig))
        return
    with one_line_errors(debug="debug=true" in args):
        cfg = score_config(args)
        output = None if cfg.output == "-" or (cfg.input == "-" and cfg.output is None) else Path(cfg.output or _default_output(cfg))
        if output is not None:  # before the model is read: a bad output dir fails at once
            check_writable_dir("output", output.parent)
        detector = Detector.load(cfg.model)
        threshold = detector.chosen_threshold(cfg.threshold, cfg.anomaly_ratio)
        errors = Console(stderr=True, soft_wrap=True)
        if cfg.input == "-":
            scorer = StreamScorer(detector, threshold, sys.stdout, report=errors.print, drop_columns=list(cfg.drop_columns))
            with open(output, "w") if output is not None else contextlib.nullcontext(sys.stdout) as out:
                scorer.out = out
                summary = score_stdin(scorer, sys.stdin.buffer, cfg.batch_size, cfg.max_delay_ms / 1000)
            print_stream_summary(summary, "standard input", threshold, errors)
        elif cfg.follow:
            offsets = Path(cfg.offsets or f"{output}.offsets.json")
            scorer = StreamScorer(detector, threshold, sys.stdout, report=errors.print, drop_columns=list(cfg.drop_columns))
            stop = threading.Event()
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, lambda *_: stop.set())
            errors.print(f"following {cfg.input} into {output} (Ctrl-C or SIGTERM stops, after the lines already complete)")
            options = FollowOptions(cfg.batch_size, cfg.max_delay_ms / 1000, POLL_S)
            summary = Follower(scorer, Path(cfg.input), output, offsets, options).run(stop)
            print_stream_summary(summary, cfg.input, threshold, errors)
            errors.print(f"scores in {output}, progress in {offsets} (the same command goes on from there)")
        else:
            summary = score_file(
                detector, Path(cfg.input), output, threshold, cfg.chunk_size, cfg.on_bad_line, drop_columns=list(cfg.drop_columns)
            )
            print_summary(summary, output, Console(), detector.encoder.schema.anomaly)


def _default_output(cfg) -> str:
    """A followed file's scores keep one name (a restart goes on with them); a file's are dated."""
    if cfg.follow:
        return f"outputs/scores/{Path(cfg.input).name}_follow.csv"
    return f"outputs/scores/{Path(cfg.input).name}_{time.strftime('%Y-%m-%d_%H-%M-%S')}.csv"


def print_stream_summary(summary: StreamSummary, source: str, threshold: float, console: Console) -> None:
    console.print(
        f"scored {summary.n_scored:,} records from {source}, flagged {summary.n_flagged:,} (energy > {threshold:.6g}"
        f"{f', or out of range: {summary.n_out_of_range:,}' if summary.n_out_of_range else ''}); skipped {summary.n_bad:,} malformed lines"
    )


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except BrokenPipeError:  # the reader of standard output went away (`| head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit
        sys.exit(0)
    except KeyboardInterrupt:  # Ctrl-C on a stream or a file being scored (follow=true stops cleanly itself)
        sys.exit(130)
