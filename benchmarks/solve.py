"""Solve benchmark: env steps and wall seconds until CartPole-v1's last-20 mean return reaches 475.

    python benchmarks/solve.py [--seeds 0 1 2 3 4] [--mode async] [--steps 50000] [--jobs 1]
                               [--set key=value ...]

Each seed runs the default config (plus any ``--set`` overrides) until the last 20 finished
episodes average at least ``--target`` or ``--steps`` env steps pass. Prints one JSON object.
With ``--jobs N`` seeds run N at a time (each run's processes are single-threaded).
"""

from __future__ import annotations

import argparse
import ast
import json
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import numpy as np

from mplearn import Config, System


def solve(config: Config, target: float, window: int = 20) -> dict:
    """Run until the last-``window`` mean return reaches ``target``; stop there."""
    start = time.perf_counter()
    solved_at = None
    with System(config) as system:
        while not system.done:
            system.poll(timeout=0.05)
            episodes = system.episodes(0)
            last = [e["ret"] for e in episodes[-window:]]
            if len(last) == window and np.mean(last) >= target:
                solved_at = episodes[-1]["env_step"]
                break
        result = system.stop()
    rets = [e["ret"] for e in result.episodes[0]]
    return {"seed": config.seed, "solved": solved_at is not None, "env_steps": solved_at,
            "wall_s": round(time.perf_counter() - start, 2), "episodes": len(rets),
            "best_last20": max((float(np.mean(rets[i - window:i]))
                                for i in range(window, len(rets) + 1)), default=None),
            "updates": result.updates[0]}


def parse_set(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--mode", default="async", choices=["inline", "lockstep", "async"])
    ap.add_argument("--steps", type=int, default=50_000)
    ap.add_argument("--target", type=float, default=475.0)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    args = ap.parse_args(argv)
    overrides = parse_set(args.set)
    configs = [Config(mode=args.mode, total_env_steps=args.steps, seed=s, **overrides)
               for s in args.seeds]
    with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
        runs = list(pool.map(solve, configs, [args.target] * len(configs)))
    solved = [r for r in runs if r["solved"]]
    out = {"benchmark": "solve", "env_id": configs[0].env_id, "mode": args.mode,
           "target": args.target, "max_env_steps": args.steps, "overrides": overrides,
           "solved": f"{len(solved)}/{len(runs)}",
           "median_env_steps": statistics.median(r["env_steps"] for r in solved) if solved
           else None,
           "median_wall_s": statistics.median(r["wall_s"] for r in solved) if solved else None,
           "runs": runs}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
