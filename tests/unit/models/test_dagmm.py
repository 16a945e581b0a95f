"""DAGMM's maths against float64 references, and the failure modes of public DAGMM code."""

import numpy as np
import pytest
import torch
from hydra import compose, initialize
from hydra.utils import instantiate
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from fdagmm.detection import evaluation
from fdagmm.models.dagmm import (
    DAGMM,
    GaussianMixture,
    _cholesky_with_jitter_on_device,
    cholesky_with_jitter,
    covariance_penalty,
    dagmm_objective,
    gmm_sufficient_stats,
    mixture_from_stats,
    sample_energy,
)
from fdagmm.errors import NumericalError

JITTER = 1e-6


def _random_mixture(rng, k=4, d=3):
    a = rng.normal(size=(k, d, d))
    sigma = a @ a.transpose(0, 2, 1) + 0.1 * np.eye(d)
    return GaussianMixture(
        phi=torch.from_numpy(rng.dirichlet(np.ones(k))),
        mu=torch.from_numpy(rng.normal(size=(k, d))),
        sigma=torch.from_numpy(sigma),
    )


def _reference_energy(z, m: GaussianMixture, jitter):
    d = z.shape[1]
    log_terms = [
        np.log(m.phi[k].item())
        + multivariate_normal(m.mu[k].numpy(), m.sigma[k].numpy() + jitter * np.eye(d)).logpdf(z)
        for k in range(len(m.phi))
    ]
    return -logsumexp(np.stack(log_terms, axis=1), axis=1)


def test_energy_matches_scipy_float64_reference():
    rng = np.random.default_rng(0)
    for _ in range(5):
        mixture = _random_mixture(rng)
        z = rng.normal(size=(200, 3)) * 2
        got = sample_energy(torch.from_numpy(z), mixture, JITTER).numpy()
        np.testing.assert_allclose(got, _reference_energy(z, mixture, JITTER), rtol=1e-10, atol=1e-10)


def test_energy_is_finite_for_nearly_singular_and_singular_covariances():
    rng = np.random.default_rng(1)
    mixture = _random_mixture(rng)
    v = rng.normal(size=(3, 1))
    mixture.sigma[0] = torch.from_numpy(v @ v.T)  # rank 1
    mixture.sigma[1] = 0.0  # all mass on one point
    mixture.sigma[2] = torch.from_numpy(np.diag([1.0, 1.0, -1e-4]))  # slightly indefinite
    z = torch.from_numpy(rng.normal(size=(100, 3)))
    energy = sample_energy(z, mixture, JITTER)
    assert torch.isfinite(energy).all()


def test_hopeless_covariance_raises_a_clear_error():
    mixture = GaussianMixture(torch.ones(1), torch.zeros(1, 3), -torch.eye(3)[None].double())
    with pytest.raises(NumericalError, match="not positive definite"):
        sample_energy(torch.zeros(5, 3), mixture, JITTER)


def _covariances_needing_more_jitter():
    """A positive definite, a rank-1 and an all-zero covariance: the last two factor only
    with more than the first jitter level."""
    rng = np.random.default_rng(2)
    a = rng.normal(size=(3, 3))
    v = rng.normal(size=(3, 1))
    return torch.from_numpy(np.stack([a @ a.T + np.eye(3), v @ v.T, np.zeros((3, 3))])).requires_grad_()


