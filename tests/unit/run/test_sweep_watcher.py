"""The sweep's progress counts this sweep's jobs only, in a sweep dir used before."""

import io
import json
import os
import time

from rich.console import Console

from fdagmm.run.progress import STATUS_FILE, SweepWatcher


def _status(job_dir, failure=None):
    job_dir.mkdir()
    (job_dir / STATUS_FILE).write_text(json.dumps({"seconds": 1.0, "failure": failure}))


def test_an_earlier_sweeps_jobs_are_not_counted(tmp_path):
    _status(tmp_path / "1_pooled_iid_k1_seed1", failure="an earlier sweep's job")
    past = time.time() - 3600
    os.utime(tmp_path / "1_pooled_iid_k1_seed1" / STATUS_FILE, (past, past))
    watcher = SweepWatcher(tmp_path, total=1, console=Console(file=io.StringIO(), width=200))
    watcher.start()
    _status(tmp_path / "0_pooled_iid_k1_seed0")
    watcher.stop()
    assert [o.tag for o in watcher.outcomes.values()] == ["#0 pooled iid k1 seed0"]
    assert watcher.all_finished and watcher.failed == []
