"""Command-line behaviour shared by the entry points: user errors as one line."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from fdagmm.errors import ConfigError, FdagmmError, first_line
from fdagmm.serialization import check_writable_dir

log = logging.getLogger(__name__)

# The attribute of a failed sweep job's log record that holds the one-line reason; the
# sweep's summary (fdagmm.run.progress) lists it.
FAILURE_REASON = "failure_reason"


@contextmanager
def one_line_errors(debug: bool) -> Iterator[None]:
    """Report an FdagmmError as ``error: <message>`` and exit 2 (``debug`` shows the traceback).

    In a multirun a failing job, whatever the error, is logged with its one-line reason
    (which the sweep's summary lists) and the sweep goes on; the job's dir then has no
    metrics.json, which the report names.
    """
    multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    try:
        yield
    except FdagmmError as e:
        if debug:
            raise
        if not multirun:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        log.error("job failed: %s", e, extra={FAILURE_REASON: first_line(e)})
    except Exception as e:
        if not multirun or debug:
            raise
        log.exception("job failed", extra={FAILURE_REASON: f"{type(e).__name__}: {first_line(e)}"})


def check_group_choices(overrides: list[str], conf_dir: Path) -> None:
    """Refuse a ``group=option`` override that names no option of a config group, in one line.

    Hydra's own message for this lists the search path over many lines.
    """
    for override in overrides:
        key, sep, value = override.partition("=")
        key = key.lstrip("+~")
        group = conf_dir / key
        if not sep or not key or "." in key or "(" in value or not group.is_dir():
            continue
        options = sorted(p.stem for p in group.glob("*.yaml"))
        for choice in value.split(","):
            if choice not in (*options, "null"):
                raise ConfigError(f"unknown {key} {choice!r}: choose one of {', '.join(options)}")


class RunDirCheck(Callback):
    """Refuses a run (or sweep) dir that cannot be created or written, in one line, before
    Hydra creates it: Hydra's own failure is a traceback (conf/config.yaml registers this)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config, "hydra.sweep.dir")

    @staticmethod
    def _check(config: DictConfig, key: str) -> None:
        with one_line_errors(debug=config.debug):
            check_writable_dir(key, OmegaConf.select(config, key))


def key_value_help(doc: str, schema: type) -> str:
    """A ``key=value`` program's ``--help``: its docstring, then every key with its default
    (``???``: required)."""
    defaults = OmegaConf.to_yaml(OmegaConf.structured(schema)).strip()
    return f"{doc.strip()}\n\nArguments (key=value) and their defaults:\n" + "\n".join(f"  {line}" for line in defaults.splitlines())
