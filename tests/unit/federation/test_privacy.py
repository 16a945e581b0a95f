"""Client-level DP: what leaves a client is clipped, the server's aggregate is noised with
the right standard deviation, epsilon is Opacus's, and impossible settings are refused."""

import math
import re

import pytest
import torch
from hydra import compose, initialize
from opacus.accountants.analysis.rdp import compute_rdp, get_privacy_spent
from opacus.accountants.utils import get_noise_multiplier

from fdagmm.config import build, validate_config
from fdagmm.errors import ConfigError
from fdagmm.federation.privacy import (
    ADAPTIVE_STATE,
    AdaptiveClipping,
    NOISE_TOLERANCE,
    RDP_ORDERS,
    ClientLevelDP,
    DPFedAvg,
    clip_stats,
    clip_update,
    epsilon,
    solve_noise_multiplier,
    valid_stats,
)
from fdagmm.federation.strategies import ClientUpdate, FedAdam, FedAvg
from fdagmm.models.dagmm import gmm_sufficient_stats, mixture_from_stats
from fdagmm.seeding import UPDATE_NOISE_STREAM, derive_seed


def _privacy(**kwargs) -> ClientLevelDP:
    settings = dict(clip_norm=1.0, stats_clip_norm=1.0, delta=1e-3, sample_rate=0.1, expected_clients=4,
                    rounds=10, stats_rounds=(10,), seed=7, given_noise_multiplier=0.5) | kwargs  # fmt: skip
    return ClientLevelDP(**settings)


def _norm(tensors) -> float:
    return math.sqrt(sum(float(t.double().square().sum()) for t in tensors))


def _state(*shape_scale, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"a.weight": torch.randn(5, 3, generator=g) * shape_scale[0], "a.bias": torch.randn(3, generator=g) * shape_scale[0]}


@pytest.mark.parametrize("scale", [0.01, 1.0, 100.0])
def test_a_clients_update_leaves_clipped_to_the_norm(scale):
    global_state, trained = _state(1.0, seed=0), _state(1.0, seed=1)
    trained = {k: global_state[k] + scale * (v - global_state[k]) for k, v in trained.items()}
    sent = clip_update(global_state, trained, clip_norm=0.5)
    delta = {k: sent[k].double() - global_state[k].double() for k in sent}
    original = {k: trained[k].double() - global_state[k].double() for k in trained}
    assert _norm(delta.values()) <= 0.5 * (1 + 1e-6)
    if _norm(original.values()) <= 0.5:  # within the bound: sent as trained
        assert all(torch.equal(sent[k], trained[k]) for k in trained)
    else:  # scaled, not bent: the direction is kept
        cosine = sum(float((delta[k] * original[k]).sum()) for k in delta) / (_norm(delta.values()) * _norm(original.values()))
        assert cosine == pytest.approx(1.0, abs=1e-6)
        assert _norm(delta.values()) == pytest.approx(0.5, rel=1e-5)


def test_a_clients_statistics_leave_normalised_and_clipped():
    g = torch.Generator().manual_seed(0)
    z, gamma = torch.randn(400, 3, generator=g) * 5, torch.softmax(torch.randn(400, 4, generator=g), dim=1)
    stats = gmm_sufficient_stats(z, gamma)
    per_record = [stats.s0 / stats.n, stats.s1 / stats.n, stats.s2 / stats.n]
    loose = clip_stats(stats, clip_norm=1e6)
    assert loose.n == 1 and all(torch.equal(a, b) for a, b in zip((loose.s0, loose.s1, loose.s2), per_record))
    # Normalised statistics give the client's own mixture: only the count is gone.
    torch.testing.assert_close(mixture_from_stats(loose).sigma, mixture_from_stats(stats).sigma)
    tight = clip_stats(stats, clip_norm=0.25)
    assert _norm((tight.s0, tight.s1, tight.s2)) == pytest.approx(0.25, rel=1e-9)
    # 400 records more of the same: the same contribution, so one client's size does not weigh.
    doubled = clip_stats(stats + stats, clip_norm=0.25)
    torch.testing.assert_close(doubled.s2, tight.s2)


