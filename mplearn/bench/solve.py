"""Solve: env steps and wall seconds until CartPole-v1's last-20 mean return reaches 475.

Each seed runs the default config (plus any ``--set`` overrides) until the last 20 finished
episodes of agent 0 average at least ``--target``, or ``--steps`` env steps pass. With
``--jobs N`` seeds run N at a time, each in its own single-threaded process.
"""

from __future__ import annotations

import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import numpy as np
import torch

from mplearn.bench.common import machine, parse_set, parser, positive
from mplearn.core.config import MODES, Config
from mplearn.core.system import System
from mplearn.core.workers import exit_with_parent

WINDOW = 20  # episodes in the solve criterion


def solve(config: Config, target: float, window: int = WINDOW) -> dict:
    """Run until the last-``window`` mean return reaches ``target``; stop there."""
    load = os.getloadavg()[0]  # other work on the machine slows a run's wall time
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
            "updates": result.updates[0], "load_avg_1m_at_start": round(load, 2)}


def pool_worker_init() -> None:
    """A pool worker runs single-threaded and dies with the benchmark process."""
    torch.set_num_threads(1)
    exit_with_parent()  # the same guard as every System worker


def solve_seeds(configs: list[Config], target: float, jobs: int = 1) -> list[dict]:
    if jobs == 1:
        return [solve(c, target) for c in configs]
    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn"),
                             initializer=pool_worker_init) as pool:
        return list(pool.map(solve, configs, [target] * len(configs)))


def summarize(runs: list[dict], configs: list[Config], target: float, overrides: dict,
              started_on: dict) -> dict:
    solved = [r for r in runs if r["solved"]]
    return {"benchmark": "solve", "machine": started_on, "env_id": configs[0].env_id,
            "mode": configs[0].mode, "target": target,
            "max_env_steps": configs[0].total_env_steps, "overrides": overrides,
            "solved": f"{len(solved)}/{len(runs)}",
            "median_env_steps": statistics.median(r["env_steps"] for r in solved) if solved
            else None,
            "median_wall_s": statistics.median(r["wall_s"] for r in solved) if solved else None,
            "runs": runs}


def build(argv: list[str]):
    ap = parser("solve", __doc__)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--mode", default="async", choices=MODES)
    ap.add_argument("--steps", type=int, default=50_000, help="at most, per seed")
    ap.add_argument("--target", type=float, default=475.0)
    ap.add_argument("--jobs", type=int, default=1, help="seeds run at a time")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides")
    args = ap.parse_args(argv)
    positive("jobs", args.jobs)
    overrides = parse_set(args.set)
    configs = [Config(mode=args.mode, total_env_steps=args.steps, seed=s, **overrides)
               for s in args.seeds]

    def job() -> dict:
        started_on = machine()
        runs = solve_seeds(configs, args.target, args.jobs)
        return summarize(runs, configs, args.target, overrides, started_on)

    return job
