"""Treasure hunt speed: agent-steps per second of one TreasureWorld, one process, one thread.

Each agent-step is what the actor does per agent: ``observe(i)`` then ``step(i, action)``, with
uniformly random actions (drawn in advance, so their cost is not counted). Prints one JSON
object and saves it (``--out``).

    python benchmarks/treasure.py [--steps 300000] [--repeats 3] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from mplearn.envs.treasure import TreasureWorld
from mplearn.core.metrics import library_versions

GOAL = 50_000  # agent-steps/s on one core


def agent_steps_per_s(n_agents: int, frame_stack: int, steps: int,
                      seed: int = 0) -> tuple[float, float]:
    """(per wall-clock second, per CPU second of this process): on a shared machine the second
    is what one core does when it is not taken away."""
    world = TreasureWorld(n_agents=n_agents, seed=seed, frame_stack=frame_stack)
    actions = np.random.default_rng(seed).integers(4, size=steps).tolist()
    observe, step = world.observe, world.step
    wall, cpu = time.perf_counter(), time.process_time()
    for k, action in enumerate(actions):
        i = k % n_agents
        observe(i)
        step(i, action)
    return steps / (time.perf_counter() - wall), steps / (time.process_time() - cpu)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300_000, help="agent-steps per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per case (best kept)")
    parser.add_argument("--out", default="benchmarks/results/treasure.json")
    args = parser.parse_args(argv)
    cases = []
    for n_agents in (1, 3, 5):
        for frame_stack in (1, 5):
            rates = [agent_steps_per_s(n_agents, frame_stack, args.steps, seed=r)
                     for r in range(args.repeats)]
            cases.append(dict(n_agents=n_agents, frame_stack=frame_stack,
                              agent_steps_per_s=round(max(w for w, _ in rates)),
                              agent_steps_per_cpu_s=round(max(c for _, c in rates)),
                              all_agent_steps_per_s=[round(w) for w, _ in rates]))
    slowest = min(c["agent_steps_per_s"] for c in cases)
    out = dict(benchmark="treasure", what="observe + step per agent-step, random actions, "
               "default world (11x11, radius 2), one process", goal_agent_steps_per_s=GOAL,
               slowest_agent_steps_per_s=slowest, meets_goal=slowest >= GOAL, cases=cases,
               steps=args.steps, repeats=args.repeats, load_average=os.getloadavg(),
               versions=library_versions())
    text = json.dumps(out, indent=1)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    return out


if __name__ == "__main__":
    main()
