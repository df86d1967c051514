"""Duplicate target-network updates, as tiny exact experiments with the learner's own
``update_target``.

A soft (Polyak) update theta' <- (1 - tau) theta' + tau theta, done k times against the same
online weights, equals one update with tau_k = 1 - (1 - tau)^k: twice gives 2 tau - tau^2,
about 2 tau. A hard copy (tau = 1) done twice is the same copy. How far the target trails the
online network is measured here by its time constant: the optimizer steps after which the
target has covered 1 - 1/e of a sudden change of the online weights.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from mplearn.learner import update_target


def effective_tau(tau: float, repeats: int) -> float:
    """The tau of one soft update equal to ``repeats`` updates with ``tau`` in a row."""
    return 1.0 - (1.0 - tau) ** repeats


def repeated_vs_effective(tau: float, repeats: int = 2, seed: int = 0) -> float:
    """Max |target after ``repeats`` updates with ``tau`` - target after one update with
    ``effective_tau(tau, repeats)``|, on a random 64x64 layer pair: float rounding only."""
    torch.manual_seed(seed)
    online, target = nn.Linear(64, 64), nn.Linear(64, 64)
    twice, once = _clone(target), _clone(target)
    for _ in range(repeats):
        update_target(twice, online, tau)
    update_target(once, online, effective_tau(tau, repeats))
    return max((a - b).abs().max().item()
               for a, b in zip(twice.parameters(), once.parameters(), strict=True))


def _clone(net: nn.Module) -> nn.Module:
    copy = nn.Linear(net.in_features, net.out_features)
    copy.load_state_dict(net.state_dict())
    return copy


def time_constant(tau: float, period: int = 1, repeats: int = 1, extra_every: int = 0,
                  limit: int = 100_000) -> int:
    """Optimizer steps until the target covers 1 - 1/e of a step change of the online weights,
    when the target is updated ``repeats`` times every ``period`` steps, plus once more every
    ``extra_every`` steps (0: never; the plan's second update in its loop)."""
    online, target = nn.Linear(1, 1, bias=False), nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        target.weight.zero_()
        online.weight.fill_(1.0)  # the change: online weights jump from 0 to 1 at step 0
    goal = 1.0 - math.exp(-1.0)
    for step in range(1, limit + 1):
        n = repeats * (step % period == 0) + (extra_every > 0 and step % extra_every == 0)
        for _ in range(n):
            update_target(target, online, tau)
        if target.weight.item() >= goal:
            return step
    raise ValueError(f"tau: the target does not reach 1 - 1/e within {limit} steps")
