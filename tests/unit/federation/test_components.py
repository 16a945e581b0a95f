"""The training step a process picks: model.compile=auto (the steps it plans, and when they pay
for compiling) and model.cuda_graph (a GPU's captured step)."""

import pytest
import torch
from hydra import compose, initialize

from fdagmm.errors import ConfigError
from fdagmm.federation import components
from fdagmm.federation.components import COMPILE_PAYS_AFTER_STEPS, build_local_training, compiles_training, planned_training_steps
from fdagmm.models.lit_module import compiled_training_loss, training_loss


def _cfg(*overrides):
    with initialize(version_base="1.3", config_path="../../../conf"):
        return compose(config_name="config", overrides=["paths.output_dir=/tmp/unused", *overrides])


def test_planned_steps_count_every_clients_batches_epochs_and_rounds():
    cfg = _cfg("data.batch_size=1024", "fed.local_epochs=2")
    # ceil(1000/1024) + ceil(2048/1024) + ceil(1/1024) = 1 + 2 + 1 batches, 2 epochs, 3 rounds
    assert planned_training_steps(cfg, [1000, 2048, 1], rounds=3) == 24
    # one client of three sampled per round: a third of them, expected
    assert planned_training_steps(_cfg("data.batch_size=1024", "fed.local_epochs=2", "fed.clients_per_round=1"), [1000, 2048, 1], rounds=3) == 8


def test_auto_compiles_on_a_cpu_from_the_threshold_on():
    cfg = _cfg("trainer.accelerator=cpu")
    assert cfg.model.compile == "auto"  # the default
    assert not compiles_training(cfg, COMPILE_PAYS_AFTER_STEPS - 1)
    assert compiles_training(cfg, COMPILE_PAYS_AFTER_STEPS)


def test_true_and_false_are_obeyed_whatever_the_length():
    assert compiles_training(_cfg("model.compile=true"), 1)
    assert not compiles_training(_cfg("model.compile=false"), 10 * COMPILE_PAYS_AFTER_STEPS)


def test_auto_stays_eager_where_lightning_would_pick_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert not compiles_training(_cfg("trainer.accelerator=auto"), 10 * COMPILE_PAYS_AFTER_STEPS)
    assert compiles_training(_cfg("trainer.accelerator=cpu"), 10 * COMPILE_PAYS_AFTER_STEPS)


@pytest.mark.parametrize("steps, compiled", [(0, False), (COMPILE_PAYS_AFTER_STEPS, True)])
def test_the_clients_modules_follow_the_decision(steps, compiled):
    training = build_local_training(_cfg("trainer.accelerator=cpu"), input_dim=7, planned_steps=steps)
    # torch.compile is lazy: building the module compiles nothing.
    assert training.build_module().loss_fn is (compiled_training_loss() if compiled else training_loss)


def test_the_reproduction_pins_eager_training():
    cfg = _cfg("experiment=reproduce", "hydra.mode=RUN")
    assert cfg.model.compile is False
    assert components.compiles_training(cfg, 10 * COMPILE_PAYS_AFTER_STEPS) is False


def test_the_cuda_graph_step_is_for_gpus_and_excludes_torch_compile():
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert components.graphs_training(_cfg(), cuda)  # the default on a GPU
    assert not components.graphs_training(_cfg(), cpu)  # no effect on a CPU
    assert not components.graphs_training(_cfg("model.cuda_graph=false"), cuda)
    assert not components.graphs_training(_cfg("model.compile=true"), cpu)
    with pytest.raises(ConfigError, match="^model.compile=true and model.cuda_graph=true both choose the GPU's training step"):
        components.graphs_training(_cfg("model.compile=true"), cuda)


def test_the_training_device_is_the_trainers_and_decides_the_step():
    training = build_local_training(_cfg("trainer.accelerator=cpu"), input_dim=7)
    assert training.device == torch.device("cpu")
    assert training.build_module().cuda_graph is False  # model.cuda_graph=true, but on a CPU
