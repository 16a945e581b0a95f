"""Record-level DP: each record's loss depends on that record alone, DP-SGD's per-record
gradients are the autograd ones and their clipped sum moves by at most C when one record is
added, one record moves the statistics by at most their stated sensitivity, the noise has the
stated standard deviation and is secret by default, the accountant composes every step and
release per client, and impossible settings are one-line errors."""

import math
import re

import pytest
import torch
from hydra import compose, initialize

from fdagmm.config import build, validate_config
from fdagmm.data.datamodule import PoissonBatches
from fdagmm.errors import ConfigError
from fdagmm.federation.privacy import epsilon
from fdagmm.federation.record_privacy import RecordLevelDP, clip_rows, stats_sensitivity
from fdagmm.models.dagmm import DAGMM, GMMStats, frozen_mixture_objective, gmm_sufficient_stats, mixture_from_stats, prepare_mixture
from fdagmm.models.dp_sgd import PrivateStep, clipped_sum, per_record_gradients
from fdagmm.seeding import GRADIENT_NOISE_STREAM, RECORD_STATS_NOISE_STREAM, derive_seed


def _net_and_mixture(seed=0, input_dim=12, dtype=torch.float64):
    torch.manual_seed(seed)
    net = DAGMM(input_dim, hidden_dims=(8, 4), estimation_hidden=6).to(dtype)
    x = torch.randn(64, input_dim, dtype=dtype)
    with torch.no_grad():
        out = net(x)
    mixture = prepare_mixture(mixture_from_stats(gmm_sufficient_stats(out.z, out.gamma)), 1e-6)
    return net, x, mixture


def _privacy(**kwargs) -> RecordLevelDP:
    settings = dict(clip_norm=1.0, z_norm_bound=2.0, stats_noise_multiplier=50.0, membership_weight=1.0, delta=1e-6,
                    rounds=10, local_epochs=1, batch_size=100, seed=3, given_noise_multiplier=1.0) | kwargs  # fmt: skip
    return RecordLevelDP(**settings)


def _flat(tensors) -> torch.Tensor:
    return torch.cat([t.flatten() for t in tensors])


def test_under_a_fixed_mixture_each_records_loss_depends_on_that_record_alone():
    net, x, mixture = _net_and_mixture()
    net.eval()
    whole = frozen_mixture_objective(x, net(x), mixture, 0.1, 1.0)
    alone = torch.stack([frozen_mixture_objective(x[i : i + 1], net(x[i : i + 1]), mixture, 0.1, 1.0)[0] for i in range(len(x))])
    torch.testing.assert_close(whole, alone, rtol=1e-12, atol=1e-12)
    # Without a mixture (round 1) the reconstruction alone.
    torch.testing.assert_close(frozen_mixture_objective(x, net(x), None, 0.1, 1.0), net(x).squared_error)


def test_per_record_gradients_are_each_records_own_autograd_gradient_in_float64():
    net, x, mixture = _net_and_mixture()
    net.eval()  # no dropout: a record's gradient is then one number to compare
    gradients, losses = per_record_gradients(net, x[:5], mixture, 0.1, 1.0)
    for i in range(5):
        net.zero_grad()
        frozen_mixture_objective(x[i : i + 1], net(x[i : i + 1]), mixture, 0.1, 1.0)[0].backward()
        for name, p in net.named_parameters():
            torch.testing.assert_close(gradients[name][i], p.grad, rtol=1e-10, atol=1e-12)
    # The same pass gives each record's loss and squared reconstruction error.
    out = net(x[:5])
    torch.testing.assert_close(losses, torch.stack([frozen_mixture_objective(x[:5], out, mixture, 0.1, 1.0), out.squared_error], dim=1))


def test_the_clipped_sum_moves_by_at_most_the_clip_norm_when_one_record_is_added():
    net, x, mixture = _net_and_mixture()
    net.eval()
    gradients, _ = per_record_gradients(net, x, mixture, 0.1, 1.0)
    norms = torch.sqrt(sum(g.flatten(1).square().sum(1) for g in gradients.values()))
    clip = float(norms.median())  # half the records are clipped
    with_all = clipped_sum(gradients, clip)
    without_last = clipped_sum({k: g[:-1] for k, g in gradients.items()}, clip)
    change = _flat(with_all.values()) - _flat(without_last.values())
    assert change.norm() <= clip * (1 + 1e-9)
    # A record within the bound counts as it is.
    small = int(norms.argmin())
    alone = clipped_sum({k: g[small : small + 1] for k, g in gradients.items()}, clip)
    torch.testing.assert_close(_flat(alone.values()), _flat(g[small] for g in gradients.values()))


