"""``notebook.live`` with every run in inline mode: the same actor and learner code in one
process, for scenarios stored in ``data/`` as lockstep runs whose short live version would
spend most of a notebook's time budget starting processes (a restart starts two systems per
run). Inline and lockstep compute the same thing for a seed, with one exception: the random
init of a network built in a worker. With ``initial_state`` broken the actor acts with its own
init, drawn in the parent (seeded) inline, in the actor process (unseeded) in lockstep.
"""

from __future__ import annotations

import dataclasses

from mplearn import experiments
from mplearn.notebook import Live
from mplearn.scenarios import scenario


def live(issue_name: str, steps: int, seeds: int = 2, condition: str | None = None) -> Live:
    """Like ``notebook.live(issue_name, steps, seeds, condition)``, in inline mode."""
    sc = scenario(issue_name).scaled(steps=steps, seeds=seeds)
    pair = next((p for p in sc.pairs() if condition in (None, p[0])), None)
    if pair is None:
        raise ValueError(f"condition: {condition!r} is not one of {[p[0] for p in sc.pairs()]}")
    by_name = {v.name: v for v in sc.variants()}
    records = {}
    for label, name in (("fixed", pair[1]), ("broken", pair[2])):
        specs = experiments.run_specs(sc, by_name[name])
        records[label] = [experiments.run_one(dataclasses.replace(
            spec, config=spec.config.replace(mode="inline"))) for spec in specs]
    return Live(issue_name, pair[0], steps, records)
