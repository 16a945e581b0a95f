"""Round checkpoints of a federated run, so that a killed run resumes to the same result.

After every round the driver saves the global weights, the strategy's server state (e.g.
FedAdam's moments), the clients' personal layers (FedPer) and optimiser states
(``fed.keep_optimizer_state``), the round, the metric history,
the TensorBoard step offsets and every RNG state into ``<run dir>/checkpoint.pt``; writing a
temporary file and renaming it means a crash leaves the previous checkpoint intact.
Checkpoints are read with ``torch.load(weights_only=True)``: tensors and plain data only.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from fdagmm.errors import DataError
from fdagmm.serialization import load_payload, save_payload

CHECKPOINT_FILE = "checkpoint.pt"
FORMAT_VERSION = 2


@dataclass
class RoundCheckpoint:
    round: int  # the last completed round
    global_state: dict[str, Tensor]
    strategy_state: dict[str, dict[str, Tensor]]
    personal_states: dict[str, dict[str, Tensor]]  # per client id, for clients that keep any
    optimizer_states: dict[str, dict[str, Any]]  # per client id, with fed.keep_optimizer_state
    history: list[dict[str, Any]]
    step_offsets: dict[str, int]  # per client logger
    run_identity: str  # the resolved config of the run it belongs to


def save_checkpoint(path: Path, checkpoint: RoundCheckpoint) -> None:
    payload = {
        "format": FORMAT_VERSION,
        "round": checkpoint.round,
        "global_state": {k: v.detach().cpu() for k, v in checkpoint.global_state.items()},
        "strategy_state": checkpoint.strategy_state,
        "personal_states": checkpoint.personal_states,
        "optimizer_states": checkpoint.optimizer_states,
        "history": checkpoint.history,
        "step_offsets": checkpoint.step_offsets,
        "run_identity": checkpoint.run_identity,
        "rng": _rng_states(),
    }
    save_payload(path, payload)


def load_checkpoint(path: Path, run_identity: str) -> RoundCheckpoint:
    """Load a checkpoint of the run described by ``run_identity`` and restore its RNG states."""
    if not path.is_file():
        raise DataError(f"no checkpoint at {path}: the run was stopped before its first round ended; start it again")
    payload = load_payload(path, "round checkpoint", FORMAT_VERSION, "start the run again")
    if payload["run_identity"] != run_identity:
        raise DataError(f"{path} belongs to a run with another config than {path.parent}/.hydra/config.yaml: it cannot resume it")
    _restore_rng_states(payload["rng"])
    return RoundCheckpoint(
        round=payload["round"],
        global_state=payload["global_state"],
        strategy_state=payload["strategy_state"],
        personal_states=payload["personal_states"],
        optimizer_states=payload.get("optimizer_states", {}),  # none in a checkpoint written before the option
        history=payload["history"],
        step_offsets=payload["step_offsets"],
        run_identity=payload["run_identity"],
    )


def _rng_states() -> dict[str, Any]:
    _, keys, pos, has_gauss, cached = np.random.get_state()
    states = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": pos, "has_gauss": has_gauss, "cached": cached},
        "python": list(random.getstate()[1]),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _restore_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    n = states["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    random.setstate((3, tuple(states["python"]), None))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])