def _updates(global_state, n, scale=10.0):
    return [
        ClientUpdate(client_id=k, state={key: v + scale * torch.randn(v.shape, generator=torch.Generator().manual_seed(k)) for key, v in global_state.items()},
                     n_samples=100 * (k + 1), train_loss=0.0)
        for k in range(n)
    ]  # fmt: skip


def test_the_aggregate_is_the_clipped_mean_plus_the_seeded_gaussian():
    """Exact: theta + (sum of clipped deltas + z C N(0, I)) / expected clients, with the
    generator seeded by (seed, round) (reproducible noise, to know it); record counts do not weigh."""
    privacy = _privacy(clip_norm=0.5, expected_clients=4, given_noise_multiplier=0.8, reproducible_noise=True)
    global_state = {k: v.double() for k, v in _state(1.0).items()}
    updates = _updates(global_state, 3)
    got = DPFedAvg(FedAvg(), privacy).aggregate(global_state, updates, round_idx=6)
    clipped = [clip_update(global_state, u.state, 0.5) for u in updates]
    generator = torch.Generator().manual_seed(derive_seed(7, 6, 0, UPDATE_NOISE_STREAM))
    for key in global_state:  # the noise is drawn key by key, in the state's order
        noise = torch.randn(global_state[key].shape, generator=generator, dtype=torch.float64) * 0.8 * 0.5
        expected = global_state[key] + (sum(c[key] - global_state[key] for c in clipped) + noise) / 4
        torch.testing.assert_close(got[key], expected)


def test_the_aggregate_noise_has_std_z_c_over_the_expected_clients():
    privacy = _privacy(clip_norm=2.0, expected_clients=5, given_noise_multiplier=1.5, reproducible_noise=True)
    global_state = {"w": torch.zeros(200_000, dtype=torch.float64)}
    identical = [ClientUpdate(k, {"w": torch.zeros(200_000, dtype=torch.float64)}, 10, 0.0) for k in range(5)]
    noise = DPFedAvg(FedAvg(), privacy).aggregate(global_state, identical, round_idx=1)["w"]
    assert float(noise.mean()) == pytest.approx(0.0, abs=4 * 0.6 / math.sqrt(200_000))
    assert float(noise.std()) == pytest.approx(1.5 * 2.0 / 5, rel=0.01)
    again = DPFedAvg(FedAvg(), privacy).aggregate(global_state, identical, round_idx=1)["w"]
    other_round = DPFedAvg(FedAvg(), privacy).aggregate(global_state, identical, round_idx=2)["w"]
    assert torch.equal(noise, again) and not torch.equal(noise, other_round)
    # Secret (the default): the same round's release draws other noise every time, of the same std.
    secret = _privacy(clip_norm=2.0, expected_clients=5, given_noise_multiplier=1.5)
    first, second = (DPFedAvg(FedAvg(), secret).aggregate(global_state, identical, round_idx=1)["w"] for _ in range(2))
    assert not torch.equal(first, second) and not torch.equal(first, noise)
    assert float(first.std()) == pytest.approx(1.5 * 2.0 / 5, rel=0.01)


def test_the_server_clips_what_it_sums_even_from_an_unclipped_client():
    privacy = _privacy(clip_norm=0.5, expected_clients=1, given_noise_multiplier=1e-12)
    global_state = {"w": torch.zeros(10, dtype=torch.float64)}
    rogue = ClientUpdate(0, {"w": torch.full((10,), 100.0, dtype=torch.float64)}, 1, 0.0)
    got = DPFedAvg(FedAvg(), privacy).aggregate(global_state, [rogue], round_idx=1)["w"]
    assert float(got.norm()) == pytest.approx(0.5, rel=1e-9)


