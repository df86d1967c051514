"""Terminated vs truncated: the catalogue entry, the mechanism check, the scenarios behind data/.
"""

from __future__ import annotations

import queue

import numpy as np

from mplearn.core.actor import Actor
from mplearn.core.fixes import Fixes
from mplearn.envs import StepResult, env_spec
from mplearn.issues import measures
from mplearn.issues.base import (
    BASE,
    CARTPOLE_MARGIN,
    CheckResult,
    Condition,
    Issue,
    Manipulation,
    Margin,
    Scenario,
    fix_on_and_off,
    learner_with_rows,
)

ENTRY = Issue(
    "truncation_bootstrap", "Terminated vs truncated",
    claim="",
    mechanism="A time-limit truncation is not an absorbing state; treating it as terminal "
              "removes the bootstrap and biases values (CartPole-v1 truncates at 500).",
    where="environments with time limits",
    symptom="values near the time limit pulled towards the last reward",
    diagnostic="checks.replay_batch(batch); Monitor: time-limit rows stored as terminal",
    notebook="14_truncation_bootstrap")

# What the monitored demo run (lab.notebook.demo_config) needs for this issue to act: a time limit
# at 200 steps.
DEMO = dict(env_id="MountainCar-v0")


class _TimeLimitEnvs:
    """The actor's environment interface, minimal: constant observation and reward 1, never
    terminated, truncated by a time limit every ``limit`` steps."""

    def __init__(self, spec, limit: int):
        self.n_agents, self.spec, self.limit, self._t = 1, spec, limit, 0
        self._obs = np.zeros(spec.obs_shape, dtype=np.float32)

    def observe(self, agent_id: int) -> np.ndarray:
        return self._obs

    def step(self, agent_id: int, action: int):
        self._t += 1
        end = self._t % self.limit == 0
        return StepResult(self._obs, self._obs, 1.0, False, end,
                            float(self.limit) if end else None, self.limit if end else None)

    def close(self) -> None:
        pass


def check() -> CheckResult:
    def experiment(fixes: Fixes) -> float:
        config = BASE.replace(n_step=1, fixes=fixes)
        with learner_with_rows(config, rows=0) as learner:
            actor = Actor(config, env_spec(config.env_id), [learner.channel], seeds=[1])
            actor.envs.close()
            actor.envs = _TimeLimitEnvs(actor.envs.spec, limit=5)
            actor.first_pull()
            for _ in range(20):  # four episodes, each ended by the time limit
                actor.step(queue.SimpleQueue())
            batch = learner.channel.buffer.sample(64, np.random.default_rng(0))
            return float(batch.terminated[batch.truncated].mean())

    return fix_on_and_off("truncation_bootstrap", "fraction of time-limit rows stored as terminal "
                 "(no bootstrap)", experiment, lambda fraction: fraction > 0.0)


def truncated_as_terminal(record: dict) -> float | None:
    """Time-limit steps the actor stored as terminal (no bootstrap)."""
    return measures.last(record, "actor", "truncated_as_terminal")


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "truncation_bootstrap",
        "Truncation at the time limit stored as terminal: no bootstrap there. With CartPole's "
        "500-step limit it acts only once episodes reach 500 steps, late in a 25k-step run; "
        "with a 100-step limit most episodes end at the limit once the agent balances, so "
        "the wrong targets are frequent (the treasure hunt, every episode truncated, is the "
        "multi-agent case: notebook 18).",
        "inline",
        conditions=(Condition("limit 500"),
                    Condition("limit 100", {"env_kwargs": {"max_episode_steps": 100}},
                              Margin(5.0, "5% of the 0-100 return range of a 100-step limit"))),
        margin=CARTPOLE_MARGIN,
        manipulation=Manipulation(
            "time-limit steps stored as terminal", truncated_as_terminal,
            lambda n: n >= 1),
        diagnostics=("learner.mean_q", "learner.loss", "actor.truncated_as_terminal")),
)
