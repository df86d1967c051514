import math

import pytest
import torch

from mplearn.core.networks import IQNNetwork, NoisyLinear


def _known_noisy_layer() -> NoisyLinear:
    """2 -> 1 layer with hand-set mu, sigma and epsilon."""
    layer = NoisyLinear(2, 1)
    with torch.no_grad():
        layer.weight_mu.copy_(torch.tensor([[1.0, 2.0]]))
        layer.bias_mu.copy_(torch.tensor([0.5]))
        layer.weight_sigma.copy_(torch.tensor([[0.1, 0.2]]))
        layer.bias_sigma.copy_(torch.tensor([0.3]))
        layer.weight_epsilon.copy_(torch.tensor([[1.0, -1.0]]))
        layer.bias_epsilon.copy_(torch.tensor([2.0]))
    return layer


def test_noisy_linear_init_follows_paper():
    torch.manual_seed(0)
    layer = NoisyLinear(4, 3, sigma_init=0.5)  # p = 4: mu in [-1/2, 1/2], sigma = 0.5/2
    assert layer.weight_mu.abs().max() <= 0.5 and layer.bias_mu.abs().max() <= 0.5
    assert torch.all(layer.weight_sigma == 0.25) and torch.all(layer.bias_sigma == 0.25)


def test_noisy_linear_eval_uses_mu_only():
    layer = _known_noisy_layer().eval()
    x = torch.tensor([[3.0, 4.0]])
    # x @ mu.T + b_mu = 3*1 + 4*2 + 0.5
    assert layer(x).item() == pytest.approx(3 * 1 + 4 * 2 + 0.5)


def test_noisy_linear_train_uses_mu_plus_sigma_epsilon():
    layer = _known_noisy_layer().train()
    x = torch.tensor([[3.0, 4.0]])
    # w = [1 + 0.1*1, 2 + 0.2*(-1)] = [1.1, 1.8]; b = 0.5 + 0.3*2 = 1.1
    assert layer(x).item() == pytest.approx(3 * 1.1 + 4 * 1.8 + 1.1)


def test_noisy_linear_train_output_changes_after_reset_noise():
    torch.manual_seed(0)
    layer = NoisyLinear(5, 3)
    x = torch.randn(4, 5)
    before = layer(x)
    layer.reset_noise(torch.Generator().manual_seed(1))
    assert not torch.allclose(layer(x), before)
    assert not torch.allclose(layer(x), layer.eval()(x))


def test_noisy_linear_noise_is_factorised():
    layer = NoisyLinear(5, 3)
    layer.reset_noise(torch.Generator().manual_seed(0))
    eps_out = layer.bias_epsilon  # f(eps_i)
    eps_in = layer.weight_epsilon / eps_out.unsqueeze(1)  # every row must equal f(eps_j)
    torch.testing.assert_close(eps_in, eps_in[:1].expand(3, 5))


def test_noisy_linear_noise_uses_signed_sqrt():
    # f(x) = sgn(x) sqrt|x| with x ~ N(0, 1) gives E[f(x)^2] = E|x| = sqrt(2/pi) ~= 0.798 (not 1).
    layer = NoisyLinear(20000, 1)
    layer.reset_noise(torch.Generator().manual_seed(0))
    f_in = layer.weight_epsilon[0] / layer.bias_epsilon[0]  # [in], f(eps_j)
    assert f_in.pow(2).mean().item() == pytest.approx(math.sqrt(2 / math.pi), abs=0.03)


def test_noisy_linear_sigma_gradient_only_in_train_mode():
    torch.manual_seed(0)
    layer = NoisyLinear(3, 2)
    x = torch.randn(4, 3)
    layer.eval()(x).sum().backward()
    assert layer.weight_sigma.grad is None and layer.bias_sigma.grad is None
    assert layer.weight_mu.grad is not None
    layer.train()(x).sum().backward()
    assert layer.weight_sigma.grad.abs().sum() > 0 and layer.bias_sigma.grad.abs().sum() > 0


def test_noisy_linear_same_seed_same_noise():
    a, b = NoisyLinear(4, 3), NoisyLinear(4, 3)
    a.reset_noise(torch.Generator().manual_seed(7))
    b.reset_noise(torch.Generator().manual_seed(7))
    assert torch.equal(a.weight_epsilon, b.weight_epsilon)
    assert torch.equal(a.bias_epsilon, b.bias_epsilon)
    b.reset_noise(torch.Generator().manual_seed(8))
    assert not torch.equal(a.weight_epsilon, b.weight_epsilon)


def test_noisy_linear_noise_in_state_dict():
    a = NoisyLinear(4, 3)
    state = a.state_dict()
    assert {"weight_epsilon", "bias_epsilon"} <= set(state)
    assert {"weight_epsilon", "bias_epsilon"}.isdisjoint(n for n, _ in a.named_parameters())
    b = NoisyLinear(4, 3)
    b.load_state_dict(state)
    x = torch.randn(2, 4)
    torch.testing.assert_close(b(x), a(x))


