"""Identical randomness across workers: the catalogue entry, the mechanism check, the scenarios
behind data/.
"""

from __future__ import annotations

import numpy as np

from mplearn.core.fixes import Fixes
from mplearn.core.system import System
from mplearn.issues.base import (
    BASE,
    CARTPOLE_MARGIN,
    MAX_SEEDS,
    CheckResult,
    Issue,
    Manipulation,
    Scenario,
    fix_on_and_off,
)

ENTRY = Issue(
    "worker_seeding", "Identical randomness across workers",
    claim="",
    mechanism="Workers seeded alike draw identical random numbers: identical exploration "
              "across agents.",
    where="several agents or actors",
    symptom="agents' exploration decisions identical",
    diagnostic="Monitor: the first actions of the agents compared",
    notebook="16_worker_seeding")

# What the monitored demo run (lab.notebook.demo_config) needs for this issue to act: more than
# one random stream.
DEMO = dict(n_agents=2)


def check() -> CheckResult:
    def experiment(fixes: Fixes) -> float:
        # Two agents acting at random (epsilon ~1): compare their actions, row by row.
        config = BASE.replace(mode="inline", n_agents=2, total_env_steps=160,
                              learning_starts=150, fixes=fixes)
        system = System(config).start()
        try:
            while not system.done:
                system.poll()
            a, b = (buf.sample(100, np.random.default_rng(0)).actions for buf in system.buffers)
        finally:
            system.stop()
        return float(np.mean(a == b))

    return fix_on_and_off("worker_seeding", "fraction of equal actions of two agents (100 rows)",
                 experiment, lambda same: same > 0.9)


def equal_exploration(record: dict) -> float | None:
    """Fraction of equal actions of the two agents among rows both collected exploring."""
    phases = record.get("extras", {}).get("equal_actions") or []
    return phases[0].get("explore") if phases and phases[0] else None


def _same_draws(same: float) -> bool:
    # Halfway between chance (0.5, two actions) and identical draws (1.0). Identical seeds do
    # not make every action equal: once the agents' greedy choices differ, their states and
    # so their later actions differ too (first data: 0.94 broken vs 0.50 fixed; the 0.99
    # first declared had assumed every action would match).
    return same >= 0.75


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "worker_seeding",
        "Every worker seeded alike: two agents draw the same exploration decisions and replay "
        "indices (lockstep, 2 agents; the value compared is the mean over agents).",
        "lockstep", overrides={"n_agents": 2}, margin=CARTPOLE_MARGIN,
        manipulation=Manipulation(
            "fraction of equal actions of the two agents while exploring (chance: 0.5)",
            equal_exploration, _same_draws),
        diagnostics=("learner.loss",), extras=("equal_actions",),
        # Raised from 20 to its cap (MAX_SEEDS, declared before any run): 20 pairs gave
        # 8.94 [-13.0, 30.8], inconclusive with ~39 pairs needed, inside the cap. Seeds 1-20
        # are the same pairs; 21-40 are added, never chosen by result.
        seeds=MAX_SEEDS),
)


# --- the experiments its notebook runs --------------------------------------------------------

def equal_actions(fixed: bool, steps: int = 2_000) -> np.ndarray:
    """Two agents acting at random (``learning_starts`` at the end, so epsilon stays 1.0),
    inline: per env step, whether their actions were equal (CartPole: 2 actions, so about half
    for independent streams)."""
    config = BASE.replace(mode="inline", n_agents=2, total_env_steps=steps, buffer_size=steps,
                          learning_starts=steps - 1,
                          fixes=Fixes() if fixed else Fixes().without("worker_seeding"))
    system = System(config).start()
    try:
        while not system.done:
            system.poll()
        a, b = (np.array(buf._views()["actions"][:buf.count]) for buf in system.buffers)
    finally:
        system.stop()
    n = min(len(a), len(b))
    return a[:n] == b[:n]
