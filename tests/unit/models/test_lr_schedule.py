"""model.lr_schedule: the learning rate each epoch trains at, in one fit and continued across
the fits of a federation's rounds (each round's fit starts where the schedule is)."""

import functools

import pytest
import pytorch_lightning as pl
import torch

from fdagmm.data.datamodule import batch_loader
from fdagmm.models.dagmm import DAGMM
from fdagmm.models.lit_module import DAGMMLitModule, cosine_factor

LR = 1e-3


class EpochLearningRates(pl.Callback):
    def __init__(self):
        self.seen: list[float] = []

    def on_train_epoch_start(self, trainer, pl_module):
        self.seen.append(trainer.optimizers[0].param_groups[0]["lr"])


def _fit_learning_rates(schedule: str, epochs: int, schedule_epochs: int, first_epoch: int = 0) -> list[float]:
    torch.manual_seed(0)
    module = DAGMMLitModule(
        DAGMM(12, hidden_dims=[8], latent_dim=2), functools.partial(torch.optim.Adam, lr=LR),
        lr_schedule=schedule, schedule_epochs=schedule_epochs,
    )  # fmt: skip
    module.first_epoch = first_epoch
    rates = EpochLearningRates()
    trainer = pl.Trainer(max_epochs=epochs, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=[rates])  # fmt: skip
    trainer.fit(module, train_dataloaders=batch_loader(torch.rand(64, 12), 32, seed=0))
    return rates.seen


def test_the_cosine_factor_falls_from_one_through_a_half_and_stays_above_zero():
    total = 10
    factors = [cosine_factor(e, total) for e in range(total)]
    assert factors[0] == 1.0
    assert all(a > b for a, b in zip(factors, factors[1:]))
    assert factors[-1] > 0
    assert cosine_factor(5, 9) == pytest.approx(0.5)  # the middle of (total + 1) steps


def test_one_fit_steps_the_schedule_once_per_epoch():
    assert _fit_learning_rates("cosine", 4, 4) == pytest.approx([LR * cosine_factor(e, 4) for e in range(4)])
    assert _fit_learning_rates("constant", 3, 3) == [LR] * 3


def test_fits_of_successive_rounds_continue_one_schedule():
    """Two-epoch rounds, each a fresh fit that starts at its first epoch of the schedule, see
    the learning rates one six-epoch fit sees."""
    one_fit = _fit_learning_rates("cosine", 6, 6)
    rounds = [rate for first in (0, 2, 4) for rate in _fit_learning_rates("cosine", 2, 6, first_epoch=first)]
    assert rounds == pytest.approx(one_fit)


def test_an_unknown_schedule_is_refused():
    with pytest.raises(ValueError, match="unknown lr_schedule 'step': one of constant, cosine"):
        DAGMMLitModule(DAGMM(4), functools.partial(torch.optim.Adam, lr=LR), lr_schedule="step")
