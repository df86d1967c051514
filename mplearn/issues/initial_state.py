"""Initial model state: the catalogue entry, the mechanism check, the scenarios behind data/.
"""

from __future__ import annotations

from mplearn.core.actor import Actor
from mplearn.core.fixes import Fixes
from mplearn.envs import env_spec
from mplearn.issues import measures
from mplearn.issues.base import (
    BASE,
    CARTPOLE_MARGIN,
    EXPLOIT,
    CheckResult,
    Issue,
    Manipulation,
    Restart,
    Scenario,
    Window,
    fix_on_and_off,
    learner_with_rows,
    max_abs_diff,
)

ENTRY = Issue(
    "initial_state", "Initial model state",
    claim="Unclear whether shared models start from random or copied weights; document it.",
    mechanism="Actors that act before their first sync use their own random init; a train "
              "copy made before the source weights were copied trains from random weights.",
    where="the first steps of every run; runs initialised from a source model",
    symptom="early transitions from a policy the learner never had",
    diagnostic="Monitor: steps the actor acted with weights it never pulled",
    notebook="10_initial_model_state")


def check() -> CheckResult:
    def experiment(fixes: Fixes) -> float:
        config = BASE.replace(fixes=fixes)
        with learner_with_rows(config) as learner:
            actor = Actor(config, env_spec(config.env_id), [learner.channel], seeds=[1])
            try:
                actor.first_pull()
                return max_abs_diff(actor.nets[0], learner.channel.model.qnetwork_local)
            finally:
                actor.close()

    return fix_on_and_off(
        "initial_state", "max |actor's weights - shared weights| at the first step",
        experiment, lambda distance: distance > 0.0)


def unpulled_steps(record: dict) -> float | None:
    """Env steps the actor acted with weights it never pulled (both phases)."""
    return measures.largest(record, "actor", "unpulled_steps")


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "initial_state",
        "An actor that acts before its first pull uses its own random init until the first "
        "publish. From scratch epsilon is 1.0 then, so the net is never used; it bites when "
        "the system resumes from trained weights with little exploration: train 15k steps, "
        "restart with epsilon 0.01 (lockstep: real processes).",
        "lockstep", restart=Restart(15_000, EXPLOIT), metric=Window(15_000, 20_000),
        margin=CARTPOLE_MARGIN,
        manipulation=Manipulation(
            "env steps acted with never-pulled weights", unpulled_steps,
            lambda steps: steps > 0),
        diagnostics=("actor.version", "actor.unpulled_steps", "learner.loss")),
)