@pytest.mark.parametrize("jitter", [JITTER, 1e-12])
def test_the_gpu_choice_of_jitter_gives_the_cpu_loop_factor_and_gradient(jitter):
    # The GPU's sync-free path, run here on CPU tensors: the same jitter level as the loop
    # (1e-12 needs several more levels for the singular covariances), the same gradient.
    sigma = _covariances_needing_more_jitter()
    loop = cholesky_with_jitter(sigma, jitter)
    (loop_grad,) = torch.autograd.grad(loop.diagonal(dim1=-2, dim2=-1).log().sum(), sigma)
    device_path = _cholesky_with_jitter_on_device(sigma, jitter, max_tries=6)
    (device_grad,) = torch.autograd.grad(device_path.diagonal(dim1=-2, dim2=-1).log().sum(), sigma)
    torch.testing.assert_close(device_path, loop, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(device_grad, loop_grad, rtol=1e-9, atol=1e-9)


def test_the_gpu_path_gives_nan_where_the_loop_raises():
    sigma = -torch.eye(3, dtype=torch.float64)[None]
    with pytest.raises(NumericalError):
        cholesky_with_jitter(sigma, JITTER)
    assert torch.isnan(_cholesky_with_jitter_on_device(sigma, JITTER, max_tries=6)).all()


def test_mixture_from_stats_matches_the_weighted_formulas():
    rng = np.random.default_rng(2)
    z = rng.normal(size=(500, 3))
    gamma = rng.dirichlet(np.ones(4), size=500)
    m = mixture_from_stats(gmm_sufficient_stats(torch.from_numpy(z), torch.from_numpy(gamma)))
    for k in range(4):
        w = gamma[:, k]
        mu = (w[:, None] * z).sum(0) / w.sum()
        sigma = ((w[:, None] * (z - mu)).T @ (z - mu)) / w.sum()
        assert m.phi[k].item() == pytest.approx(w.mean(), rel=1e-12)
        np.testing.assert_allclose(m.mu[k].numpy(), mu, rtol=1e-10)
        np.testing.assert_allclose(m.sigma[k].numpy(), sigma, rtol=1e-9, atol=1e-12)


def test_stats_of_disjoint_halves_add_up_to_the_union():
    rng = np.random.default_rng(3)
    z = torch.from_numpy(rng.normal(size=(1000, 3)))
    gamma = torch.from_numpy(rng.dirichlet(np.ones(4), size=1000))
    union = mixture_from_stats(gmm_sufficient_stats(z, gamma))
    halves = gmm_sufficient_stats(z[:300], gamma[:300]) + gmm_sufficient_stats(z[300:], gamma[300:])
    assert halves.n == 1000
    summed = mixture_from_stats(halves)
    for name in ("phi", "mu", "sigma"):
        torch.testing.assert_close(getattr(summed, name), getattr(union, name), rtol=1e-12, atol=1e-12)


@pytest.fixture
def module():
    with initialize(version_base="1.3", config_path="../../../conf"):
        cfg = compose(config_name="config")
    torch.manual_seed(0)
    return instantiate(cfg.model, net={"input_dim": 122})


def _batch(n=256, d=122, seed=0):
    return torch.rand(n, d, generator=torch.Generator().manual_seed(seed))


def test_objective_matches_a_float64_reference(module):
    x = _batch()
    module.net.eval()  # no dropout, so the reference sees the same gamma
    with torch.no_grad():
        out = module.net(x)
        loss = dagmm_objective(x, out, 0.1, 0.005, JITTER)
    xd, x_hat = x.double().numpy(), out.x_hat.double().numpy()
    z, gamma = out.z.double().numpy(), out.gamma.double().numpy()
    recon = ((xd - x_hat) ** 2).sum(1).mean()
    phi = gamma.mean(0)
    mu = (gamma.T @ z) / gamma.sum(0)[:, None]
    sigma = np.stack([((gamma[:, k, None] * (z - mu[k])).T @ (z - mu[k])) / gamma[:, k].sum() for k in range(4)])
    reference_mixture = GaussianMixture(*(torch.from_numpy(a) for a in (phi, mu, sigma)))
    energy = _reference_energy(z, reference_mixture, JITTER).mean()
    penalty = sum(1.0 / sigma[k, j, j] for k in range(4) for j in range(3))
    expected = recon + 0.1 * energy + 0.005 * penalty
    assert loss.total.item() == pytest.approx(expected, rel=1e-5)
    assert loss.cov_penalty.item() == pytest.approx(penalty, rel=1e-5)
    # z = [z_c, relative distance, cosine], the last two recomputed here from x and x'.
    np.testing.assert_allclose(z[:, 1], np.linalg.norm(xd - x_hat, axis=1) / np.linalg.norm(xd, axis=1), rtol=1e-5)
    cos = (xd * x_hat).sum(1) / (np.linalg.norm(xd, axis=1) * np.linalg.norm(x_hat, axis=1))
    np.testing.assert_allclose(z[:, 2], cos, rtol=1e-5, atol=1e-6)


def test_log_distance_feature_is_the_log_of_the_papers_and_the_rest_is_unchanged():
    """distance_feature=log_relative: z's distance entry is log(||x - x'|| / ||x||) (float64
    reference), and the code, the cosine and the reconstruction are those of the same weights
    with the paper's feature; a zero-norm record stays finite."""
    x = _batch(64, 20).double()
    x[:3] = 0.0
    torch.manual_seed(1)
    paper = DAGMM(20, (16, 8), latent_dim=4).double().eval()
    logged = DAGMM(20, (16, 8), latent_dim=4, distance_feature="log_relative").double().eval()
    logged.load_state_dict(paper.state_dict())
    with torch.no_grad():
        a, b = paper(x), logged(x)
    torch.testing.assert_close(b.x_hat, a.x_hat)
    torch.testing.assert_close(b.z[:, :4], a.z[:, :4])
    torch.testing.assert_close(b.z[:, 5], a.z[:, 5])
    xd, x_hat = x.numpy(), a.x_hat.numpy()
    reference = np.log(np.linalg.norm(xd[3:] - x_hat[3:], axis=1) / np.linalg.norm(xd[3:], axis=1))
    np.testing.assert_allclose(b.z[3:, 4].numpy(), reference, rtol=1e-12)
    assert torch.isfinite(b.z).all()
    with pytest.raises(ValueError, match="unknown distance_feature 'log'"):
        DAGMM(20, distance_feature="log")


@pytest.mark.parametrize("detach", [False, True])
def test_detached_reconstruction_features_keep_the_energys_gradient_off_the_decoder(detach):
    """The energy term alone: with detached features no gradient reaches the decoder (it
    shapes only the reconstruction features); without, it does. The values are the same."""
    x = _batch(64, 20)
    torch.manual_seed(3)
    net = DAGMM(20, (16, 8), latent_dim=3, detach_reconstruction_features=detach).eval()
    out = net(x)
    energy_only = dagmm_objective(x, out, 1.0, 0.0, JITTER).total - out.squared_error.mean()
    energy_only.backward()
    decoder_grad = sum(p.grad.abs().sum() for p in net.decoder.parameters())
    assert (decoder_grad == 0) == detach
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.encoder.parameters())
    torch.manual_seed(3)
    other = DAGMM(20, (16, 8), latent_dim=3, detach_reconstruction_features=not detach).eval()
    torch.testing.assert_close(other(x).z, out.z.detach())


