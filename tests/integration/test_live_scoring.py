"""Scoring records as they arrive, with a UNSW-NB15 model trained on a slice of the real file
(``unsw_scoring_run``): standard input (score.py input=-) and a followed file (follow=true:
growth, partial lines, rotation, restarts). Each gives the energies that score.py gives the
same records in a file."""

import gzip
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers.energies import assert_same_energies

from fdagmm.detection.detector import Detector
from fdagmm.detection.streaming import FollowOptions, Follower, StreamScorer
from fdagmm.errors import DataError

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 60


def _score_cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "src/score.py", *args], cwd=ROOT, input=stdin, capture_output=True, timeout=600)


# Standard input -------------------------------------------------------------------------------


def test_stdin_scores_every_record_as_the_file_does(unsw_scoring_run):
    run_dir, header, records, expected = unsw_scoring_run
    result = _score_cli(f"model={run_dir}", "input=-", "batch_size=128", stdin=(header + "".join(records)).encode())
    assert result.returncode == 0, result.stderr.decode()
    scores = pd.read_csv(pd.io.common.StringIO(result.stdout.decode()))
    assert list(scores.columns) == ["line", "energy", "is_anomaly", "out_of_range", "label"]
    np.testing.assert_array_equal(scores["line"], expected["line"])  # the header is line 1
    assert_same_energies(scores["energy"], expected["energy"])
    np.testing.assert_array_equal(scores["is_anomaly"], expected["is_anomaly"])
    assert f"scored {len(records)} records from standard input" in result.stderr.decode()


def test_stdin_without_a_header_is_laid_out_as_a_headerless_file(unsw_scoring_run):
    run_dir, _, records, expected = unsw_scoring_run
    result = _score_cli(f"model={run_dir}", "input=-", stdin="".join(records[:50]).encode())
    assert result.returncode == 0, result.stderr.decode()
    scores = pd.read_csv(pd.io.common.StringIO(result.stdout.decode()))
    np.testing.assert_array_equal(scores["line"], np.arange(1, 51))
    assert_same_energies(scores["energy"], expected["energy"][:50])


def _line_reader(stream) -> queue.Queue:
    """The lines of ``stream`` as they come, through a thread (None at its end)."""
    lines: queue.Queue = queue.Queue()

    def read():
        for line in stream:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    return lines


def _take(lines: queue.Queue, count: int) -> list[str]:
    taken = []
    while len(taken) < count and (line := lines.get(timeout=TIMEOUT_S)) is not None:
        taken.append(line)
    return taken


def test_stdin_writes_rows_before_the_input_ends_and_skips_a_malformed_line(unsw_scoring_run):
    """Rows come within max_delay_ms of their lines, with the input still open; a malformed
    line is reported with its number and the stream goes on."""
    run_dir, header, records, expected = unsw_scoring_run
    process = subprocess.Popen(
        [sys.executable, "src/score.py", f"model={run_dir}", "input=-", "batch_size=1000", "max_delay_ms=50"],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        process.stdin.write(header + "".join(records[:3]))
        process.stdin.flush()
        lines = _line_reader(process.stdout)
        first = _take(lines, 4)  # column names, then 3 rows
        assert len(first) == 4 and process.poll() is None, first
        process.stdin.write("1,2,3\n" + "".join(records[3:5]))
        process.stdin.close()
        rest = "".join(_take(lines, 10))
        assert process.wait(timeout=TIMEOUT_S) == 0
    finally:
        process.kill()
    scores = pd.read_csv(pd.io.common.StringIO("".join(first) + rest))
    np.testing.assert_array_equal(scores["line"], [2, 3, 4, 6, 7])  # line 5 is the malformed one
    assert_same_energies(scores["energy"], expected["energy"][:5])
    errors = process.stderr.read()
    assert "stdin: line 5: 3 fields instead of 45 (skipped)" in errors
    assert "skipped 1 malformed lines" in errors


def test_stdin_refuses_gzip_and_stream_options_that_cannot_work(unsw_scoring_run, tmp_path):
    run_dir, header, records, _ = unsw_scoring_run
    result = _score_cli(f"model={run_dir}", "input=-", stdin=gzip.compress((header + records[0]).encode()))
    assert result.returncode == 2 and result.stderr.decode().strip() == "error: standard input is gzip-compressed: pipe it through `gunzip -c` first"
    for args, message in (
        (["input=-", "follow=true"], "follow=true follows a file"),
        ([f"input={tmp_path / 'a.csv'}", "output=-"], "output=- (standard output) is for input=-"),
        (["input=-", "max_delay_ms=0"], "max_delay_ms"),
    ):
        result = _score_cli(f"model={run_dir}", *args, stdin=b"")
        lines = result.stderr.decode().strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and message in lines[0], lines


# Following a file -----------------------------------------------------------------------------


class _Following:
    """A Follower in a thread, stopped on exit; ``wait_for(n)`` waits until the output has n rows."""

    def __init__(self, run_dir: Path, path: Path, output: Path, batch_size: int = 1000):
        detector = Detector.load(run_dir)
        self.reports: list[str] = []
        scorer = StreamScorer(detector, detector.threshold, None, report=self.reports.append)
        self.follower = Follower(scorer, path, output, Path(f"{output}.offsets.json"), FollowOptions(batch_size, 0.02, 0.02))
        self.output = output
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run)

    def _run(self):
        try:
            self.summary = self.follower.run(self.stop)
        except BaseException as e:  # noqa: BLE001 - handed to the test
            self.error = e

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(TIMEOUT_S)
        assert not self.thread.is_alive()
        if self.error is not None and exc[0] is None:
            raise self.error

    def wait_for(self, rows: int) -> pd.DataFrame:
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.error is None, self.error
            if self.output.exists() and self.output.stat().st_size:
                scores = pd.read_csv(self.output)
                if len(scores) >= rows:
                    return scores
            time.sleep(0.02)
        raise AssertionError(f"{self.output} did not reach {rows} rows within {TIMEOUT_S} s")


