"""Epsilon decay and its publication: the catalogue entry, the mechanism check, the scenarios behind
data/ and the experiments its notebook runs.

What a spawned process sees of the values its parent changes after it started.

The plan's learner "publishes" epsilon by setting an attribute on the shared model. Under spawn
the child process gets the model by pickling, once, when it starts: ``share_memory()`` put the
tensor storages in shared memory, so later in-place writes to the weights reach the child; a
plain Python attribute is copied into the child's pickle and never travels again. Measured
here with a real spawned process and five values: a float attribute of the shared model, a
weight of it, a tensor in shared memory written in place, one replaced by a new tensor, and an
``mp.Value``. Also: the epsilon the actor and the learner recorded in a run, side by side.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from dataclasses import dataclass

import numpy as np
import torch

from mplearn.core.config import Config
from mplearn.core.fixes import Fixes
from mplearn.core.system import train
from mplearn.core.weights import (
    create_shared_model,
)
from mplearn.core.workers import DONE, ERROR, worker_main
from mplearn.issues import measures
from mplearn.issues.base import (
    BASE,
    CARTPOLE_MARGIN,
    CheckResult,
    Issue,
    Manipulation,
    Scenario,
    fix_on_and_off,
)

ENTRY = Issue(
    "shared_epsilon", "Epsilon decay and its publication",
    claim="The learner decays epsilon every epsilon_decay_freq steps and publishes it to "
          "the shared model.",
    mechanism="share_memory() shares tensor storages only: a plain attribute set on the "
              "shared model in the learner never reaches the actor process.",
    where="any value published as a Python attribute across processes",
    symptom="actors explore at the initial epsilon forever; return stays at the "
            "random-policy level while the learner's own epsilon has decayed",
    diagnostic="checks.shared_memory(model) flags plain number attributes; the epsilon "
               "stored with each transition; Monitor: actor's epsilon vs the learner's",
    notebook="05_epsilon_across_processes")


def check() -> CheckResult:
    def experiment(fixes: Fixes) -> float:
        # 200 updates decay the learner's epsilon from 1.0 to 0.01; what does the actor see?
        config = BASE.replace(mode="lockstep", total_env_steps=300, learning_starts=100,
                              epsilon_decay_updates=50, fixes=fixes)
        return train(config).actor[0][-1]["epsilon"]

    return fix_on_and_off(
        "shared_epsilon", "epsilon the actor process read at the end (learner: 0.01)",
        experiment, lambda epsilon: epsilon == BASE.epsilon_start)


def actor_epsilon(record: dict) -> float | None:
    """The epsilon the actor process read at its last record."""
    return measures.last(record, "actor", "epsilon")


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "shared_epsilon",
        "Epsilon set as an attribute on the shared model never reaches the actor process "
        "(lockstep: real processes, reproducible).",
        "lockstep", margin=CARTPOLE_MARGIN,
        manipulation=Manipulation(
            "epsilon the actor process read at the end (the schedule ends at 0.01)",
            actor_epsilon, lambda epsilon: epsilon >= 0.99),
        diagnostics=("actor.epsilon", "learner.epsilon", "learner.loss")),
)



# --- the experiments its notebook runs --------------------------------------------------------

START, NEW = 1.0, 0.01  # epsilon at the start, and what the parent "publishes"
VALUES = ("model.epsilon = x (a float)", "a weight, written in place",
          "shared tensor, .fill_(x)", "shared tensor, = torch.tensor(x)", "mp.Value('d')")


def _read(model, epsilon_value) -> list[float]:
    return [float(model.epsilon), model.qnetwork_local.psi[0].bias[0].item(),
            float(model.epsilon_filled), float(model.epsilon_rebound),
            float(epsilon_value.value)]


def _reader_main(model, epsilon_value, changed, *, records) -> None:
    """The child: read every value, wait until the parent changed them, read again."""
    records.put(("read", os.getpid(), _read(model, epsilon_value)))
    if not changed.wait(timeout=60):
        raise TimeoutError("the parent never signalled its change")
    records.put(("read", os.getpid(), _read(model, epsilon_value)))


@dataclass(frozen=True)
class ChildView:
    parent_pid: int
    child_pid: int
    parent_sets: list[float]  # the values after the parent's change
    child_before: list[float]  # what the child read when it started
    child_after: list[float]  # ... after the parent's change

    def reached(self) -> list[bool]:
        """Per value: the child read the parent's new value."""
        return [a == p for a, p in zip(self.child_after, self.parent_sets, strict=True)]

    def __str__(self) -> str:
        lines = [f"the child is a separate process: {self.child_pid != self.parent_pid}",
                 f"  {'value (epsilon unless a weight)':<34}{'child at start':>15}"
                 f"{'parent sets':>13}"
                 f"{'child then reads':>18}  reached the child"]
        for name, b, p, a, ok in zip(VALUES, self.child_before, self.parent_sets,
                                     self.child_after, self.reached(), strict=True):
            lines.append(f"  {name:<34}{b:>15.4g}{p:>13.4g}{a:>18.4g}  {'yes' if ok else 'NO'}")
        return "\n".join(lines)


def what_the_child_sees(timeout: float = 120.0) -> ChildView:
    """Start a spawned child with the shared model (an epsilon float attribute, two epsilon
    tensors in shared memory) and an ``mp.Value``; once it has read them, change all of them
    here (a weight in place, one tensor in place, the other replaced by a new tensor) and let
    it read again."""
    ctx = mp.get_context("spawn")
    with torch.random.fork_rng():  # the same initial weights every time: exact output
        torch.manual_seed(0)
        model = create_shared_model(Config(hidden_dim=8, embedding_dim=8))
    model.epsilon = START  # the plan's epsilon: an attribute on the shared model
    model.epsilon_filled = torch.full((), START).share_memory_()
    model.epsilon_rebound = torch.full((), START).share_memory_()
    epsilon_value = ctx.Value("d", START)
    changed, records = ctx.Event(), ctx.Queue()
    child = ctx.Process(target=worker_main, name="reader", daemon=True, args=(
        "reader", records, Fixes(), _reader_main, model, epsilon_value, changed))
    child.start()
    reads = []
    try:
        while len(reads) < 2:
            kind, *rest = records.get(timeout=timeout)
            if kind == ERROR:
                raise RuntimeError(f"the reader failed:\n{rest[1]}")
            if kind == DONE:
                raise RuntimeError("the reader ended before reading twice")
            reads.append(rest)
            if len(reads) == 1:  # the child has read: now publish, the ways the parent can
                with torch.no_grad():
                    model.epsilon = NEW
                    model.qnetwork_local.psi[0].bias[0] = NEW
                    model.epsilon_filled.fill_(NEW)
                    model.epsilon_rebound = torch.tensor(NEW)
                epsilon_value.value = NEW
                changed.set()
    finally:
        child.join(timeout=timeout)
        if child.is_alive():
            child.kill()
            child.join()
    (child_pid, before), (_, after) = reads
    return ChildView(os.getpid(), child_pid, _read(model, epsilon_value), before, after)


# --- epsilon as the actor and the learner saw it, in a run -------------------------------------

def live_series(live, key: str) -> dict[str, list[tuple]]:
    """``"actor.epsilon"`` (any ``<actor|learner>.<field>``) of a ``notebook.Live`` run, shaped
    like ``IssueResults.diagnostics[key]``: variant -> per seed (env steps, values)."""
    kind, field = key.split(".", 1)
    return {v: [(np.asarray(r[kind][0]["env_step"]), np.asarray(r[kind][0][field], dtype=float))
                for r in recs] for v, recs in live.records.items()}
