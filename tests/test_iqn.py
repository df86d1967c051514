import copy

import pytest
import torch
from torch import nn

from mplearn.core.iqn import (
    greedy_action,
    iqn_loss,
    q_values,
    quantile_huber_loss,
    sample_taus,
    target_quantiles,
)
from mplearn.core.networks import IQNNetwork


class TableNet(nn.Module):
    """Stub returning fixed quantiles: row n of `table` [N, A] for the n-th tau, any tau value."""

    def __init__(self, table):
        super().__init__()
        self.register_buffer("table", torch.as_tensor(table, dtype=torch.float32))

    def forward(self, obs, taus):
        b, n = taus.shape
        assert n == self.table.shape[0]
        return self.table.expand(b, n, -1)  # [B, N, A]


# Per action: means 2.25, 3.0, 1.75 -> 1; the max would pick 0 and the median 2.
GREEDY_TABLE = [[0.0, 3.0, -5.0], [0.0, 3.0, 4.0], [0.0, 3.0, 4.0], [9.0, 3.0, 4.0]]


def test_sample_taus_shape_range_and_reproducibility():
    taus = sample_taus(3, 1000, generator=torch.Generator().manual_seed(0))
    assert taus.shape == (3, 1000) and taus.dtype == torch.float32
    assert taus.min() >= 0.0 and taus.max() < 1.0
    again = sample_taus(3, 1000, generator=torch.Generator().manual_seed(0))
    other = sample_taus(3, 1000, generator=torch.Generator().manual_seed(1))
    assert torch.equal(taus, again) and not torch.equal(taus, other)


def test_q_values_is_mean_over_quantiles():
    q = q_values(TableNet(GREEDY_TABLE), torch.zeros(2, 1), num_quantile_samples=4)
    expected = torch.tensor([(0 + 0 + 0 + 9) / 4, 3.0, (-5 + 4 + 4 + 4) / 4])
    torch.testing.assert_close(q, expected.expand(2, 3))


def test_greedy_action_is_argmax_of_mean_quantiles():
    actions = greedy_action(TableNet(GREEDY_TABLE), torch.zeros(2, 1), num_quantile_samples=4)
    assert actions.dtype == torch.long
    assert actions.tolist() == [1, 1]


# Online means (0, 5) -> a* = 1; target means (15, 2) -> a* = 0. K = N' = 2.
ONLINE_TABLE = [[0.0, 5.0], [0.0, 5.0]]
TARGET_TABLE = [[10.0, 1.0], [20.0, 3.0]]


@pytest.mark.parametrize("terminated", [[0.0, 1.0], [False, True]])
@pytest.mark.parametrize(
    ("double_dqn", "z"),
    [(True, [1.0, 3.0]), (False, [10.0, 20.0])],  # Z_tau'(x', a*) of the target net
)
def test_target_quantiles(double_dqn, z, terminated):
    target = target_quantiles(
        TableNet(ONLINE_TABLE),
        TableNet(TARGET_TABLE),
        next_obs=torch.zeros(2, 1),
        rewards=torch.tensor([1.0, 2.0]),
        terminated=torch.tensor(terminated),
        gamma=0.9,
        num_tau_prime_samples=2,
        num_quantile_samples=2,
        double_dqn=double_dqn,
    )
    assert target.shape == (2, 2)
    # Not terminated: r + gamma * Z.
    torch.testing.assert_close(target[0], torch.tensor([1.0 + 0.9 * z[0], 1.0 + 0.9 * z[1]]))
    # Terminated: exactly the reward, no bootstrap.
    assert torch.equal(target[1], torch.tensor([2.0, 2.0]))