def _append(path: Path, text: str) -> None:
    with open(path, "a") as f:
        f.write(text)


def test_follow_scores_appended_lines_once_across_a_partial_line_and_a_rotation(unsw_scoring_run, tmp_path):
    run_dir, header, records, expected = unsw_scoring_run
    log, output = tmp_path / "traffic.log", tmp_path / "scores.csv"
    log.write_text(header + "".join(records[:100]))
    with _Following(run_dir, log, output) as following:
        following.wait_for(100)
        half = len(records[100]) // 2
        _append(log, "".join(records[100:150]) + records[150][:half])  # the last line not complete yet
        assert len(following.wait_for(150)) == 150
        time.sleep(0.2)
        assert len(pd.read_csv(output)) == 150  # an incomplete line is not scored
        _append(log, records[150][half:] + "".join(records[151:200]))
        following.wait_for(200)
        os.rename(log, tmp_path / "traffic.log.1")  # rotation: the old file's last lines written after the rename
        _append(tmp_path / "traffic.log.1", "".join(records[200:220]))
        log.write_text(header + "".join(records[220:300]))
        scores = following.wait_for(300)
    assert any("was replaced (rotated)" in r for r in following.reports)
    assert_same_energies(scores["energy"], expected["energy"][:300])  # each record once, in order
    # Line numbers are the file's: the new one starts again after its header.
    np.testing.assert_array_equal(scores["line"], [*range(2, 222), *range(2, 82)])


def test_follow_resumes_from_its_offsets_after_a_stop_a_crash_and_a_rotation(unsw_scoring_run, tmp_path):
    run_dir, header, records, expected = unsw_scoring_run
    log, output = tmp_path / "traffic.log", tmp_path / "scores.csv"
    offsets = Path(f"{output}.offsets.json")
    log.write_text(header + "".join(records[:100]))
    with _Following(run_dir, log, output) as following:
        following.wait_for(100)
    recorded = json.loads(offsets.read_text())
    assert (recorded["next_line"], recorded["output_bytes"]) == (102, output.stat().st_size)
    # Stopped: lines arrive, and a crash leaves a half-written batch after the recorded length.
    _append(log, "".join(records[100:150]))
    _append(output, "999,1.0,0,,0\n999,2.0")
    with _Following(run_dir, log, output) as following:
        following.wait_for(150)
    # Stopped again, and the file is rotated before the next start: the old file is found by
    # its inode and finished first.
    _append(log, "".join(records[150:170]))
    os.rename(log, tmp_path / "traffic.log.1")
    log.write_text(header + "".join(records[170:200]))
    with _Following(run_dir, log, output) as following:
        scores = following.wait_for(200)
    assert any(f"scoring the rest of {tmp_path / 'traffic.log.1'} first" in r for r in following.reports)
    assert_same_energies(scores["energy"], expected["energy"][:200])
    np.testing.assert_array_equal(scores["line"], [*range(2, 172), *range(2, 32)])


def test_follow_refuses_an_output_shorter_than_its_offsets_record(unsw_scoring_run, tmp_path):
    run_dir, header, records, _ = unsw_scoring_run
    log, output = tmp_path / "traffic.log", tmp_path / "scores.csv"
    log.write_text(header + "".join(records[:10]))
    with _Following(run_dir, log, output) as following:
        following.wait_for(10)
    output.write_text("line\n")  # shorter than recorded
    with pytest.raises(DataError, match="shorter than the .* bytes that .* records: restore it, or delete"):
        with _Following(run_dir, log, output):
            time.sleep(0.2)


def test_follow_stops_on_sigterm_after_the_complete_lines(unsw_scoring_run, tmp_path):
    run_dir, header, records, expected = unsw_scoring_run
    log, output = tmp_path / "traffic.log", tmp_path / "scores.csv"
    log.write_text(header + "".join(records[:20]))
    process = subprocess.Popen(
        [sys.executable, "src/score.py", f"model={run_dir}", f"input={log}", "follow=true", f"output={output}", "max_delay_ms=20"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline and not (output.exists() and len(output.read_text().splitlines()) == 21):
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=TIMEOUT_S) == 0
    finally:
        process.kill()
    assert_same_energies(pd.read_csv(output)["energy"], expected["energy"][:20])
    assert "scored 20 records" in process.stderr.read()