CONFIGS = [
    {},
    {"dueling": True},
    {"noisy": True},
    {"dropout": 0.2},
    {"dueling": True, "noisy": True, "dropout": 0.1},
]


@pytest.mark.parametrize("kwargs", CONFIGS)
def test_iqn_output_shape(kwargs):
    torch.manual_seed(0)
    net = IQNNetwork(obs_dim=6, n_actions=3, hidden_dim=16, embedding_dim=8, **kwargs)
    obs = torch.randn(5, 2, 3)  # any obs shape is flattened to [B, 6]
    assert net(obs, torch.rand(5, 7)).shape == (5, 7, 3)
    assert (net.obs_dim, net.n_actions, net.embedding_dim) == (6, 3, 8)


def test_cosine_embedding_indexing_starts_at_zero():
    net = IQNNetwork(obs_dim=2, n_actions=2, embedding_dim=4)
    assert torch.equal(net.cosine_embedding(torch.zeros(2, 3)), torch.ones(2, 3, 4))
    assert torch.equal(net.cosine_embedding(torch.rand(2, 3))[..., 0], torch.ones(2, 3))
    # tau = 1/2: cos(0), cos(pi/2), cos(pi), cos(3 pi/2) = 1, 0, -1, 0
    emb = net.cosine_embedding(torch.tensor([[0.5]]))
    torch.testing.assert_close(emb, torch.tensor([[[1.0, 0.0, -1.0, 0.0]]]))
    emb = net.cosine_embedding(torch.tensor([[0.25]]))
    torch.testing.assert_close(emb[0, 0, 1], torch.tensor(math.sqrt(0.5)))


def test_cosine_embedding_on_the_cpu_matches_torch_cos():
    # The CPU path computes cos with numpy (faster here); it must agree with torch.cos.
    net = IQNNetwork(obs_dim=2, n_actions=2, embedding_dim=64)
    taus = torch.rand(64, 8, generator=torch.Generator().manual_seed(0))
    emb = net.cosine_embedding(taus)
    assert emb.dtype == torch.float32 and emb.shape == (64, 8, 64)
    torch.testing.assert_close(emb, torch.cos(taus.unsqueeze(-1) * net.pi_i), rtol=0, atol=1e-6)
    # With a gradient to carry, torch.cos: the embedding stays differentiable in tau.
    taus.requires_grad_()
    net.cosine_embedding(taus).sum().backward()
    assert taus.grad is not None and torch.isfinite(taus.grad).all()


def test_eval_mode_is_deterministic_for_fixed_taus():
    torch.manual_seed(0)
    net = IQNNetwork(6, 3, hidden_dim=16, dueling=True, noisy=True, dropout=0.5).eval()
    obs, taus = torch.randn(4, 6), torch.rand(4, 5)
    assert torch.equal(net(obs, taus), net(obs, taus))


def test_dropout_makes_train_and_eval_differ():
    torch.manual_seed(0)
    net = IQNNetwork(6, 3, hidden_dim=32, dropout=0.5)
    obs, taus = torch.randn(4, 6), torch.rand(4, 5)
    assert not torch.allclose(net.train()(obs, taus), net.eval()(obs, taus))


def test_dueling_mean_over_actions_is_value_stream():
    torch.manual_seed(0)
    net = IQNNetwork(6, 4, hidden_dim=16, dueling=True).eval()
    obs, taus = torch.randn(3, 6), torch.rand(3, 5)
    h = net.psi(obs).unsqueeze(1) * net.phi(net.cosine_embedding(taus))
    torch.testing.assert_close(net(obs, taus).mean(dim=-1, keepdim=True), net.value(h))


def test_noisy_layers_and_reset_noise():
    assert len(list(IQNNetwork(6, 3).noisy_layers())) == 0
    IQNNetwork(6, 3).reset_noise()  # no-op without noisy layers
    assert len(list(IQNNetwork(6, 3, noisy=True).noisy_layers())) == 2
    assert len(list(IQNNetwork(6, 3, noisy=True, dueling=True).noisy_layers())) == 4

    torch.manual_seed(0)
    a = IQNNetwork(6, 3, hidden_dim=16, noisy=True)
    b = IQNNetwork(6, 3, hidden_dim=16, noisy=True)
    b.load_state_dict(a.state_dict())
    obs, taus = torch.randn(4, 6), torch.rand(4, 5)
    a.reset_noise(torch.Generator().manual_seed(3))
    b.reset_noise(torch.Generator().manual_seed(3))
    assert torch.equal(a(obs, taus), b(obs, taus))
    before = a(obs, taus)
    a.reset_noise(torch.Generator().manual_seed(4))
    assert not torch.allclose(a(obs, taus), before)
