"""Secure aggregation's protocol, as the server sees it: masked vectors that look random, a sum
equal to the plain one within the fixed point's rounding, dropouts before and after masking,
and the requests a participant refuses. Then what a strategy sends and makes of the sum.

Skipped when Flower (whose cryptography it runs on) is not installed, unless FDAGMM_REQUIRE_FLOWER=1.
"""

import importlib.util
import os

import numpy as np
import pytest
import torch

if importlib.util.find_spec("flwr") is None and os.environ.get("FDAGMM_REQUIRE_FLOWER") != "1":
    pytest.skip('Flower is not installed: pip install -e ".[flower]"', allow_module_level=True)

from fdagmm.federation.privacy import ClientLevelDP, DPFedAvg, epsilon_of  # noqa: E402
from fdagmm.federation.rounds import aggregate_secure_sum  # noqa: E402
from fdagmm.federation.secure_aggregation import (  # noqa: E402
    FRACTION_BITS,
    Participant,
    SecureAggregationError,
    SumServer,
    secure_sum,
    secure_tensor_sum,
)
from fdagmm.federation.strategies import ClientUpdate, FedAvg  # noqa: E402
from fdagmm.federation.strategies.fedopt import FedAdam  # noqa: E402

pytestmark = pytest.mark.flower
ROUNDING = 2.0 ** -(FRACTION_BITS + 1)  # one participant's rounding, at most


def _vectors(n_clients: int, d: int = 5000, seed: int = 0) -> dict[int, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: rng.normal(scale=10.0, size=d) for k in range(n_clients)}


def _until_masked(vectors):
    """Steps 1 to 3 of a sum: its participants, its server and the routed shares."""
    participants = {k: Participant.new(k, v) for k, v in vectors.items()}
    server = SumServer({k: p.public_keys for k, p in participants.items()})
    routed = server.route({k: p.share(server.peers, server.threshold) for k, p in participants.items()})
    return participants, server, routed


def test_the_sum_is_the_plain_sum_within_rounding():
    vectors = _vectors(5)
    total = secure_sum(vectors)
    plain = sum(vectors.values())
    assert np.abs(total - plain).max() <= 5 * ROUNDING
    assert np.abs(total - plain).max() > 0  # fixed point: not the float sum bit for bit


def test_masked_inputs_look_random_to_the_server():
    """Each 64-bit word the server receives is uniform whatever the input: half its bits set,
    no correlation with the input, and an all-zero input masked like any other."""
    vectors = _vectors(4)
    vectors[3] = np.zeros_like(vectors[0])
    participants, server, routed = _until_masked(vectors)
    masked = {k: participants[k].masked_input(routed[k]) for k in routed}
    for k, y in masked.items():
        bits = np.unpackbits(y.view(np.uint8))
        assert abs(bits.mean() - 0.5) < 5 * 0.5 / np.sqrt(bits.size), k
        as_fraction = y.astype(np.float64) / 2.0**64
        assert abs(as_fraction.mean() - 0.5) < 5 * np.sqrt(1 / 12 / y.size)
        if k != 3:
            assert abs(np.corrcoef(as_fraction, vectors[k])[0, 1]) < 5 / np.sqrt(y.size)
    # The two masks of one input in two sums share nothing: fresh keys every sum.
    again, _, routed_again = _until_masked(vectors)
    assert not np.array_equal(again[0].masked_input(routed_again[0]), masked[0])


def test_a_participant_that_drops_after_masking_still_counts():
    vectors = _vectors(5)
    participants, server, routed = _until_masked(vectors)
    survivors, dropped = server.request_unmask({k: participants[k].masked_input(routed[k]) for k in routed})
    assert (survivors, dropped) == ([0, 1, 2, 3, 4], [])
    replies = {k: participants[k].unmask(survivors, dropped) for k in survivors if k != 2}  # 2 never answers
    assert np.abs(server.total(replies) - sum(vectors.values())).max() <= 5 * ROUNDING


def test_a_participant_that_drops_before_masking_is_left_out_exactly():
    """Its pairwise masks, in every survivor's input, are rebuilt from its shared mask key."""
    vectors = _vectors(5)
    participants, server, routed = _until_masked(vectors)
    survivors, dropped = server.request_unmask({k: participants[k].masked_input(routed[k]) for k in routed if k != 1})
    assert (survivors, dropped) == ([0, 2, 3, 4], [1])
    total = server.total({k: participants[k].unmask(survivors, dropped) for k in survivors})
    assert np.abs(total - sum(vectors[k] for k in survivors)).max() <= 4 * ROUNDING


def test_a_sum_fails_when_fewer_than_the_threshold_remain():
    vectors = _vectors(3)  # threshold 2
    participants, server, routed = _until_masked(vectors)
    with pytest.raises(SecureAggregationError, match="only 1 of 3 participants sent a masked input"):
        server.request_unmask({0: participants[0].masked_input(routed[0])})
    with pytest.raises(SecureAggregationError, match="needs two participants"):
        SumServer({0: participants[0].public_keys})