def test_dp_fedavg_keeps_the_wrapped_strategys_server_update_and_state():
    privacy = _privacy(given_noise_multiplier=1e-12, clip_norm=10.0, expected_clients=1)
    global_state = {"w": torch.tensor([1.0, 2.0], dtype=torch.float64)}
    update = [ClientUpdate(0, {"w": torch.tensor([3.0, 0.0], dtype=torch.float64)}, 1, 0.0)]
    plain, wrapped = FedAdam(eta=0.1), DPFedAvg(FedAdam(eta=0.1), privacy)
    torch.testing.assert_close(wrapped.aggregate(global_state, update, 1), plain.aggregate(global_state, update, 1))
    assert wrapped.state_dict().keys() == {"m", "v"} and wrapped.name == "fedadam"
    torch.testing.assert_close(wrapped.state_dict()["m"]["w"], plain.state_dict()["m"]["w"])


def test_released_statistics_are_noised_sums_made_valid():
    g = torch.Generator().manual_seed(1)
    clients = [clip_stats(gmm_sufficient_stats(torch.randn(300, 3, generator=g), torch.softmax(torch.randn(300, 4, generator=g), 1)), 1.0)
               for _ in range(50)]  # fmt: skip
    summed = sum(clients[1:], clients[0])
    z = 0.05
    released = _privacy(stats_clip_norm=1.0, given_noise_multiplier=z).release_sum(summed, len(clients), round_idx=3)
    assert released.n == 50
    # s0 and s1 carry the noise as drawn (the weights are far above the floor); 16 + 48 draws.
    residual = torch.cat([(released.s0 - summed.s0), (released.s1 - summed.s1).flatten()])
    assert 0.5 * z < float(residual.std()) < 1.5 * z and not torch.equal(released.s0, summed.s0)
    eigenvalues = torch.linalg.eigvalsh(mixture_from_stats(released).sigma)
    assert (eigenvalues >= -1e-12).all()


def test_valid_stats_floors_weights_and_projects_covariances_to_psd():
    s0 = torch.tensor([5.0, -1.0], dtype=torch.float64)
    s1 = torch.ones(2, 2, dtype=torch.float64)
    s2 = torch.tensor([[[1.0, 3.0], [3.0, 1.0]]] * 2, dtype=torch.float64)  # indefinite
    stats = valid_stats(s0, s1, s2, 2)
    assert float(stats.s0.min()) > 0
    assert (torch.linalg.eigvalsh(mixture_from_stats(stats).sigma) >= -1e-9).all()


@pytest.mark.parametrize("z, q, rounds, releases, delta", [(1.1, 0.1, 50, 0, 1e-5), (0.8, 0.2, 20, 2, 1e-3), (3.0, 1.0, 5, 5, 1e-4)])
def test_epsilon_is_opacus_rdp_accounting_of_the_composition(z, q, rounds, releases, delta):
    rdp = compute_rdp(q=q, noise_multiplier=z, steps=rounds, orders=RDP_ORDERS)
    rdp = rdp + compute_rdp(q=1.0, noise_multiplier=z, steps=releases, orders=RDP_ORDERS)
    expected, _ = get_privacy_spent(orders=RDP_ORDERS, rdp=rdp, delta=delta)
    assert epsilon(z, q, rounds, releases, delta) == pytest.approx(expected, rel=1e-9)
    privacy = _privacy(given_noise_multiplier=z, sample_rate=q, rounds=rounds, stats_rounds=tuple(range(1, releases + 1)), delta=delta)
    assert privacy.epsilon_after(rounds) == pytest.approx(expected, rel=1e-9)
    assert privacy.epsilon_after(1) < privacy.epsilon_after(rounds)


def test_the_solved_noise_multiplier_meets_the_target_as_opacus_solves_it():
    z = solve_noise_multiplier(3.0, 0.1, 100, 0, 1e-3)
    assert epsilon(z, 0.1, 100, 0, 1e-3) <= 3.0 < epsilon(z - 2 * NOISE_TOLERANCE, 0.1, 100, 0, 1e-3)
    assert z == pytest.approx(get_noise_multiplier(target_epsilon=3.0, target_delta=1e-3, sample_rate=0.1, steps=100, accountant="rdp"), abs=0.02)
    with_stats = _privacy(given_noise_multiplier=None, target_epsilon=3.0, sample_rate=0.1, rounds=100, stats_rounds=(100,))
    assert with_stats.noise_multiplier > z and with_stats.epsilon_after(100) <= 3.0


