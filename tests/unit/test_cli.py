"""The entry points' one-line errors for output dirs that cannot be created (real processes:
Hydra creates the run dir itself)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# A dir nobody can create, root included.
UNCREATABLE = "/proc/fdagmm-test"


def _run(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, f"src/{script}", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_a_run_dir_that_cannot_be_created_is_a_one_line_error():
    result = _run("train.py", f"hydra.run.dir={UNCREATABLE}", "data.train_path=/nonexistent.gz")
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"error: hydra.run.dir: cannot create or write the directory {UNCREATABLE} (")
    assert result.stderr.count("\n") == 1


def test_a_scores_dir_that_cannot_be_created_is_a_one_line_error_before_the_model_is_read():
    result = _run("score.py", "model=/nonexistent", "input=/nonexistent.csv", f"output={UNCREATABLE}/scores.csv")
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"error: output: cannot create or write the directory {UNCREATABLE} (")
    assert result.stderr.count("\n") == 1
