"""A multirun a person can follow: tagged job lines, a progress line as each job ends, a
summary at the end and exit status 1 when a job failed.

``SweepProgress`` is a Hydra callback (conf/hydra/callbacks/sweep_progress.yaml). Its job
hooks run in the job's own process (a joblib worker, a SLURM node, or the launching process
with Hydra's basic launcher); its multirun hooks run in the launching process. The two meet
in the sweep dir: each job writes ``job_status.json`` into its dir as it ends, and the
launching process watches for those files.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig
from rich.console import Console, Group
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from fdagmm.cli import FAILURE_REASON
from fdagmm.tracking import write_json_atomic

STATUS_FILE = "job_status.json"
POLL_INTERVAL_S = 1.0
FAILED_JOBS_NAMED_PER_REASON = 3  # in the summary; the others are counted
# The per-round line of a run (RoundLog's): "round 3/20  client0 loss ...".
ROUND_LINE = re.compile(r"round (\d+)/(\d+)\b")


def job_tag(job_dir: Path) -> str:
    """A job's short name, from its sweep subdir: ``3_fdagmm_s1_seed2`` -> ``#3 fdagmm s1 seed2``.

    The number, Hydra's job number, tells jobs apart that differ only in keys the subdir's
    name leaves out (``data.path=a,b``).
    """
    return re.sub(r"^(\d+)_", r"#\1 ", job_dir.name).replace("_", " ")


def count_jobs(config: DictConfig) -> int | None:
    """How many jobs the sweep makes, counted as Hydra's basic sweeper expands its overrides
    (None under another sweeper, whose count is its own)."""
    # Hydra expands a sweep's overrides only in its basic sweeper, which is private: the one use
    # of Hydra's internals, pinned by hydra-core's version and tests/unit/run/test_sweep_count.py.
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    sweeper = config.hydra.sweeper
    if sweeper._target_ != f"{BasicSweeper.__module__}.{BasicSweeper.__name__}":
        return None
    params = [f"{key}={value}" for key, value in (sweeper.params or {}).items()]
    overrides = OverridesParser.create().parse_overrides([*params, *config.hydra.overrides.task])
    (jobs,) = BasicSweeper.split_arguments(overrides, max_batch_size=None)
    return len(jobs)


class RoundLineThinning(logging.Filter):
    """Lets through every ``every``-th round line and the last; other lines pass."""

    def __init__(self, every: int):
        super().__init__()
        self.every = every

    def filter(self, record: logging.LogRecord) -> bool:
        match = ROUND_LINE.match(record.getMessage())
        if match is None:
            return True
        round_idx, rounds = map(int, match.groups())
        return round_idx % self.every == 0 or round_idx == rounds


class TaggedFormatter(logging.Formatter):
    """Prefixes every line that ``inner`` formats (a traceback's too) with ``[tag]``."""

    def __init__(self, tag: str, inner: logging.Formatter):
        super().__init__()
        self.tag = tag
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return "\n".join(f"[{self.tag}] {line}" for line in self.inner.format(record).splitlines())


class FailureReason(logging.Handler):
    """Keeps the one-line reason that ``fdagmm.cli.one_line_errors`` logs for a failed job."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.reason: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        self.reason = self.reason or getattr(record, FAILURE_REASON, None)


class SweepJob:
    """One sweep job's logging while it runs, in its own process: console lines tagged and
    round lines thinned (train.log keeps them all), and its failure's reason caught."""

    def __init__(self, job_dir: Path, round_lines_every: int):
        self.job_dir = job_dir
        self.started = time.monotonic()
        self.thinning = RoundLineThinning(round_lines_every)
        self.failure = FailureReason()
        root = logging.getLogger()
        # Hydra's job logging writes to the console and to train.log (a FileHandler, itself
        # a StreamHandler): only the console is changed.
        self.console_formats = {
            handler: handler.formatter
            for handler in root.handlers
            if isinstance(handler, logging.StreamHandler)
            and not isinstance(handler, logging.FileHandler)
        }
        for handler, formatter in self.console_formats.items():
            handler.addFilter(self.thinning)
            handler.setFormatter(TaggedFormatter(job_tag(job_dir), formatter or logging.Formatter()))
        root.addHandler(self.failure)

    def end(self) -> None:
        """Restore the logging and write the job's status file: the launching process reads it."""
        logging.getLogger().removeHandler(self.failure)
        for handler, formatter in self.console_formats.items():
            handler.removeFilter(self.thinning)
            handler.setFormatter(formatter)
        failure = None
        if not (self.job_dir / "metrics.json").is_file():
            failure = self.failure.reason or "ended without metrics.json (see its train.log)"
        seconds = time.monotonic() - self.started
        write_json_atomic(self.job_dir / STATUS_FILE, {"seconds": seconds, "failure": failure})


@dataclass
class JobOutcome:
    tag: str
    seconds: float
    failure: str | None  # the one-line reason; None: finished


class SweepWatcher:
    """In the launching process: a progress line as each job's status file appears, and the
    summary at the end."""

    def __init__(self, sweep_dir: Path, total: int, console: Console):
        self.sweep_dir = sweep_dir
        self.total = total
        self.console = console
        self.started = time.monotonic()
        # A sweep dir used before holds the earlier sweep's status files: older than this one.
        self._started_at = time.time()
        self.outcomes: dict[Path, JobOutcome] = {}
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="sweep-progress", daemon=True)

    def start(self) -> None:
        self.console.print(
            f"[sweep] {self.total} jobs into {self.sweep_dir}; job lines are tagged with the "
            "job's name, a progress line follows each job's end",
            markup=False,
            highlight=False,
        )
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()
        self._poll()  # the jobs that ended since the last poll

    @property
    def failed(self) -> list[JobOutcome]:
        return [outcome for outcome in self.outcomes.values() if outcome.failure is not None]

    def _watch(self) -> None:
        while not self._stopped.wait(POLL_INTERVAL_S):
            self._poll()

    def _poll(self) -> None:
        status_files = self.sweep_dir.glob(f"*/{STATUS_FILE}")
        for status_file in sorted(status_files, key=lambda p: p.stat().st_mtime):  # as jobs ended
            job_dir = status_file.parent
            if job_dir not in self.outcomes and status_file.stat().st_mtime >= self._started_at:
                status = json.loads(status_file.read_text())
                outcome = JobOutcome(job_tag(job_dir), status["seconds"], status["failure"])
                self.outcomes[job_dir] = outcome
                self.console.print(self._progress_line(outcome))

    def _progress_line(self, last: JobOutcome) -> Table:
        ended, failed = len(self.outcomes), len(self.failed)
        elapsed = time.monotonic() - self.started
        # The jobs that ended so far set the pace, parallel jobs included.
        left = elapsed / ended * (self.total - ended)
        outcome = "failed" if last.failure else "finished"
        line = Table.grid(padding=(0, 1))
        line.add_row(
            Text("[sweep]", style="bold"),
            ProgressBar(total=self.total, completed=ended, width=20),
            Text.assemble(
                f"{ended}/{self.total} jobs, ",
                (f"{failed} failed", "bold red" if failed else ""),
                f", {_duration(elapsed)} elapsed",
                f", ~{_duration(left)} left" if left else "",
                (f" ({last.tag} {outcome} in {_duration(last.seconds)})", "dim"),
            ),
        )
        return line

    @property
    def all_finished(self) -> bool:
        return not self.failed and len(self.outcomes) == self.total

    def summary(self) -> Group:
        failed = self.failed
        # Lines between rows show which failed jobs share a reason.
        table = Table(show_header=False, show_lines=bool(failed))
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        table.add_row("finished", f"{len(self.outcomes) - len(failed)} of {_jobs(self.total)}")
        table.add_row(Text("failed", style="bold red" if failed else ""), _jobs(len(failed)))
        # One row per reason: a wrong path or a bug fails many jobs alike.
        by_reason: dict[str, list[str]] = {}
        for outcome in failed:
            by_reason.setdefault(outcome.failure, []).append(outcome.tag)
        for reason, tags in by_reason.items():
            named = tags[:FAILED_JOBS_NAMED_PER_REASON]
            more = [f"and {len(tags) - len(named)} more"] if len(tags) > len(named) else []
            jobs = Text("\n".join(f"  {tag}" for tag in [*named, *more]), style="red")
            table.add_row(jobs, reason)
        if len(self.outcomes) < self.total:
            unknown = self.total - len(self.outcomes)
            table.add_row("no outcome", f"{_jobs(unknown)} (stopped? see the train.log in their dirs)")
        table.add_row("wall time", _duration(time.monotonic() - self.started))
        # A heading rather than the table's title, which would wrap a long path to the table's width.
        return Group(Text(f"sweep {self.sweep_dir}", style="bold"), table)


