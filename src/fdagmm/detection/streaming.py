"""Score records as they arrive: from standard input (``input=-``) or a growing file (``follow=true``).

Lines are scored in batches: a batch is scored, and its rows written and flushed, once it holds
``batch_size`` lines or ``max_delay_ms`` has passed since its first line came, whichever comes
first. The rows are those of a scored file (``SCORE_COLUMNS``, then ``label`` when the records
carry one). A malformed line is reported on standard error with its number and skipped; the
stream goes on.

Following a file (as ``tail -F``): lines appended to it are scored once complete (a line ends
with its newline); when the file is replaced (rotation: renamed away and created anew) the rest
of the old one is scored before the new one, from its first line; when it is truncated in
place, it is read again from its start. After each batch the output is synced to disk and then
an offset file records how far the input was read and how long the output was; a restart
truncates the output to that length and goes on from that offset, so a line is scored exactly
once whenever the process stops. A file rotated while nobody followed it is looked for in its
directory by its inode (``traffic.log.1``) and finished first.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, TextIO

from fdagmm.data.reading import LineParser, stream_parser, where
from fdagmm.detection.detector import Detector
from fdagmm.detection.scoring import FLOAT_FORMAT, SCORE_COLUMNS, score_records, scoring_schema
from fdagmm.errors import DataError
from fdagmm.tracking import write_json_atomic

# Bytes read from the input at a time.
READ_BYTES = 1 << 16
OFFSET_FORMAT = 1


@dataclass
class StreamSummary:
    n_scored: int = 0
    n_flagged: int = 0
    n_bad: int = 0  # malformed lines, skipped
    n_out_of_range: int = 0


@dataclass
class StreamScorer:
    """Parses and scores batches of one stream's lines and writes their rows to ``out``.

    ``report`` receives a line of text for the operator (a malformed line, a rotation)."""

    detector: Detector
    threshold: float
    out: TextIO
    report: Callable[[str], None]
    drop_columns: list[str] = field(default_factory=list)
    header_written: bool = False  # the output already starts with the column names
    parser: LineParser | None = None  # None until the stream's first lines set its layout
    summary: StreamSummary = field(default_factory=StreamSummary)

    def __post_init__(self):
        self.schema = scoring_schema(self.detector, self.drop_columns)
        self.columns = [*SCORE_COLUMNS, *(["label"] if self.schema.label else [])]

    def new_source(self, layout: list[str] | None = None) -> None:
        """The next line starts a new file (or stream): it may be a header. ``layout``: resume
        a file read before, with these columns."""
        self.parser = None if layout is None else LineParser(self.schema, layout, False)

    def score(self, lines: list[str], first: int, source: str) -> None:
        """Score ``lines``, the first of which is line ``first`` of ``source``."""
        if self.parser is None:
            try:
                self.parser, header = stream_parser(lines, self.schema, source)
            except DataError as e:  # none of these lines has the schema's layout: wait for more
                for n in range(first, first + len(lines)):
                    if lines[n - first].strip():
                        self._bad(n, f"not a {self.schema.name} record ({e})", source)
                return
            if header:
                lines, first = lines[1:], first + 1
        if not lines:
            return
        chunk = self.parser.parse(lines, first)
        for n, why in chunk.bad_lines:
            self._bad(n, why, source)
        if len(chunk.frame) == 0:
            return
        scored = score_records(self.detector, chunk.frame, self.threshold)
        rows = scored.rows(chunk.line_numbers, chunk.frame, self.schema).reindex(columns=self.columns, fill_value="")
        self.out.write(rows.to_csv(header=not self.header_written, index=False, float_format=FLOAT_FORMAT))
        self.out.flush()
        self.header_written = True
        self.summary.n_scored += len(rows)
        self.summary.n_flagged += int(scored.flagged.sum())
        self.summary.n_out_of_range += int(scored.beyond.any(axis=1).sum())

    def _bad(self, line: int, why: str, source: str) -> None:
        self.summary.n_bad += 1
        self.report(f"{source}: {where(line, why)} (skipped)")


def decode(raw: bytes) -> str:
    """Bytes of an input as text, as the file reader decodes them (bytes that are not UTF-8
    become lone surrogates that the checks report with their line)."""
    return raw.decode("utf-8", errors="surrogateescape")


def score_stdin(scorer: StreamScorer, stream: BinaryIO, batch_size: int, max_delay_s: float) -> StreamSummary:
    """Score ``stream`` (standard input's bytes) until it ends; a partial last line is a line."""
    arrivals: queue.Queue[list[str] | None] = queue.Queue()

    def read() -> None:  # a thread, so that a batch can be cut by time while a read blocks
        rest = b""
        try:
            while data := stream.read1(READ_BYTES):
                rest += data
                cut = rest.rfind(b"\n") + 1
                if cut:
                    arrivals.put(decode(rest[:cut]).split("\n")[:-1])
                    rest = rest[cut:]
            if rest:
                arrivals.put([decode(rest)])
        finally:
            arrivals.put(None)

    threading.Thread(target=read, daemon=True, name="stdin-reader").start()
    batch: list[str] = []
    next_line, deadline, ended = 1, 0.0, False
    while not ended:
        try:
            lines = arrivals.get(timeout=max(0.0, deadline - time.monotonic()) if batch else None)
        except queue.Empty:
            lines = []
        if lines is None:
            ended = True
        elif lines:
            if next_line == 1 and not batch:
                if lines[0].startswith("\x1f\udc8b"):  # gzip's magic bytes, 0x8b not UTF-8
                    raise DataError("standard input is gzip-compressed: pipe it through `gunzip -c` first")
                lines[0] = lines[0].removeprefix("\ufeff")
            if not batch:
                deadline = time.monotonic() + max_delay_s
            batch += lines
        while batch and (len(batch) >= batch_size or ended or time.monotonic() >= deadline):
            taken, batch = batch[:batch_size], batch[batch_size:]
            scorer.score(taken, next_line, "stdin")
            next_line += len(taken)
    return scorer.summary


@dataclass
class _Followed:
    """An open input file and how far its complete lines were taken."""

    path: Path  # where it was opened (a rotated file's new name, when found by its inode)
    handle: BinaryIO
    identity: tuple[int, int]  # (device, inode)
    offset: int = 0  # bytes taken: the start of the first line not yet scored
    next_line: int = 1  # the number of that line
    pending: bytes = b""  # read, not a complete line yet
    pending_start: int = 0  # where ``pending`` starts in the file

    @classmethod
    def open(cls, path: Path, offset: int = 0, next_line: int = 1) -> _Followed:
        handle = open(path, "rb")
        st = os.fstat(handle.fileno())
        handle.seek(offset)
        return cls(path, handle, (st.st_dev, st.st_ino), offset, next_line, pending_start=offset)

    def complete_lines(self, final: bool = False) -> list[tuple[str, int]]:
        """The complete lines read since the last call, each with its length in bytes; ``final``:
        the file will not grow (it was rotated away), so a last line without its newline is one."""
        while len(self.pending) < 16 * READ_BYTES and (data := self.handle.read(READ_BYTES)):
            self.pending += data
        cut = len(self.pending) if final else self.pending.rfind(b"\n") + 1
        raw, self.pending = self.pending[:cut], self.pending[cut:]
        at_start, self.pending_start = self.pending_start == 0, self.pending_start + cut
        if not raw:
            return []
        parts = raw.split(b"\n")
        if parts[-1] == b"":
            parts.pop()
        lengths = [len(p) + 1 for p in parts]
        if not raw.endswith(b"\n"):
            lengths[-1] -= 1
        lines = [decode(p) for p in parts]
        if at_start:
            lines[0] = lines[0].removeprefix("\ufeff")
        return list(zip(lines, lengths))

    def replaced(self) -> str | None:
        """"rotated" when ``path`` is now another file, "truncated" when it is this file, shorter
        than what was read; None otherwise (also while a rotation has moved it and not yet made
        the new one)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        if (st.st_dev, st.st_ino) != self.identity:
            return "rotated"
        return "truncated" if st.st_size < self.handle.tell() else None


@dataclass
class FollowOptions:
    batch_size: int
    max_delay_s: float
    poll_s: float  # how often a file with nothing new is checked for growth or rotation


@dataclass
class Follower:
    """Follows ``path`` into ``output``, recording its progress in ``offsets`` after each batch."""

    scorer: StreamScorer
    path: Path
    output: Path
    offsets: Path
    options: FollowOptions

    def run(self, stop: threading.Event) -> StreamSummary:
        """Score the lines of the file as they are appended, until ``stop`` is set; resume from
        the offsets file when there is one (the output truncated to the length it records)."""
        self.path = self.path.absolute()
        if not self.path.is_file():
            raise DataError(f"input file not found: {self.path}; follow=true follows a file that exists")
        with open(self.path, "rb") as f:
            if f.read(2) == b"\x1f\x8b":
                raise DataError(f"{self.path} is gzip-compressed; follow=true reads a plain text file that grows")
        files = self._files_to_read()
        with open(self.output, "a") as out:
            self.scorer.out = out
            for rotated in files[:-1]:  # files rotated away: score them to their end
                with rotated.handle:
                    self._score_rest(rotated, [], final=True)
                self.scorer.new_source()
            self._follow(files[-1], stop)
        return self.scorer.summary

    def _files_to_read(self) -> list[_Followed]:
        state = _read_offsets(self.offsets, self.path, self.output)
        if state is None:
            self.output.write_text("")
            return [_Followed.open(self.path)]
        os.truncate(self.output, state["output_bytes"])
        self.scorer.header_written = state["output_bytes"] > 0
        identity = (state["device"], state["inode"])
        current = os.stat(self.path)
        if (current.st_dev, current.st_ino) == identity:
            if current.st_size < state["offset"]:
                self.scorer.report(f"{self.path} is shorter than when it was last read: reading it again from its first line")
                return [_Followed.open(self.path)]
            self.scorer.new_source(state["layout"])
            return [_Followed.open(self.path, state["offset"], state["next_line"])]
        rotated = _find_by_identity(self.path.parent, identity)
        if rotated is None:
            self.scorer.report(
                f"{self.path} was replaced while not followed and the file read before is no longer in {self.path.parent}: "
                f"its lines from line {state['next_line']} on are not scored (score that file with input=<its path>)"
            )
            return [_Followed.open(self.path)]
        self.scorer.report(f"{self.path} was replaced while not followed: scoring the rest of {rotated} first")
        self.scorer.new_source(state["layout"])
        return [_Followed.open(rotated, state["offset"], state["next_line"]), _Followed.open(self.path)]

    def _follow(self, followed: _Followed, stop: threading.Event) -> None:
        batch: list[tuple[str, int]] = []
        deadline = 0.0
        try:
            while True:
                lines = followed.complete_lines()
                if lines and not batch:
                    deadline = time.monotonic() + self.options.max_delay_s
                batch += lines
                stopping = stop.is_set()
                while batch and (len(batch) >= self.options.batch_size or stopping or time.monotonic() >= deadline):
                    taken, batch = batch[: self.options.batch_size], batch[self.options.batch_size :]
                    self._score_batch(followed, taken)
                if stopping:
                    return
                if lines:
                    continue
                change = followed.replaced()
                if change is not None:
                    what = "replaced (rotated): scoring the rest of the old file, then the new one" if change == "rotated" else "truncated: reading it again"
                    self.scorer.report(f"{self.path} was {what} from its first line")
                    self._score_rest(followed, batch, final=change == "rotated")
                    batch = []
                    followed.handle.close()
                    followed = _Followed.open(self.path)
                    self.scorer.new_source()
                    self._save_offsets(followed)
                    continue
                stop.wait(self.options.poll_s if not batch else min(self.options.poll_s, max(0.0, deadline - time.monotonic())))
        finally:
            followed.handle.close()

    def _score_rest(self, followed: _Followed, batch: list[tuple[str, int]], final: bool) -> None:
        """Score what is left of a file that will not grow."""
        while lines := followed.complete_lines(final=final):
            batch += lines
        while batch:
            taken, batch = batch[: self.options.batch_size], batch[self.options.batch_size :]
            self._score_batch(followed, taken)

    def _score_batch(self, followed: _Followed, taken: list[tuple[str, int]]) -> None:
        self.scorer.score([line for line, _ in taken], followed.next_line, str(followed.path))
        followed.next_line += len(taken)
        followed.offset += sum(n for _, n in taken)
        # The scores on disk before the offsets that count them: a crash in between scores the
        # batch again into an output truncated back to where it was.
        os.fsync(self.scorer.out.fileno())
        self._save_offsets(followed)

    def _save_offsets(self, followed: _Followed) -> None:
        write_json_atomic(self.offsets, {
            "format": OFFSET_FORMAT, "input": str(self.path), "output": str(self.output.absolute()),
            "device": followed.identity[0], "inode": followed.identity[1],
            "offset": followed.offset, "next_line": followed.next_line,
            "layout": None if self.scorer.parser is None else self.scorer.parser.layout,
            "output_bytes": os.fstat(self.scorer.out.fileno()).st_size,
        })  # fmt: skip


def _find_by_identity(directory: Path, identity: tuple[int, int]) -> Path | None:
    for entry in os.scandir(directory):
        if entry.is_file() and entry.inode() == identity[1] and entry.stat().st_dev == identity[0]:
            return Path(entry.path)
    return None


def _read_offsets(offsets: Path, path: Path, output: Path) -> dict | None:
    """The offsets file's record, checked against this input and output; None when there is none."""
    if not offsets.exists():
        return None
    try:
        state = json.loads(offsets.read_text())
        if not isinstance(state, dict) or state.get("format") != OFFSET_FORMAT:
            raise ValueError("not of this format")
        missing = [k for k in ("input", "output", "device", "inode", "offset", "next_line", "layout", "output_bytes") if k not in state]
        if missing:
            raise ValueError(f"no {', '.join(missing)}")
    except (ValueError, OSError) as e:
        raise DataError(f"{offsets} is not an offsets file of follow=true ({e}): delete it to score {path} from its first line") from e
    if state["input"] != str(path) or state["output"] != str(output.absolute()):
        raise DataError(
            f"{offsets} records following {state['input']} into {state['output']}, not {path} into {output.absolute()}: "
            "pass that input and output, or another offsets file"
        )
    size = output.stat().st_size if output.exists() else -1
    if size < state["output_bytes"]:
        raise DataError(
            f"{output} is {'missing' if size < 0 else 'shorter than'} the {state['output_bytes']} bytes that {offsets} records: "
            f"restore it, or delete {offsets} to score {path} again from its first line"
        )
    return state
