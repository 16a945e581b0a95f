"""A multirun through the real command line: tagged job lines, the summary, the exit status."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_sweep_tags_job_lines_summarises_failures_and_exits_1(kdd_slice, tmp_path):
    missing = tmp_path / "missing.gz"  # fails inside the jobs that read it, not at composition
    sweep_dir = tmp_path / "sweep"
    result = subprocess.run(
        [
            sys.executable, "src/train.py", "-m",
            f"data.train_path={kdd_slice},{missing}", "method=local,fdagmm", "scenario=s4", "fed.rounds=6",
            "torch_threads=1", f"data.cache_dir={tmp_path / 'cache'}",
            "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={sweep_dir}",
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "COLUMNS": "300"},  # the summary's rows unwrapped
    )
    assert result.returncode == 1, result.stderr
    out = result.stdout

    # Each job's lines carry its name; round lines only every fifth round and the last ...
    rounds = re.findall(r"^\[#(\d) (?:local|fdagmm) s4 seed0\] .*round (\d)/6 ", out, re.MULTILINE)
    assert sorted(rounds) == [("0", "5"), ("0", "6"), ("1", "5"), ("1", "6")], out
    assert len(re.findall(r"round \d/6 ", out)) == 4
    # ... while train.log keeps every round.
    assert "round 3/6" in (sweep_dir / "1_fdagmm_s4_seed0" / "train.log").read_text()
    assert "[#2 local s4 seed0] " in out and "job failed: kdd99 file not found" in out

    assert "4/4 jobs, 2 failed" in out  # the progress line after the last job
    lines = [line.rstrip() for line in out.splitlines()]
    summary = lines[lines.index(f"sweep {sweep_dir}") :]
    rows = [[cell.strip() for cell in re.split(r"[│|]", line)[1:-1]] for line in summary if line[0] in "│|"]
    assert rows[0] == ["finished", "2 of 4 jobs"]
    assert rows[1] == ["failed", "2 jobs"]
    # Both failed jobs share their reason: one row names them (in the order they ended).
    assert {rows[2][0], rows[3][0]} == {"#2 local s4 seed0", "#3 fdagmm s4 seed0"}
    assert rows[2][1].startswith(f"kdd99 file not found: {missing}") and rows[3][1] == ""
    assert rows[4][0] == "wall time"

    statuses = {d.name: json.loads((d / "job_status.json").read_text()) for d in sweep_dir.glob("*_seed0")}
    assert [statuses[name]["failure"] is None for name in sorted(statuses)] == [True, True, False, False]
