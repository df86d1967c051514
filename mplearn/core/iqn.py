"""IQN acting rule, targets and quantile Huber loss as pure functions (Dabney et al. 2018).

Names map to the paper ("Implicit Quantile Networks for Distributional Reinforcement Learning"):

    num_tau_samples       N   taus for the online quantiles Z_tau(x, a)
    num_tau_prime_samples N'  taus for the target quantiles Z_tau'(x', a*)
    num_quantile_samples  K   taus for the acting rule Q(x, a) = 1/K sum_k Z_tau_k(x, a)
    kappa                 kappa  Huber threshold of the quantile Huber loss rho^kappa_tau

Paper defaults: N = N' = 64, K = 32, kappa = 1. Shapes: B batch, A actions.
Every random draw takes an optional `generator` so runs can be made bit-reproducible.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def sample_taus(
    batch_size: int,
    num_taus: int,
    *,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """tau ~ U([0, 1)), float32 [B, num_taus]."""
    # Draw where the generator lives, then move: a CPU generator can feed a CUDA network.
    source = generator.device if generator is not None else device
    taus = torch.rand(batch_size, num_taus, generator=generator, device=source)
    return taus if device is None else taus.to(device)


def q_values(
    net: nn.Module,
    obs: Tensor,
    num_quantile_samples: int,
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Q(x, a) = 1/K sum_k Z_tau_k(x, a), tau_k ~ U([0, 1)): [B, A] (the paper's acting rule)."""
    taus = sample_taus(obs.shape[0], num_quantile_samples, device=obs.device, generator=generator)
    return net(obs, taus).mean(dim=1)  # [B, K, A] -> [B, A]


@torch.no_grad()
def greedy_action(
    net: nn.Module,
    obs: Tensor,
    num_quantile_samples: int,
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """argmax_a Q(x, a) with K sampled taus: LongTensor [B]."""
    return q_values(net, obs, num_quantile_samples, generator=generator).argmax(dim=1)


def _gather_actions(quantiles: Tensor, actions: Tensor) -> Tensor:
    """[B, N, A], [B] -> [B, N]: the quantiles of one action per sample."""
    b, n, _ = quantiles.shape
    index = actions.long().view(b, 1, 1).expand(b, n, 1)
    return quantiles.gather(2, index).squeeze(2)


@torch.no_grad()
def target_quantiles(
    online_net: nn.Module,
    target_net: nn.Module,
    next_obs: Tensor,
    rewards: Tensor,
    terminated: Tensor,
    gamma: float | Tensor,
    num_tau_prime_samples: int,
    num_quantile_samples: int,
    double_dqn: bool,
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """r + gamma * (1 - terminated) * Z_tau'(x', a*): [B, N'] (paper eq. 3, Algorithm 1).

    a* = argmax_a of the K-sample mean of the online net (double DQN) or of the target net.
    ``gamma`` is a scalar or per-sample discounts [B] (gamma^n for n-step transitions).
    """
    selector = online_net if double_dqn else target_net
    next_actions = q_values(selector, next_obs, num_quantile_samples, generator=generator)
    next_actions = next_actions.argmax(dim=1)  # [B]
    tau_primes = sample_taus(
        next_obs.shape[0], num_tau_prime_samples, device=next_obs.device, generator=generator
    )  # [B, N']
    z = _gather_actions(target_net(next_obs, tau_primes), next_actions)  # [B, N']
    # Only true termination stops the bootstrap: a time-limit truncation is not an absorbing
    # state, so its target must still include gamma * Z.
    not_done = 1.0 - terminated.to(z.dtype)  # [B]
    discount = torch.as_tensor(gamma, dtype=z.dtype, device=z.device).reshape(-1, 1)  # [B|1, 1]
    return rewards.to(z.dtype).unsqueeze(1) + discount * not_done.unsqueeze(1) * z


def quantile_huber_loss(quantiles: Tensor, taus: Tensor, target: Tensor, kappa: float) -> Tensor:
    """Quantile Huber loss per sample: [B, N], [B, N], [B, N'] -> [B] (paper eq. 3).

    rho^kappa_tau(u) = |tau - 1{u < 0}| * L_kappa(u) / kappa with u = target_j - quantile_i,
    summed over the N online taus and averaged over the N' target taus (as in Dopamine).
    The target is treated as a constant; produce it under no_grad (see target_quantiles).
    """
    if kappa <= 0:
        raise ValueError(f"kappa must be > 0, got {kappa}")
    if quantiles.shape != taus.shape or target.ndim != 2 or target.shape[0] != quantiles.shape[0]:
        raise ValueError(
            f"expected quantiles/taus [B, N] and target [B, N'], got {tuple(quantiles.shape)}, "
            f"{tuple(taus.shape)}, {tuple(target.shape)}"
        )
    u = target.unsqueeze(1) - quantiles.unsqueeze(2)  # [B, N, N']
    # L_kappa(u) = 0.5 u^2 if |u| <= kappa else kappa (|u| - 0.5 kappa): huber_loss of u
    # against 0 is the same values and gradients (tests/test_iqn.py checks them bit for bit
    # against the where() form) in one op and one backward op instead of seven of each.
    huber = F.huber_loss(u, u.new_zeros(()).expand_as(u), reduction="none", delta=kappa)
    # The asymmetric weight is a constant w.r.t. the quantiles, hence the detach.
    weight = (taus.unsqueeze(2) - (u.detach() < 0).to(u.dtype)).abs()  # [B, N, N']
    rho = weight * huber  # [B, N, N']
    if kappa != 1.0:  # dividing by 1 changes nothing: skip the op and its backward
        rho = rho / kappa
    return rho.mean(dim=2).sum(dim=1)  # [B]


def iqn_loss(
    online_net: nn.Module,
    target_net: nn.Module,
    obs: Tensor,
    actions: Tensor,
    rewards: Tensor,
    next_obs: Tensor,
    terminated: Tensor,
    *,
    gamma: float | Tensor,
    num_tau_samples: int,
    num_tau_prime_samples: int,
    num_quantile_samples: int,
    kappa: float,
    double_dqn: bool,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """IQN loss on a batch: (mean over B of quantile_huber_loss, detached mean chosen quantile).

    Gradients flow only into online_net; the target is computed under no_grad.
    """
    taus = sample_taus(obs.shape[0], num_tau_samples, device=obs.device, generator=generator)
    chosen = _gather_actions(online_net(obs, taus), actions)  # [B, N]
    target = target_quantiles(
        online_net, target_net, next_obs, rewards, terminated, gamma,
        num_tau_prime_samples, num_quantile_samples, double_dqn, generator=generator,
    )  # [B, N']
    loss = quantile_huber_loss(chosen, taus, target, kappa).mean()
    return loss, chosen.detach().mean()