def test_dp_sgd_noise_has_std_z_c_over_the_expected_batch_and_comes_from_its_generator():
    net, _, mixture = _net_and_mixture()
    step = PrivateStep(mixture, 0.1, 1.0, clip_norm=0.5, noise_multiplier=2.0, expected_batch=10.0, generator=torch.Generator().manual_seed(1))
    empty = torch.zeros(0, 12, dtype=torch.float64)
    noise = _flat(step.gradient(net, empty)[0].values())  # an empty Poisson batch: the noise alone
    assert noise.std().item() == pytest.approx(2.0 * 0.5 / 10.0, rel=0.1)
    again = PrivateStep(mixture, 0.1, 1.0, clip_norm=0.5, noise_multiplier=2.0, expected_batch=10.0, generator=torch.Generator().manual_seed(1))
    assert torch.equal(noise, _flat(again.gradient(net, empty)[0].values()))


def test_one_record_moves_the_statistics_by_at_most_their_sensitivity():
    net, x, _ = _net_and_mixture()
    net.eval()
    extreme = torch.full((1, 12), 1e3, dtype=torch.float64)  # a code far beyond the bound
    bound = 0.5
    with torch.no_grad():
        out, out_extreme = net(x), net(extreme)
    assert out_extreme.z.norm() > bound
    without = gmm_sufficient_stats(clip_rows(out.z, bound), out.gamma)
    with_extreme = gmm_sufficient_stats(clip_rows(torch.cat([out.z, out_extreme.z]), bound), torch.cat([out.gamma, out_extreme.gamma]))
    change = _flat([with_extreme.s0 - without.s0, with_extreme.s1 - without.s1, with_extreme.s2 - without.s2]).norm()
    assert change <= stats_sensitivity(bound) * (1 + 1e-12)
    assert stats_sensitivity(bound) == pytest.approx(math.sqrt(1 + 0.25 + 0.0625))


def test_a_clients_statistics_leave_with_its_own_gaussian_noise_of_the_stated_std():
    net, x, _ = _net_and_mixture()
    net.eval()
    privacy = _privacy(reproducible_noise=True, z_norm_bound=1.0, stats_noise_multiplier=3.0)
    sent = privacy.noised_stats(net, x, client_id=2, round_idx=4)
    with torch.no_grad():
        out = net(x)
    clean = gmm_sufficient_stats(clip_rows(out.z, 1.0), out.gamma)
    generator = torch.Generator().manual_seed(derive_seed(3, 4, 2, RECORD_STATS_NOISE_STREAM))
    std = 3.0 * stats_sensitivity(1.0)
    for got, exact in zip((sent.s0, sent.s1, sent.s2), (clean.s0, clean.s1, clean.s2)):
        expected_noise = torch.randn(exact.shape, generator=generator, dtype=torch.float64) * std
        torch.testing.assert_close(got - exact, expected_noise, rtol=1e-9, atol=1e-9)
    assert sent.n == len(x)
    # By default the noise is secret: two releases of the same statistics differ.
    secret = _privacy()
    assert not torch.equal(secret.noised_stats(net, x, 2, 4).s0, secret.noised_stats(net, x, 2, 4).s0)


def test_the_released_mixture_floors_what_the_noise_hides_and_always_factors():
    """The server's post-processing: a component whose noised weight is below the noise's std
    gets that weight; every covariance eigenvalue is at least the noise's std over the weight,
    so that a direction the noise hides is wide, not near-zero; the result factors."""
    privacy = _privacy(z_norm_bound=1.0, stats_noise_multiplier=2.0)
    noise_std = 2.0 * stats_sensitivity(1.0) * math.sqrt(2)  # two clients
    generator = torch.Generator().manual_seed(0)
    k, d = 3, 4
    z = torch.randn(500, d, generator=generator, dtype=torch.float64) * torch.tensor([1.0, 1.0, 1e-3, 1e-3], dtype=torch.float64)
    gamma = torch.softmax(torch.randn(500, k, generator=generator, dtype=torch.float64), dim=1)
    gamma[:, 2] = 1e-9  # a component with (almost) no record
    clean = gmm_sufficient_stats(z, gamma)
    noised = [GMMStats(clean.s0 * 0.5 + torch.randn(k, generator=generator, dtype=torch.float64) * noise_std / math.sqrt(2),
                       clean.s1 * 0.5 + torch.randn(k, d, generator=generator, dtype=torch.float64) * noise_std / math.sqrt(2),
                       clean.s2 * 0.5 + torch.randn(k, d, d, generator=generator, dtype=torch.float64) * noise_std / math.sqrt(2), n=250)
              for _ in range(2)]  # fmt: skip
    released = privacy.release_sum(sum(noised[1:], noised[0]), len(noised), round_idx=0)
    assert released.s0.min() >= noise_std * (1 - 1e-12) and released.n == 500
    mixture = mixture_from_stats(released)
    eigenvalues = torch.linalg.eigvalsh(mixture.sigma)
    assert (eigenvalues >= (noise_std / released.s0)[:, None] * (1 - 1e-9)).all()
    prepare_mixture(mixture, 1e-6)  # factors without raising