class SweepProgress(Callback):
    """Hydra callback: a sweep a person can follow (see the module's docstring). Single runs
    are left as they are."""

    def __init__(self, round_lines_every: int = 5):
        self.round_lines_every = round_lines_every
        self._job: SweepJob | None = None  # in a job's process, while the job runs
        self._watcher: SweepWatcher | None = None  # in the launching process

    def __getstate__(self) -> dict[str, Any]:
        # Launchers pickle the callbacks into every job; the watcher's thread stays home.
        return {**self.__dict__, "_watcher": None}

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        total = count_jobs(config)
        if total is not None:
            self._watcher = SweepWatcher(Path(config.hydra.sweep.dir), total, Console())
            self._watcher.start()

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if config.hydra.mode == RunMode.MULTIRUN:
            self._job = SweepJob(Path(config.hydra.runtime.output_dir), self.round_lines_every)

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if self._job is not None:
            self._job.end()
            self._job = None

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self._watcher is None:
            return
        self._watcher.stop()
        self._watcher.console.print(self._watcher.summary())
        if not self._watcher.all_finished:
            # SystemExit passes through Hydra's callback and error handling to the shell.
            raise SystemExit(1)


def _duration(seconds: float) -> str:
    return str(timedelta(seconds=round(seconds)))


def _jobs(n: int) -> str:
    return f"{n} job" if n == 1 else f"{n} jobs"