def test_a_participant_refuses_what_would_reveal_one_input():
    vectors = _vectors(4)
    participants, server, routed = _until_masked(vectors)
    for k in routed:
        participants[k].masked_input(routed[k])
    with pytest.raises(SecureAggregationError, match="both secrets of \\[2\\]"):
        participants[0].unmask([0, 1, 2], [2])  # 2's self-mask and its mask key: its input in the clear
    with pytest.raises(SecureAggregationError, match="do not fit the sum"):
        participants[0].unmask([0], [1, 2, 3])  # fewer survivors than the threshold (3 of 4)
    lone = Participant.new(9, np.zeros(3))
    with pytest.raises(SecureAggregationError, match="a threshold of 2 among 5"):  # a majority of 5 is 3
        lone.share({9: lone.public_keys} | {k: p.public_keys for k, p in participants.items()}, 2)
    with pytest.raises(SecureAggregationError, match="a threshold of 1"):
        lone.share({9: lone.public_keys, 0: participants[0].public_keys}, 1)


def test_an_entry_beyond_the_fixed_point_range_is_refused():
    participants, _, routed = _until_masked({0: np.array([1e12]), 1: np.array([0.0]), 2: np.array([0.0])})
    with pytest.raises(SecureAggregationError, match="does not fit a secure sum of 3"):
        participants[0].masked_input(routed[0])


def test_a_participant_kept_between_messages_is_the_same():
    participants, _, routed = _until_masked(_vectors(3, d=10))
    kept = Participant.from_record(participants[1].to_record())
    assert np.array_equal(kept.masked_input(routed[1]), participants[1].masked_input(routed[1]))


def _state(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"w": torch.randn(4, 3, generator=g), "b": torch.randn(3, generator=g)}


@pytest.mark.parametrize("strategy", [FedAvg(), FedAdam(eta=0.1)], ids=["fedavg", "fedadam"])
def test_a_strategy_aggregates_the_secure_sum_as_it_aggregates_the_updates(strategy):
    theta = _state(0)
    updates = [ClientUpdate(k, {n: v + 0.1 * _state(k + 1)[n] for n, v in theta.items()}, n, 0.0) for k, n in enumerate((50, 700, 3))]
    plain = strategy.aggregate(theta, updates, round_idx=1)
    if isinstance(strategy, FedAdam):
        strategy.load_state_dict({})  # the same server state for both
    total = secure_tensor_sum({u.client_id: strategy.contribution(theta, u, 1) for u in updates})
    secure = aggregate_secure_sum(strategy, theta, total, [u.n_samples for u in updates], 1)
    for name in theta:
        torch.testing.assert_close(secure[name], plain[name], rtol=0, atol=1e-6)


def _dp(**kwargs) -> ClientLevelDP:
    defaults = dict(clip_norm=0.5, stats_clip_norm=1.0, delta=1e-5, sample_rate=1.0, expected_clients=20, rounds=3, stats_rounds=(), seed=0,
                    given_noise_multiplier=2.0, noise_at="clients", stats_clients=20)  # fmt: skip
    return ClientLevelDP(**(defaults | kwargs))


def test_under_noise_at_clients_the_shares_sum_to_the_configured_noise():
    """Twenty clients with no update (theta_k = theta) each add a share: the sum the server
    opens has std z C, and the round's step adds none of the server's own."""
    privacy = _dp()
    strategy = DPFedAvg(FedAvg(), privacy)
    theta = {"w": torch.zeros(20_000)}
    updates = [ClientUpdate(k, {"w": torch.zeros(20_000)}, 10, 0.0) for k in range(20)]
    shares = {u.client_id: strategy.contribution(theta, u, 1) for u in updates}
    assert float(shares[0]["w"].std()) == pytest.approx(2.0 * 0.5 / np.sqrt(20), rel=0.03)
    total = secure_tensor_sum(shares)
    assert float(total["w"].std()) == pytest.approx(2.0 * 0.5, rel=0.03)
    step = aggregate_secure_sum(strategy, theta, total, [u.n_samples for u in updates], 1)
    torch.testing.assert_close(step["w"], (total["w"] / 20).float())


def test_under_noise_at_clients_epsilon_is_against_the_server_and_counts_missing_shares(tmp_path):
    """No amplification by sampling; a release that carried fewer shares (a dropout) costs more."""
    full = _dp(releases_path=tmp_path / "full.jsonl", sample_rate=0.1)
    short = _dp(releases_path=tmp_path / "short.jsonl", sample_rate=0.1)
    theta = {"w": torch.zeros(3)}
    for r in (1, 2):
        full.mean_of_sum(theta, {"w": torch.zeros(3, dtype=torch.float64)}, 20, r)
        short.mean_of_sum(theta, {"w": torch.zeros(3, dtype=torch.float64)}, 20 if r == 1 else 15, r)
    assert full.epsilon_after(2) == pytest.approx(epsilon_of([((1.0, 2.0), 2)], 1e-5))
    assert short.epsilon_after(2) == pytest.approx(epsilon_of([((1.0, 2.0), 1), ((1.0, 2.0 * np.sqrt(15 / 20)), 1)], 1e-5))
    assert short.epsilon_after(2) > full.epsilon_after(2) > _dp(noise_at="server", sample_rate=0.1).epsilon_after(2)