def test_quantile_huber_loss_hand_computed():
    quantiles = torch.tensor([[0.0, 2.0]])  # N = 2
    taus = torch.tensor([[0.25, 0.75]])
    target = torch.tensor([[0.5, 3.0]])  # N' = 2
    # u_ij = target_j - quantile_i:  i=0: (0.5, 3.0)   i=1: (-1.5, 1.0)
    # kappa = 1: Huber(0.5) = 0.5*0.25, Huber(3) = 1*(3 - 0.5), Huber(-1.5) = 1*(1.5 - 0.5),
    #            Huber(1) = 0.5*1 (|u| <= kappa).  Weights |tau - 1{u<0}|: i=0: .25, .25;
    #            i=1: |.75 - 1| = .25 (u < 0), .75.
    row0 = (0.25 * 0.125 + 0.25 * 2.5) / 2
    row1 = (0.25 * 1.0 + 0.75 * 0.5) / 2
    loss = quantile_huber_loss(quantiles, taus, target, kappa=1.0)
    assert loss.shape == (1,)
    assert loss.item() == pytest.approx(row0 + row1)  # 0.640625
    # kappa = 2: Huber(3) = 2*(3 - 1), Huber(-1.5) = 0.5*2.25 (now inside), then divide by kappa.
    row0 = (0.25 * 0.125 / 2 + 0.25 * 4.0 / 2) / 2
    row1 = (0.25 * 1.125 / 2 + 0.75 * 0.5 / 2) / 2
    loss = quantile_huber_loss(quantiles, taus, target, kappa=2.0)
    assert loss.item() == pytest.approx(row0 + row1)  # 0.421875


def _quantile_huber_loss_by_definition(quantiles, taus, target, kappa):
    """The loss written term by term (paper eq. 3), as the module computed it before."""
    u = target.unsqueeze(1) - quantiles.unsqueeze(2)
    abs_u = u.abs()
    huber = torch.where(abs_u <= kappa, 0.5 * u.pow(2), kappa * (abs_u - 0.5 * kappa))
    weight = (taus.unsqueeze(2) - (u.detach() < 0).to(u.dtype)).abs()
    return (weight * huber / kappa).mean(dim=2).sum(dim=1)


@pytest.mark.parametrize("kappa", [1.0, 0.5, 2.0])
def test_quantile_huber_loss_matches_its_definition_bit_for_bit(kappa):
    # Values and gradients equal the term-by-term form exactly, at |u| == kappa and u == 0 too.
    gen = torch.Generator().manual_seed(0)
    quantiles = (3 * torch.randn(16, 8, generator=gen)).requires_grad_()
    taus, target = torch.rand(16, 8, generator=gen), 3 * torch.randn(16, 8, generator=gen)
    edges = torch.tensor([kappa, -kappa, 0.0, kappa / 2, -kappa / 2, 2 * kappa, 1e-7, -1e-7])
    target[0] = quantiles.detach()[0, 0] + edges
    losses, grads = [], []
    for fn in (quantile_huber_loss, _quantile_huber_loss_by_definition):
        loss = fn(quantiles, taus, target, kappa)
        losses.append(loss)
        grads.append(torch.autograd.grad(loss.sum(), quantiles)[0])
    assert torch.equal(losses[0], losses[1]) and torch.equal(grads[0], grads[1])


def test_quantile_huber_loss_sums_over_n_and_averages_over_n_prime():
    # N = 2, N' = 1 (u = 0.5 and -1.5, kappa = 1): sum over i of one term each.
    loss = quantile_huber_loss(torch.tensor([[0.0, 2.0]]), torch.tensor([[0.25, 0.75]]),
                               torch.tensor([[0.5]]), kappa=1.0)
    assert loss.item() == pytest.approx(0.25 * 0.125 + 0.25 * 1.0)
    # N = 1, N' = 2 (u = 0.5 and 3.0, kappa = 1): average over j.
    loss = quantile_huber_loss(torch.tensor([[0.0]]), torch.tensor([[0.25]]),
                               torch.tensor([[0.5, 3.0]]), kappa=1.0)
    assert loss.item() == pytest.approx((0.25 * 0.125 + 0.25 * 2.5) / 2)