def test_without_reconstruction_features_the_mixture_sees_the_code_alone():
    x = _batch(32, 20)
    torch.manual_seed(2)
    net = DAGMM(20, (16, 8), latent_dim=3, reconstruction_features=False).eval()
    with torch.no_grad():
        out = net(x)
        code = net.encoder(x)
    torch.testing.assert_close(out.z, code)
    assert net.estimation[0].in_features == 3 and out.gamma.shape == (32, 4)
    assert torch.isfinite(dagmm_objective(x, out, 0.1, 0.005, JITTER).total)


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
def test_one_step_reaches_and_changes_every_parameter(module):
    module.net.train()
    optimizer = module.configure_optimizers()
    before = {n: p.detach().clone() for n, p in module.named_parameters()}
    loss = module.training_step((_batch(),), 0)
    loss.backward()
    for name, p in module.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"no gradient reaches {name}"
    optimizer.step()
    for name, p in module.named_parameters():
        assert not torch.equal(p, before[name]), f"{name} did not change"


def test_zero_norm_input_gives_finite_features_and_loss(module):
    x = _batch()
    x[:10] = 0.0
    out = module.net(x)
    assert torch.isfinite(out.z).all()
    assert torch.isfinite(dagmm_objective(x, out, 0.1, 0.005, JITTER).total)


def test_penalty_is_sum_of_inverse_diagonals():
    sigma = torch.stack([torch.diag(torch.tensor([1.0, 2.0, 4.0])), torch.diag(torch.tensor([0.5, 1.0, 1.0]))])
    assert covariance_penalty(sigma).item() == pytest.approx(1 + 0.5 + 0.25 + 2 + 1 + 1)


def test_scoring_stats_cover_the_whole_training_set_not_a_batch(monkeypatch):
    torch.manual_seed(0)
    net = DAGMM(input_dim=122)
    x = _batch(n=2500)
    monkeypatch.setitem(evaluation.SCORING_CHUNK, "cpu", 1024)  # three chunks, the last one short
    stats = evaluation.dataset_gmm_stats(net, x)
    assert stats.n == 2500
    assert net.training  # scoring switched dropout off and restored the mode it found
    net.eval()
    with torch.no_grad():
        out = net(x)
    one_pass = gmm_sufficient_stats(out.z, out.gamma)
    torch.testing.assert_close(stats.s2, one_pass.s2, rtol=1e-6, atol=1e-6)
