"""The GPU's training step replayed from a CUDA graph against the eager step.

The captured step needs a GPU (those tests are skipped elsewhere; `make bench-gpu` runs them
on the GPU machine first); the Lightning side of it (manual optimisation, step counts, logged
losses) is checked on the CPU with the same steps run eagerly.
"""

import copy

import pytest
import torch
from hydra import compose, initialize
from hydra.utils import instantiate

from fdagmm.data.datamodule import batch_loader
from fdagmm.federation.strategies.fedprox import FedProx
from fdagmm.models.cuda_graph import CapturedTrainingStep
from fdagmm.models.dagmm import DAGMM, training_loss
from fdagmm.models.lit_module import DAGMMLitModule

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

LAMBDAS = (0.1, 0.005, 1e-6)


def _eager_steps(net, optimizer, batches, penalty=None):
    losses = []
    for x in batches:
        optimizer.zero_grad()
        loss = training_loss(net, x, *LAMBDAS)
        (loss.total if penalty is None else loss.total + penalty(net)).backward()
        optimizer.step()
        losses.append(torch.stack([loss.total, loss.reconstruction, loss.energy, loss.cov_penalty]).detach())
    return torch.stack(losses)


@needs_cuda
@pytest.mark.parametrize("with_penalty", [False, True])
def test_graph_replays_give_the_eager_losses_and_weights(with_penalty):
    torch.manual_seed(0)
    net = DAGMM(122, dropout=0.0).cuda()  # no dropout: both paths compute the same function
    x = torch.rand(6 * 256 + 100, 122, device="cuda", generator=torch.Generator("cuda").manual_seed(1))
    batches = list(x.split(256)) * 2  # warm-up, record, replays, a partial batch (eager), replays again
    penalty = FedProx(proximal_mu=0.1).local_penalty({k: v.cpu() for k, v in net.state_dict().items()}) if with_penalty else None
    eager_net, graph_net = copy.deepcopy(net), copy.deepcopy(net)
    eager = _eager_steps(eager_net, torch.optim.Adam(eager_net.parameters(), lr=1e-3, capturable=True), batches, penalty)
    step = CapturedTrainingStep(graph_net, torch.optim.Adam(graph_net.parameters(), lr=1e-3, capturable=True), LAMBDAS, penalty)
    graphed = torch.stack([step(b) for b in batches])
    assert step.graph is not None
    torch.testing.assert_close(graphed, eager, rtol=1e-4, atol=1e-6)
    for (name, value), trained in zip(eager_net.state_dict().items(), graph_net.state_dict().values()):
        torch.testing.assert_close(trained, value, rtol=1e-4, atol=1e-6, msg=name)
    assert not torch.equal(graph_net.encoder[0].weight, net.encoder[0].weight)  # it trained


@needs_cuda
def test_dropout_replays_are_seeded():
    x = torch.rand(6 * 256, 122, device="cuda", generator=torch.Generator("cuda").manual_seed(4))
    runs = []
    for _ in range(2):
        torch.manual_seed(5)
        net = DAGMM(122).cuda()
        step = CapturedTrainingStep(net, torch.optim.Adam(net.parameters(), lr=1e-3, capturable=True), LAMBDAS)
        runs.append(torch.stack([step(b) for b in x.split(256)]))
    torch.testing.assert_close(runs[0], runs[1], rtol=0, atol=0)


def _fit(cfg, x, captured: bool, accelerator: str):
    torch.manual_seed(0)
    module = instantiate(cfg.model, net={"input_dim": x.shape[1]}, compile=False, cuda_graph=captured)
    trainer = instantiate(cfg.trainer, accelerator=accelerator, max_epochs=2, logger=False)
    trainer.fit(module, train_dataloaders=batch_loader(x, 1024, seed=3))
    return module


@pytest.fixture
def cfg():
    with initialize(version_base="1.3", config_path="../../../conf"):
        return compose(config_name="config", overrides=["model.net.dropout=0.0"])


def test_the_manual_step_path_equals_lightnings_automatic_one_on_a_cpu(cfg, monkeypatch):
    # The captured path's Lightning side (manual optimisation, the step doing backward and
    # update itself, step counts, mean loss) with its steps run eagerly: bit for bit the same.
    x = torch.rand(4 * 1024 + 300, 122, generator=torch.Generator().manual_seed(2))
    automatic = _fit(cfg, x, captured=False, accelerator="cpu")
    monkeypatch.setattr(DAGMMLitModule, "_captures", lambda self: True)
    manual = _fit(cfg, x, captured=True, accelerator="cpu")
    assert manual.automatic_optimization and manual._captured is None  # reset after the fit
    assert manual.steps_taken == automatic.steps_taken == 2 * 5
    assert manual.pop_mean_loss() == automatic.pop_mean_loss()
    for name, value in automatic.net.state_dict().items():
        assert torch.equal(manual.net.state_dict()[name], value), name


@needs_cuda
def test_a_lightning_fit_with_the_captured_step_matches_the_eager_fit(cfg):
    x = torch.rand(4 * 1024 + 300, 122, generator=torch.Generator().manual_seed(2)).cuda()
    eager, captured = (_fit(cfg, x, captured=c, accelerator="gpu") for c in (False, True))
    assert captured.steps_taken == eager.steps_taken == 2 * 5
    assert captured.pop_mean_loss() == pytest.approx(eager.pop_mean_loss(), rel=1e-5)
    for name, value in eager.net.state_dict().items():
        torch.testing.assert_close(captured.net.state_dict()[name], value, rtol=1e-4, atol=1e-6, msg=name)