def test_quantile_huber_loss_is_per_sample():
    quantiles, taus, target = torch.randn(3, 4), torch.rand(3, 4), torch.randn(3, 5)
    loss = quantile_huber_loss(quantiles, taus, target, kappa=1.0)
    assert loss.shape == (3,)
    torch.testing.assert_close(loss[1:2], quantile_huber_loss(quantiles[1:2], taus[1:2],
                                                              target[1:2], kappa=1.0))


def test_quantile_huber_loss_minimised_at_the_tau_quantile():
    target = torch.arange(100.0).unsqueeze(0)  # [1, 100], the 0.1-quantile lies in [9, 10]
    grid = torch.linspace(0.0, 99.0, 991)
    losses = torch.stack([
        quantile_huber_loss(q.view(1, 1), torch.tensor([[0.1]]), target, kappa=0.01)
        for q in grid
    ]).squeeze(1)
    assert 9.0 <= grid[losses.argmin()].item() <= 10.0


@pytest.mark.parametrize("kappa", [0.0, -1.0])
def test_quantile_huber_loss_rejects_non_positive_kappa(kappa):
    with pytest.raises(ValueError):
        quantile_huber_loss(torch.zeros(1, 2), torch.rand(1, 2), torch.zeros(1, 2), kappa)


LOSS_KWARGS = {
    "gamma": 0.99,
    "num_tau_samples": 8,  # N
    "num_tau_prime_samples": 8,  # N'
    "num_quantile_samples": 4,  # K
    "kappa": 1.0,
    "double_dqn": True,
}


def _batch(b=16, obs_dim=4):
    g = torch.Generator().manual_seed(0)
    return {
        "obs": torch.randn(b, obs_dim, generator=g),
        "actions": torch.randint(0, 2, (b,), generator=g),
        "rewards": torch.randn(b, generator=g),
        "next_obs": torch.randn(b, obs_dim, generator=g),
        "terminated": torch.rand(b, generator=g) < 0.3,
    }


def test_iqn_loss_mean_q_is_mean_of_chosen_quantiles():
    online = TableNet([[1.0, 10.0], [3.0, 20.0]])  # N = N' = K = 2
    kwargs = {**LOSS_KWARGS, "num_tau_samples": 2, "num_tau_prime_samples": 2,
              "num_quantile_samples": 2}
    _, mean_q = iqn_loss(online, online, torch.zeros(2, 1), torch.tensor([0, 1]), torch.zeros(2),
                         torch.zeros(2, 1), torch.zeros(2), **kwargs)
    # Sample 0 took action 0 (quantiles 1, 3), sample 1 took action 1 (quantiles 10, 20).
    assert mean_q.item() == pytest.approx((1.0 + 3.0 + 10.0 + 20.0) / 4)


def test_iqn_loss_gradients_only_reach_online_net():
    torch.manual_seed(0)
    online = IQNNetwork(4, 2, hidden_dim=16, embedding_dim=8)
    target = copy.deepcopy(online)
    loss, mean_q = iqn_loss(online, target, **_batch(), **LOSS_KWARGS)
    assert loss.ndim == 0 and mean_q.ndim == 0 and not mean_q.requires_grad
    loss.backward()
    assert all(p.grad is not None for p in online.parameters())
    assert all(p.grad is None for p in target.parameters())


def test_iqn_loss_is_reproducible_and_decreases_under_adam():
    torch.manual_seed(0)
    online = IQNNetwork(4, 2, hidden_dim=32, embedding_dim=8)
    target = copy.deepcopy(online)
    batch = _batch()

    def loss_fn():  # same taus every call: a fixed, deterministic objective
        return iqn_loss(online, target, **batch, **LOSS_KWARGS,
                        generator=torch.Generator().manual_seed(1))[0]

    initial = loss_fn()
    assert torch.equal(initial, loss_fn())
    optimizer = torch.optim.Adam(online.parameters(), lr=1e-2)
    for _ in range(30):
        optimizer.zero_grad()
        loss_fn().backward()
        optimizer.step()
    assert loss_fn().item() < 0.5 * initial.item()
