"""Peers: mplearn against Stable-Baselines3 QR-DQN and DQN on CartPole-v1, same machine, same run.

Every (system, seed) run is one single-threaded process; the runs are interleaved (seed by seed,
each system in turn), so load on the machine falls on every system alike. Each run goes the
full ``--steps`` env steps and keeps every finished episode's (env step, wall second, return).
Per system: the seeds whose last-20-episode mean return reaches ``--target`` within the steps,
the env steps and wall seconds to get there (median over the seeds that do), the last-20 mean
at the end, and wall seconds per 50k env steps.

SB3 runs the RL Zoo's tuned CartPole-v1 hyperparameters (``SB3_ZOO``); mplearn its defaults.
Stable-Baselines3 and sb3-contrib are optional: ``pip install -r benchmarks/requirements.txt``.
"""

from __future__ import annotations

import importlib
import importlib.util
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import numpy as np

from mplearn.bench.common import machine, parser, positive
from mplearn.bench.solve import pool_worker_init
from mplearn.core.config import Config
from mplearn.core.system import System

ENV_ID = "CartPole-v1"
WINDOW = 20  # episodes in the solve criterion
PER = 50_000  # wall seconds are also given per this many env steps

# rl-baselines3-zoo hyperparams/{qrdqn,dqn}.yml, CartPole-v1 (QR-DQN adds n_quantiles=10).
SB3_ZOO = dict(learning_rate=2.3e-3, batch_size=64, buffer_size=100_000, learning_starts=1000,
               gamma=0.99, target_update_interval=10, train_freq=256, gradient_steps=128,
               exploration_fraction=0.16, exploration_final_eps=0.04)
SYSTEMS = ("sb3-qrdqn", "sb3-dqn", "mplearn-inline", "mplearn-async")
REQUIREMENTS = ("stable_baselines3", "sb3_contrib")


def check_requirements(systems: list[str]) -> None:
    """ValueError in one line when an SB3 system is asked for and SB3 is not installed."""
    if not any(s.startswith("sb3-") for s in systems):
        return
    missing = [m for m in REQUIREMENTS if importlib.util.find_spec(m) is None]
    if missing:
        raise ValueError(f"peers: {', '.join(missing)} not installed; "
                         "pip install -r benchmarks/requirements.txt")


def run_sb3(algo: str, seed: int, steps: int, start: float
            ) -> tuple[list[tuple[int, float, float]], int]:
    """One SB3 run: its episodes (env step, wall s since ``start``, return), gradient steps."""
    from sb3_contrib import QRDQN  # lazy: optional dependencies
    from stable_baselines3 import DQN
    from stable_baselines3.common.callbacks import BaseCallback

    episodes: list[tuple[int, float, float]] = []

    class Episodes(BaseCallback):
        def _on_step(self) -> bool:
            for info in self.locals["infos"]:
                if "episode" in info:  # added by the Monitor wrapper SB3 puts around the env
                    episodes.append((self.num_timesteps, time.perf_counter() - start,
                                     float(info["episode"]["r"])))
            return True

    cls, net = (QRDQN, dict(net_arch=[256, 256], n_quantiles=10)) if algo == "qrdqn" \
        else (DQN, dict(net_arch=[256, 256]))
    model = cls("MlpPolicy", ENV_ID, policy_kwargs=net, seed=seed, device="cpu", verbose=0,
                **SB3_ZOO)
    model.learn(total_timesteps=steps, callback=Episodes())
    return episodes, int(model._n_updates)


def run_mplearn(mode: str, seed: int, steps: int, start: float
                ) -> tuple[list[tuple[int, float, float]], int]:
    """One mplearn run, default config: episodes (env step, wall s since ``start``, return)
    and updates. An episode's wall time is when the parent received it, as solve.py counts."""
    episodes: list[tuple[int, float, float]] = []
    with System(Config(mode=mode, total_env_steps=steps, seed=seed)) as system:
        while not system.done:
            system.poll(timeout=0.05)
            now = time.perf_counter() - start
            episodes += [(e["env_step"], now, float(e["ret"]))
                         for e in system.episodes(0)[len(episodes):]]
        result = system.stop()
    episodes += [(e["env_step"], time.perf_counter() - start, float(e["ret"]))
                 for e in result.episodes[0][len(episodes):]]
    return episodes, int(result.updates[0])


