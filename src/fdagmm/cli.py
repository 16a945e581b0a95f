"""Command-line behaviour shared by the entry points: user errors as one line."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from fdagmm.errors import FdagmmError

log = logging.getLogger(__name__)


@contextmanager
def one_line_errors(debug: bool) -> Iterator[None]:
    """Report an FdagmmError as ``error: <message>`` and exit 2 (``debug`` shows the traceback).

    In a multirun a failing job, whatever the error, is logged in its own train.log and the
    sweep goes on; the job's dir then has no metrics.json, which the report names.
    """
    multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    try:
        yield
    except FdagmmError as e:
        if debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        if not multirun:
            sys.exit(2)
        log.error("job failed: %s", e)
    except Exception:
        if not multirun or debug:
            raise
        log.exception("job failed")
