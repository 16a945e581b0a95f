"""How the Flower backend is deployed: the processes it starts and what they need from the
environment. Real SuperLink + SuperNode processes on a small slice of the real file.

Skipped when Flower is not installed, unless FDAGMM_REQUIRE_FLOWER=1 (set by CI).
"""

import gzip
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

if importlib.util.find_spec("flwr") is None and os.environ.get("FDAGMM_REQUIRE_FLOWER") != "1":
    pytest.skip('Flower is not installed: pip install -e ".[flower]"', allow_module_level=True)

from fdagmm.federation.flower.launcher import flower_processes  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.flower, pytest.mark.slow]


@pytest.fixture(scope="module")
def kdd_tiny(kdd_lines, tmp_path_factory) -> Path:
    """Every 64th record of the real file (7,720 records): enough for both clients of s4."""
    path = tmp_path_factory.mktemp("data") / "kdd_tiny.csv.gz"
    with gzip.open(path, "wt") as f:
        f.writelines(kdd_lines[::64])
    return path


def _train(run_dir: Path, data: Path, env: dict[str, str], *overrides: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            [sys.executable, "src/train.py", "fed.backend=flower", "scenario=s4", f"data.path={data}",
             "data.cache_dir=null", "trainer.accelerator=cpu", f"hydra.run.dir={run_dir}", *overrides],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
        )
    finally:  # a run killed by the timeout cannot stop its own processes
        for pid in flower_processes(run_dir / "flower" / "home"):
            os.kill(pid, signal.SIGKILL)


def test_runs_with_the_venv_python_called_directly(kdd_tiny, tmp_path):
    """`.venv/bin/python src/train.py ...` with the venv's bin/ not on PATH (cron, IDEs,
    systemd): every Flower executable, and whatever those start, is found beside the interpreter."""
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    dirs = [d for d in env.get("PATH", "").split(os.pathsep) if d and not (Path(d) / "flower-superexec").exists()]
    env["PATH"] = os.pathsep.join(dirs) or os.defpath
    assert shutil.which("flower-superexec", path=env["PATH"]) is None  # what the test is about

    result = _train(tmp_path, kdd_tiny, env, "fed.rounds=1")
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert [r["round"] for r in metrics["history"]] == [1]
    assert flower_processes(tmp_path / "flower" / "home") == []