def run_one(system: str, seed: int, steps: int, target: float) -> dict:
    """Process target: one (system, seed) run and what the table needs from it."""
    load = machine()["load_avg_1m"]
    if system.startswith("sb3-"):  # import before the clock starts, as mplearn is imported
        importlib.import_module("sb3_contrib")
        start = time.perf_counter()
        episodes, updates = run_sb3(system.removeprefix("sb3-"), seed, steps, start)
    else:
        start = time.perf_counter()
        episodes, updates = run_mplearn(system.removeprefix("mplearn-"), seed, steps, start)
    wall = time.perf_counter() - start
    rets = [r for _, _, r in episodes]
    solved = next(((s, t) for i, (s, t, _) in enumerate(episodes) if i + 1 >= WINDOW
                   and np.mean(rets[i + 1 - WINDOW:i + 1]) >= target), None)
    return {"system": system, "seed": seed, "solved": solved is not None,
            "env_steps_to_solve": solved[0] if solved else None,
            "wall_s_to_solve": round(solved[1], 2) if solved else None,
            "last20_at_end": round(float(np.mean(rets[-WINDOW:])), 1) if rets else None,
            "wall_s": round(wall, 2), "wall_s_per_50k": round(wall * PER / steps, 2),
            "episodes": len(rets), "updates": updates, "load_avg_1m_at_start": load}


def _median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarize(runs: list[dict], systems: list[str]) -> dict:
    table = {}
    for name in systems:
        rs = [r for r in runs if r["system"] == name]
        table[name] = {
            "solved": f"{sum(r['solved'] for r in rs)}/{len(rs)}",
            "median_env_steps_to_solve": _median([r["env_steps_to_solve"] for r in rs]),
            "median_wall_s_to_solve": _median([r["wall_s_to_solve"] for r in rs]),
            "median_last20_at_end": _median([r["last20_at_end"] for r in rs]),
            "last20_at_end": [r["last20_at_end"] for r in rs],
            "median_wall_s_per_50k": _median([r["wall_s_per_50k"] for r in rs]),
        }
    return table


def run(systems: list[str], seeds: list[int], steps: int, target: float, jobs: int) -> dict:
    started_on = machine()
    # Interleaved: seed by seed, every system in turn.
    jobs_list = [(name, seed) for seed in seeds for name in systems]
    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn"),
                             initializer=pool_worker_init) as pool:
        runs = list(pool.map(run_one, [n for n, _ in jobs_list], [s for _, s in jobs_list],
                             [steps] * len(jobs_list), [target] * len(jobs_list)))
    return {"benchmark": "peers", "machine": started_on, "env_id": ENV_ID, "steps": steps,
            "target": target, "window": WINDOW, "seeds": seeds, "jobs": jobs,
            "sb3_hyperparameters": SB3_ZOO, "table": summarize(runs, systems), "runs": runs,
            "load_avg_1m_after": machine()["load_avg_1m"]}


def build(argv: list[str]):
    ap = parser("peers", __doc__)
    ap.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=SYSTEMS)
    ap.add_argument("--seeds", type=int, nargs="+", default=[11, 12, 13, 14, 15])
    ap.add_argument("--steps", type=int, default=PER, help="env steps per run")
    ap.add_argument("--target", type=float, default=475.0, help="last-20 mean that solves")
    ap.add_argument("--jobs", type=int, default=1, help="runs at a time, one process each")
    args = ap.parse_args(argv)
    positive("steps", args.steps)
    positive("jobs", args.jobs)
    check_requirements(args.systems)
    for seed in args.seeds:  # every config is checked before anything runs
        Config(total_env_steps=args.steps, seed=seed)
    return lambda: run(args.systems, args.seeds, args.steps, args.target, args.jobs)
