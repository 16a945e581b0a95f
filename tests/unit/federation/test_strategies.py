"""Each strategy's arithmetic on small hand-computed cases, and FedAvg on DAGMM's state dict."""

import pytest
import torch

from fdagmm.errors import ConfigError
from fdagmm.federation.strategies import ClientUpdate, FedAdam, FedAvg, FedAvgM, FedPer, FedProx, fedavg
from fdagmm.models.dagmm import DAGMM


def _state(seed):
    torch.manual_seed(seed)
    return DAGMM(input_dim=122).state_dict()


def _update(k, n, **state):
    return ClientUpdate(client_id=k, state={key: torch.tensor(v) for key, v in state.items()}, n_samples=n, train_loss=0.0)


def test_averaging_identical_models_returns_them():
    state = _state(0)
    averaged = fedavg([state, state, state], [10, 3, 500])
    for key, value in state.items():
        torch.testing.assert_close(averaged[key], value, rtol=1e-6, atol=1e-7)


def test_two_models_give_the_sample_weighted_mean_key_by_key():
    a, b = _state(0), _state(1)
    averaged = fedavg([a, b], [6316, 192055])
    w = 6316 / (6316 + 192055)
    for key in a:
        expected = (w * a[key].double() + (1 - w) * b[key].double()).float()
        torch.testing.assert_close(averaged[key], expected, rtol=0, atol=0)
        assert averaged[key].dtype == a[key].dtype


def test_states_of_different_models_are_refused():
    a = _state(0)
    b = {**a, "extra.weight": torch.zeros(1)}
    with pytest.raises(ValueError, match="different keys"):
        fedavg([a, b], [1, 1])


def test_fedavg_strategy_adopts_the_weighted_average():
    current = {"w": torch.tensor([0.0, 0.0])}
    updates = [_update(0, 1, w=[1.0, 2.0]), _update(1, 3, w=[5.0, 6.0])]
    new = FedAvg().aggregate(current, updates, 1)
    torch.testing.assert_close(new["w"], torch.tensor([4.0, 5.0]))  # (1*[1,2] + 3*[5,6]) / 4


def test_fedadam_steps_by_hand():
    """Two rounds of Reddi et al.'s Algorithm 2 with eta=0.1, beta_1=0.9, beta_2=0.99, tau=0.01."""
    strategy = FedAdam(eta=0.1, beta_1=0.9, beta_2=0.99, tau=0.01)
    current = {"w": torch.tensor([1.0, -2.0], dtype=torch.float64)}
    # Round 1: the average is [1.5, -2.0]: delta = [0.5, 0]; m = [0.05, 0]; v = [0.0025, 0];
    # w = [1 + 0.1 * 0.05 / (0.05 + 0.01), -2 + 0] = [1.083333..., -2].
    new = strategy.aggregate(current, [_update(0, 1, w=[2.0, -2.0]), _update(1, 1, w=[1.0, -2.0])], 1)
    torch.testing.assert_close(new["w"], torch.tensor([1.0 + 0.1 * 0.05 / 0.06, -2.0], dtype=torch.float64))
    # Round 2 from there, average = w + [0, 1]: delta = [0, 1]; m = [0.045, 0.1];
    # v = [0.002475, 0.01]; step = 0.1 * m / (sqrt(v) + 0.01).
    w1 = new["w"].clone()
    new = strategy.aggregate(new, [_update(0, 4, w=(w1 + torch.tensor([0.0, 1.0])).tolist())], 2)
    m = torch.tensor([0.045, 0.1], dtype=torch.float64)
    v = torch.tensor([0.002475, 0.01], dtype=torch.float64)
    torch.testing.assert_close(new["w"], w1 + 0.1 * m / (v.sqrt() + 0.01))


def test_fedavgm_momentum_by_hand():
    strategy = FedAvgM(server_learning_rate=0.5, server_momentum=0.9)
    current = {"w": torch.tensor([1.0])}
    # Round 1: pseudo-gradient = current - average = 1 - 3 = -2 = v; w = 1 - 0.5 * -2 = 2.
    new = strategy.aggregate(current, [_update(0, 1, w=[3.0])], 1)
    torch.testing.assert_close(new["w"], torch.tensor([2.0]))
    # Round 2: gradient = 2 - 2 = 0; v = 0.9 * -2 + 0 = -1.8; w = 2 + 0.9 = 2.9.
    new = strategy.aggregate(new, [_update(0, 1, w=[2.0])], 2)
    torch.testing.assert_close(new["w"], torch.tensor([2.9]))


def test_fedavgm_without_momentum_at_rate_one_is_fedavg():
    a, b = _state(0), _state(1)
    updates = [ClientUpdate(0, a, 10, 0.0), ClientUpdate(1, b, 30, 0.0)]
    current = _state(2)
    expected = FedAvg().aggregate(current, updates, 1)
    got = FedAvgM(server_learning_rate=1.0, server_momentum=0.0).aggregate(current, updates, 1)
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=1e-6, atol=1e-7)


def test_server_state_survives_a_checkpoint_round_trip():
    strategy = FedAdam()
    current = {"w": torch.tensor([1.0, 2.0])}
    after_one = strategy.aggregate(current, [_update(0, 1, w=[2.0, 0.0])], 1)
    restored = FedAdam()
    restored.load_state_dict(strategy.state_dict())
    nxt = [_update(0, 1, w=[0.0, 1.0])]
    torch.testing.assert_close(restored.aggregate(after_one, nxt, 2), strategy.aggregate(after_one, nxt, 2))


def test_fedprox_gradient_contains_mu_times_the_distance_to_the_global_weights():
    torch.manual_seed(0)
    net = DAGMM(input_dim=5)
    global_state = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p))
    penalty = FedProx(proximal_mu=0.3).local_penalty(global_state)
    penalty(net).backward()
    for name, p in net.named_parameters():
        torch.testing.assert_close(p.grad, 0.3 * (p.detach() - global_state[name]))
    assert FedProx(proximal_mu=0.0).local_penalty(global_state) is None


def test_fedper_keeps_the_personal_layers_home():
    keys = DAGMM(input_dim=5).state_dict().keys()
    federated = FedPer(personal_layers=["estimation"]).federated_keys(keys)
    assert federated == [k for k in keys if not k.startswith("estimation.")]
    assert any(k.startswith("encoder.") for k in federated)
    # The server averages what is sent and keeps its global value of the rest.
    current = {"encoder.w": torch.tensor([0.0]), "estimation.w": torch.tensor([7.0])}
    new = FedPer().aggregate(current, [_update(0, 1, **{"encoder.w": [2.0]}), _update(1, 1, **{"encoder.w": [4.0]})], 1)
    assert new == {"encoder.w": torch.tensor([3.0]), "estimation.w": torch.tensor([7.0])}


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: FedPer(personal_layers=["decoderr"]).federated_keys(DAGMM(input_dim=5).state_dict()), "name no layer"),
        (lambda: FedPer(personal_layers=["encoder", "decoder", "estimation"]).federated_keys(DAGMM(input_dim=5).state_dict()), "nothing would be federated"),
        (lambda: FedAdam(tau=0), "tau must be > 0"),
        (lambda: FedAvgM(server_momentum=1.0), "server_momentum must be in"),
        (lambda: FedProx(proximal_mu=-1), "proximal_mu must be >= 0"),
    ],
)
def test_impossible_strategy_settings_are_one_line_errors(make, message):
    with pytest.raises(ConfigError, match=message):
        make()