def _dp_cfg(*overrides):
    with initialize(version_base="1.3", config_path="../../../conf"):
        return compose(config_name="config", overrides=["privacy=dp", "partition=iid", "partition.num_clients=20", *overrides])


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["method=pooled"], "privacy=dp protects the clients of a federation"),
        (["privacy.target_epsilon=3"], "exactly one of privacy.noise_multiplier and privacy.target_epsilon"),
        (["privacy.noise_multiplier=null"], "exactly one of privacy.noise_multiplier and privacy.target_epsilon"),
        (["privacy.delta=0.05"], "use a delta below 1/20"),
        (["eval.compare_threshold_refs=true"], "with privacy=dp use eval.threshold_ref=own"),
        (["privacy.name=laplace"], "privacy must be one of none, dp, record_dp"),
        (["privacy.clip_norm=0"], "privacy.clip_norm must be > 0"),
        (["privacy.adaptive_clipping=true", "privacy.noise_multiplier=2"], "needs privacy.clipped_count_stddev above 2.0/2 (it is 1)"),
        (["privacy.adaptive_clipping=true", "fed.clients_per_round=5"], "(it is 0.25): raise it, or fed.clients_per_round"),
        (["privacy.target_unclipped_quantile=1"], "privacy.target_unclipped_quantile must be"),
        (["privacy.noise_at=clients"], "privacy.noise_at=clients needs privacy.secure_aggregation=true"),
        (["privacy.noise_at=everywhere"], "privacy.noise_at must be server or clients"),
        (["privacy=none", "privacy.noise_at=clients", "privacy.secure_aggregation=true"], "privacy=none has none to move"),
        (["privacy.secure_aggregation=true", "privacy.adaptive_clipping=true"], "which secure aggregation hides"),
        (["privacy.secure_aggregation=true", "fed.gmm_stats=local"], "use fed.gmm_stats=global"),
        (["privacy.secure_aggregation=true", "fed.clients_per_round=1"], "a sum of one update reveals it"),
        (["privacy=none", "privacy.secure_aggregation=true", "eval.threshold_ref=pooled"], "with privacy.secure_aggregation=true use eval.threshold_ref=own"),
        (["privacy=none", "privacy.secure_aggregation=true", "method=pooled"], "method=pooled is centralised"),
    ],
)
def test_impossible_privacy_settings_are_one_line_errors(tmp_path, overrides, expected):
    cfg = _dp_cfg(f"paths.output_dir={tmp_path}", *overrides)
    with pytest.raises(ConfigError, match=re.escape(expected)):
        validate_config(cfg, build(cfg.partition))


def _adaptive(**kwargs) -> ClientLevelDP:
    adaptive = AdaptiveClipping(target_unclipped_quantile=0.5, lr=0.2, count_std=kwargs.pop("count_std", 1e-9))
    return _privacy(adaptive=adaptive, **kwargs)


def _updates_of_norms(norms):
    return [ClientUpdate(k, {"w": torch.tensor([n, 0.0], dtype=torch.float64)}, 1, 0.0) for k, n in enumerate(norms)]


def test_adaptive_clipping_moves_the_clip_norm_geometrically_by_the_unclipped_share():
    """C_{t+1} = C_t exp(-lr (b - gamma)), b the share of the round's updates with norm <= C_t
    (noise negligible here); the server clips with C_t, the clients do not clip."""
    privacy = _adaptive(clip_norm=1.0, expected_clients=4, given_noise_multiplier=1e-9)
    assert not privacy.clients_clip
    strategy = DPFedAvg(FedAvg(), privacy)
    global_state = {"w": torch.zeros(2, dtype=torch.float64)}
    got = strategy.aggregate(global_state, _updates_of_norms([0.5, 0.9, 3.0, 5.0]), round_idx=1)
    # Two of four unclipped: b = 0.5 = gamma, C stays; the sum is 0.5 + 0.9 + 1 + 1 over 4.
    assert privacy.clip_norm == pytest.approx(1.0, abs=1e-6)
    assert float(got["w"][0]) == pytest.approx(3.4 / 4, abs=1e-6)
    strategy.aggregate(global_state, _updates_of_norms([0.1, 0.2, 0.3, 5.0]), round_idx=2)  # b = 0.75: C shrinks
    assert privacy.clip_norm == pytest.approx(math.exp(-0.2 * 0.25), abs=1e-6)
    strategy.aggregate(global_state, _updates_of_norms([2.0, 2.0, 2.0, 2.0]), round_idx=3)  # b = 0: C grows
    assert privacy.clip_norm == pytest.approx(math.exp(-0.2 * 0.25) * math.exp(0.2 * 0.5), abs=1e-6)
    metrics = privacy.round_metrics(2)
    assert metrics["privacy/clip_norm"] == pytest.approx(1.0, abs=1e-6) and metrics["privacy/unclipped_share"] == pytest.approx(0.75, abs=1e-6)