def test_dp_sgd_noise_is_secret_by_default_and_from_the_seed_only_when_named_insecure():
    insecure = _privacy(reproducible_noise=True)
    a, b = (insecure.generator(5, 1, GRADIENT_NOISE_STREAM) for _ in range(2))
    assert torch.equal(torch.randn(8, generator=a), torch.randn(8, generator=b))
    assert torch.equal(torch.randn(8, generator=insecure.generator(5, 1, GRADIENT_NOISE_STREAM)),
                       torch.randn(8, generator=torch.Generator().manual_seed(derive_seed(3, 5, 1, GRADIENT_NOISE_STREAM))))  # fmt: skip
    secret = _privacy()
    a, b = (secret.generator(5, 1, GRADIENT_NOISE_STREAM) for _ in range(2))
    assert not torch.equal(torch.randn(8, generator=a), torch.randn(8, generator=b))


def test_poisson_batches_take_each_record_independently_with_the_sampling_rate():
    batches = list(PoissonBatches(2000, 0.05, 400, torch.Generator().manual_seed(0)))
    sizes = torch.tensor([len(b) for b in batches], dtype=torch.float64)
    assert len(batches) == 400
    assert sizes.mean().item() == pytest.approx(100, abs=3 * math.sqrt(100 * 0.95 / 400))  # 3 standard errors
    assert sizes.std().item() == pytest.approx(math.sqrt(2000 * 0.05 * 0.95), rel=0.15)  # binomial spread: sizes vary
    assert all(len(b.unique()) == len(b) for b in batches)


def test_the_accountant_composes_each_clients_steps_and_releases():
    privacy = _privacy(batch_size=100, local_epochs=2, rounds=10).with_sizes({0: 1000, 1: 250})
    # Client 0: q = 0.1, 2 x 10 steps a round; client 1: q = 0.4, 2 x 3 steps a round.
    assert privacy.epsilon_after(3, 1000) == epsilon(1.0, 0.1, 60, 4, 1e-6, 50.0)
    assert privacy.epsilon_after(3, 250) == epsilon(1.0, 0.4, 18, 4, 1e-6, 50.0)
    assert privacy.round_metrics(3) == {
        "privacy/epsilon": max(privacy.epsilon_after(3, n) for n in (1000, 250)),
        "privacy/epsilon/client0": privacy.epsilon_after(3, 1000),
        "privacy/epsilon/client1": privacy.epsilon_after(3, 250),
    }  # fmt: skip
    assert privacy.epsilons(1)["client0"] < privacy.epsilons(2)["client0"]


def test_a_target_epsilon_gives_each_client_the_noise_that_meets_it():
    privacy = _privacy(given_noise_multiplier=None, target_epsilon=3.0, rounds=5)
    for n in (500, 5000):
        z = privacy.noise_multiplier(n)
        assert privacy.epsilon_after(5, n) <= 3.0
        assert epsilon(z - 2e-3, privacy.sample_rate(n), 5 * privacy.steps_per_round(n), 6, 1e-6, 50.0) > 3.0
    assert privacy.noise_multiplier(500) != privacy.noise_multiplier(5000)
    with pytest.raises(ConfigError, match=re.escape("the mixture statistics alone spend")):
        _privacy(given_noise_multiplier=None, target_epsilon=0.5, stats_noise_multiplier=5.0).noise_multiplier(500)


def test_delta_must_be_below_one_over_each_clients_records():
    with pytest.raises(ConfigError, match=re.escape("privacy.delta=0.001 allows one of client 1's 2000 records")):
        _privacy(delta=1e-3).with_sizes({0: 500, 1: 2000})


def _cfg(*overrides):
    with initialize(version_base="1.3", config_path="../../../conf"):
        return compose(config_name="config", overrides=["privacy=record_dp", *overrides])


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["method=local"], "privacy=record_dp protects the clients of a federation"),
        (["privacy.target_epsilon=3"], "privacy=record_dp needs exactly one of privacy.noise_multiplier and privacy.target_epsilon"),
        (["fed.gmm_stats=local"], "privacy=record_dp trains every client under the federation's released mixture"),
        (["privacy.adaptive_clipping=true"], "with privacy=record_dp set it to false"),
        (["fed.resume=/tmp/somewhere"], "privacy=record_dp does not resume"),
        (["eval.threshold_ref=pooled"], "with privacy=record_dp use eval.threshold_ref=own"),
        (["privacy.z_norm_bound=0"], "privacy.z_norm_bound must be > 0"),
        (["privacy.stats_noise_multiplier=-1"], "privacy.stats_noise_multiplier must be > 0"),
    ],
)
def test_impossible_record_dp_settings_are_one_line_errors(tmp_path, overrides, expected):
    cfg = _cfg(f"paths.output_dir={tmp_path}", *overrides)
    with pytest.raises(ConfigError, match=re.escape(expected)):
        validate_config(cfg, build(cfg.partition))
