"""Throughput benchmark: env steps/s and updates/s of inline vs async on the same config.

    python benchmarks/throughput.py [--agents 1 2] [--steps 6000] [--set key=value ...]

Inline mode also gives the per-env-step cost of acting, ``a``, and of learning, ``b`` (timed
in the same loop). One actor and one learner overlapping perfectly would run at
``(a + b) / max(a, b)`` times the inline speed (with several learners on two cores the bound
also depends on the cores); the JSON reports the measured speedup against that bound.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from solve import parse_set  # noqa: E402

from mplearn import Config, System  # noqa: E402


def time_inline(config: Config) -> dict:
    """Run inline; the system times the actor's and the learners' share of each round."""
    with System(config) as system:
        start = time.perf_counter()
        while not system.done:
            system.poll()
        wall = time.perf_counter() - start
        updates, seconds = sum(system.updates), system.inline_seconds
    steps = config.total_env_steps
    return {"wall_s": wall, "env_steps_per_s": steps * config.n_agents / wall,
            "updates_per_s": updates / wall, "act_ms_per_step": 1e3 * seconds["act"] / steps,
            "learn_ms_per_step": 1e3 * seconds["learn"] / steps}


def time_async(config: Config) -> dict:
    """Time async mode from the first env step (process start-up excluded)."""
    with System(config) as system:
        while system.env_steps == 0:
            system.poll(timeout=0.01)
        start, steps0, updates0 = time.perf_counter(), system.env_steps, sum(system.updates)
        while not system.done:
            system.poll(timeout=0.01)
        wall = time.perf_counter() - start
        steps, updates = system.env_steps - steps0, sum(system.updates) - updates0
        lag = system.stop().summary["policy_lag_mean"]
    return {"wall_s": wall, "env_steps_per_s": steps * config.n_agents / wall,
            "updates_per_s": updates / wall, "policy_lag_mean": lag}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agents", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    args = ap.parse_args(argv)
    # Learning from the start keeps the run one phase, so a and b describe all of it.
    overrides = {"learning_starts": 100, "device": "cpu", **parse_set(args.set)}
    out = {"benchmark": "throughput", "cpus": os.cpu_count(), "overrides": overrides,
           "steps": args.steps, "agents": {}}
    for n in args.agents:
        base = Config(n_agents=n, total_env_steps=args.steps, **overrides)
        inline = time_inline(base.replace(mode="inline"))
        asynch = time_async(base.replace(mode="async"))
        a, b = inline["act_ms_per_step"], inline["learn_ms_per_step"]
        # Both runs do the same updates per env step, so env-step rates compare the two.
        speedup = asynch["env_steps_per_s"] / inline["env_steps_per_s"]
        ideal = (a + b) / max(a, b)
        out["agents"][n] = {"inline": inline, "async": asynch, "speedup": speedup,
                            "ideal_speedup": ideal, "ratio_to_ideal": speedup / ideal}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
