"""What a client does in a round of federated averaging: train the global model locally.

A client's records never leave it: it returns a state dict and its training-sample count
(and, when asked, the sufficient statistics of its records: ``evaluation.dataset_gmm_stats``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytorch_lightning as pl
import torch
from torch import Tensor

from fdagmm.datamodule import ClientData, batch_loader
from fdagmm.lit_module import DAGMMLitModule
from fdagmm.seeding import derive_seed
from fdagmm.tracking import ContinuousStepLogger


@dataclass
class ClientUpdate:
    client_id: int
    state: dict[str, Tensor]  # the locally trained network's weights, on the CPU
    n_samples: int  # n_k, the FedAvg weight
    train_loss: float  # mean loss over the round's local steps
    device: torch.device  # where the client trained


def client_update(
    client: ClientData,
    global_state: dict[str, Tensor],
    round_idx: int,
    local_epochs: int,
    batch_size: int,
    seed: int,
    build_module: Callable[[], DAGMMLitModule],
    build_trainer: Callable[..., pl.Trainer],
    logger: ContinuousStepLogger,
) -> ClientUpdate:
    """ClientUpdate(k, theta): a fresh Trainer fits a module initialised from ``global_state``."""
    # Dropout and shuffling depend only on (seed, round, client): not on which client ran first.
    torch.manual_seed(derive_seed(seed, round_idx, client.client_id))
    module = build_module()
    module.net.load_state_dict(global_state)
    trainer = build_trainer(max_epochs=local_epochs, logger=logger)
    loader = batch_loader(client.train_x, batch_size, derive_seed(seed, round_idx, client.client_id, 1))
    trainer.fit(module, train_dataloaders=loader)
    logger.step_offset += trainer.global_step  # next round's curve continues where this one ended
    return ClientUpdate(
        client_id=client.client_id,
        state={k: v.detach().cpu().clone() for k, v in module.net.state_dict().items()},
        n_samples=client.n_train,
        train_loss=module.pop_mean_loss(),
        device=trainer.strategy.root_device,
    )
