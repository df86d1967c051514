"""Duplicate target network updates: the catalogue entry, the mechanism check, the scenarios behind
data/ and the experiments its notebook runs.

Duplicate target-network updates, as tiny exact experiments with the learner's own
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

from mplearn.core.fixes import Fixes
from mplearn.core.learner import update_target
from mplearn.issues import measures
from mplearn.issues.base import (
    BASE,
    CARTPOLE_MARGIN,
    PLAN_SOFT,
    CheckResult,
    Issue,
    Manipulation,
    Scenario,
    fix_on_and_off,
    learner_with_rows,
)

ENTRY = Issue(
    "single_target_update", "Duplicate target network updates",
    claim="(listed among the critical issues) the target is updated twice: inside "
          "train_step and again in the learner loop.",
    mechanism="Two soft updates per period make the effective tau about twice as large; a "
              "duplicated hard copy is harmless unless it runs every step, which removes "
              "the target network.",
    where="the learner loop and train_step both updating the target",
    symptom="target updates per optimizer step above the schedule",
    diagnostic="Monitor: target updates against updates / target_update_period",
    notebook="09_duplicate_target_updates")


def check() -> CheckResult:
    def experiment(fixes: Fixes) -> float:
        config = BASE.replace(target_update_period=10, fixes=fixes)
        with learner_with_rows(config) as learner:
            for _ in range(20):
                learner.update()
            return float(learner.target_updates)

    return fix_on_and_off(
        "single_target_update", "target updates in 20 updates (schedule: every 10)",
        experiment, lambda n: n != 2)


def target_updates_per_update(record: dict) -> float | None:
    """Target updates per learner update at the end (schedule: one per update)."""
    n, updates = (measures.last(record, "learner", f) for f in ("target_updates", "update"))
    return None if not updates else n / updates


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "single_target_update",
        "The target updated twice per period. A repeated hard copy is the same copy, exactly "
        "(lerp with weight 1 returns its end point), so the default config is unaffected by "
        "construction and is not rerun; a repeated soft update makes tau 1 - (1 - tau)^2, "
        "about twice as large: the plan's soft update, tau 0.001 every update.",
        "inline", overrides=PLAN_SOFT, margin=CARTPOLE_MARGIN,
        manipulation=Manipulation(
            "target updates per learner update at the end (schedule: 1)",
            target_updates_per_update, lambda ratio: ratio > 1.5),
        diagnostics=("learner.target_updates", "learner.loss", "learner.mean_q")),
)



# --- the experiments its notebook runs --------------------------------------------------------

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
