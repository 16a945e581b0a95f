"""The fdagmm command: its subcommands are src/'s programs, word for word."""

import subprocess
import sys
from pathlib import Path

import pytest

from fdagmm.commands import PROGRAMS, SRC

ROOT = Path(__file__).resolve().parents[2]


def _fdagmm(*args: str) -> subprocess.CompletedProcess:
    code = "import sys; from fdagmm.commands import main; main(sys.argv[1:])"
    return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_every_subcommand_is_a_program_of_src():
    assert sorted(PROGRAMS) == sorted(["train", "score", "serve", "schema", "report", "privacy-cost", "bench", "bench-serve", "bench-gpu"])
    for script, _ in PROGRAMS.values():
        assert (SRC / script).is_file(), script


def test_help_lists_the_commands_and_a_wrong_one_is_a_one_line_error():
    help_text = _fdagmm("--help")
    assert help_text.returncode == 0 and all(f"  {name} " in help_text.stdout for name in PROGRAMS)
    wrong = _fdagmm("trian")
    assert wrong.returncode == 2 and wrong.stderr.strip().startswith("error: no command 'trian': the commands are train, score")


@pytest.mark.parametrize("name, expected", [("score", "Arguments (key=value) and their defaults:"), ("serve", "max_body_mb: 64.0"),
                                            ("schema", "usage: python src/schema.py"), ("report", "--who-gains"), ("train", "== Configuration groups ==")])  # fmt: skip
def test_each_subcommand_has_its_programs_help(name, expected):
    result = _fdagmm(name, "--help")
    assert result.returncode == 0 and expected in result.stdout, result.stderr


def test_a_subcommand_keeps_its_programs_errors_and_exit_status(tmp_path):
    via_command = _fdagmm("score", f"model={tmp_path / 'none'}", "input=x.csv")
    direct = subprocess.run([sys.executable, "src/score.py", f"model={tmp_path / 'none'}", "input=x.csv"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert via_command.returncode == direct.returncode == 2
    assert via_command.stderr == direct.stderr and via_command.stderr.startswith("error: no model at")


def test_the_installed_command_runs_them():
    command = Path(sys.executable).parent / "fdagmm"  # make install puts it beside the environment's python
    result = subprocess.run([str(command), "score", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "input=-" in result.stdout