def test_adaptive_clipping_settles_at_the_target_quantile_of_the_update_norms():
    """Updates with norms spread over [0, 2]: C heads for their median (1), from above and below."""
    norms = torch.linspace(0.02, 2.0, 100).tolist()
    for start in (0.05, 20.0):
        privacy = _adaptive(clip_norm=start, expected_clients=100, given_noise_multiplier=1e-9)
        strategy = DPFedAvg(FedAvg(), privacy)
        for t in range(1, 200):
            strategy.aggregate({"w": torch.zeros(2, dtype=torch.float64)}, _updates_of_norms(norms), round_idx=t)
        assert privacy.clip_norm == pytest.approx(1.0, abs=0.05)


def test_adaptive_clipping_splits_the_noise_between_update_and_count():
    """z_Delta = (z^-2 - (2 sigma_b)^-2)^(-1/2), so that the two mechanisms compose to one of
    multiplier z (Andrew et al., 2021, Theorem 1); the update noise has std z_Delta C / m."""
    privacy = _adaptive(clip_norm=2.0, expected_clients=5, given_noise_multiplier=1.5, count_std=1.0, reproducible_noise=True)
    z_delta = (1.5**-2 - 2.0**-2) ** -0.5
    assert privacy.update_noise_multiplier == pytest.approx(z_delta)
    assert (privacy.update_noise_multiplier**-2 + (2 * 1.0) ** -2) ** -0.5 == pytest.approx(1.5)
    global_state = {"w": torch.zeros(200_000, dtype=torch.float64)}
    identical = [ClientUpdate(k, {"w": torch.zeros(200_000, dtype=torch.float64)}, 10, 0.0) for k in range(5)]
    noise = DPFedAvg(FedAvg(), privacy).aggregate(global_state, identical, round_idx=1)["w"]
    assert float(noise.std()) == pytest.approx(z_delta * 2.0 / 5, rel=0.01)
    with pytest.raises(ConfigError, match="needs privacy.clipped_count_stddev above 0.75"):
        _ = _adaptive(given_noise_multiplier=1.5, count_std=0.7).update_noise_multiplier


def test_the_adaptive_clip_norm_is_kept_in_the_strategy_state_for_resume():
    privacy = _adaptive(clip_norm=1.0, expected_clients=4, given_noise_multiplier=1e-9)
    strategy = DPFedAvg(FedAdam(eta=0.1), privacy)
    strategy.aggregate({"w": torch.zeros(2, dtype=torch.float64)}, _updates_of_norms([0.1, 0.1, 0.1, 0.1]), round_idx=1)
    state = strategy.state_dict()
    assert state.keys() == {"m", "v", ADAPTIVE_STATE}
    resumed = DPFedAvg(FedAdam(eta=0.1), _adaptive(clip_norm=1.0, expected_clients=4, given_noise_multiplier=1e-9))
    resumed.load_state_dict(state)
    assert resumed.privacy.clip_norm == pytest.approx(privacy.clip_norm) and resumed.privacy.clip_norm < 1.0
    torch.testing.assert_close(resumed.inner.state_dict()["m"]["w"], strategy.inner.state_dict()["m"]["w"])
