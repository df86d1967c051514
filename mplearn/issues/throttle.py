"""Unthrottled learner: the catalogue entry, the mechanism check, the scenarios behind data/.
"""

from __future__ import annotations

import math

from mplearn.core.fixes import Fixes
from mplearn.core.system import train
from mplearn.envs.slow import SLOW_CARTPOLE
from mplearn.issues.base import (
    BASE,
    CARTPOLE_MARGIN,
    CheckResult,
    Condition,
    Issue,
    Manipulation,
    Scenario,
    fix_on_and_off,
)

ENTRY = Issue(
    "throttle", "Unthrottled learner",
    claim="",
    mechanism="Without an enforced update-to-data ratio the learner trains as fast as it "
              "can, so the ratio differs between sequential and multiprocess runs and "
              "confounds every comparison.",
    where="async mode",
    symptom="updates per env step far from the configured ratio; overfitting early data",
    diagnostic="Monitor: updates against what updates_per_step allows at the env steps",
    notebook="17_throttle")

# What the monitored demo run (lab.notebook.demo_config) needs for this issue to act: a ratio the
# free-running learner exceeds.
DEMO = dict(updates_per_step=0.05)


def check() -> CheckResult:
    def experiment(fixes: Fixes) -> float:
        # Lockstep rounds of 10 env steps at a ratio of 0.05 allow one update every other
        # round; an unthrottled learner does one in every round.
        config = BASE.replace(mode="lockstep", total_env_steps=1000, learning_starts=100,
                              updates_per_step=0.05, fixes=fixes)
        return train(config).updates[0] / config.updates_owed(config.total_env_steps)

    return fix_on_and_off("throttle", "updates done / updates the ratio allows (ratio 0.05)",
                 experiment, lambda ratio: ratio > 1.0)


def updates_over_allowed(record: dict) -> float | None:
    """Updates done / updates the ratio allows at the env steps done (largest agent)."""
    config = record.get("spec", {}).get("config", {})
    ratio, starts = config.get("updates_per_step"), config.get("learning_starts", 0)
    updates, steps = record.get("updates") or [], record.get("env_steps") or 0
    allowed = math.floor(ratio * (steps - starts)) if ratio and steps > starts else 0
    return max(updates) / allowed if updates and allowed > 0 else None


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "throttle",
        "The learner not held to the update-to-data ratio (the actor still waits for a learner "
        "that falls behind). An update costs about 17 actor steps, so the learner can run "
        "ahead only when the ratio asked is low: 0.05 updates per env step. Async (2 agents on "
        "one actor), where timing decides whether it ever gets ahead; lockstep rounds, "
        "where the unthrottled learner updates at least once per 10-step round (ratio 0.1); "
        "and async with an actor as slow as a real simulator (CartPole with 1 ms of latency a "
        "step, mplearn/SlowCartPole-v0), where the learner has ~10x the time the ratio needs.",
        "async", overrides={"updates_per_step": 0.05},
        conditions=(Condition("async, 2 agents", {"n_agents": 2}),
                    Condition("lockstep", {"mode": "lockstep"}),
                    Condition("async, slow env", {"env_id": SLOW_CARTPOLE})),
        margin=CARTPOLE_MARGIN,
        manipulation=Manipulation(
            "updates done / updates the ratio allows", updates_over_allowed,
            lambda ratio: ratio > 1.05),
        diagnostics=("learner.update", "actor.policy_lag", "learner.loss")),
)
