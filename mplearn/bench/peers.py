"""Peers: mplearn against Stable-Baselines3 QR-DQN and DQN on CartPole-v1, same machine, same run.

Every (system, seed) run is a fresh single-threaded process; the runs are interleaved (seed by
seed, each system in turn), so load on the machine falls on every system alike. Each run goes
the full ``--steps`` env steps and keeps every finished episode's (env step, wall second,
return). Per system: the seeds whose last-20-episode mean return reaches ``--target`` within
the steps, the env steps and wall seconds to get there (median over the seeds that do), the
last-20 mean at the end, and wall seconds per 50k env steps.

With ``--out FILE.jsonl`` each run is appended to the file as one JSON line the moment it
finishes, runs already in the file are skipped (a killed benchmark resumes where it stopped),
and the table is computed from the file; ``--summary-only`` prints the table without running.

SB3 runs the RL Zoo's tuned CartPole-v1 hyperparameters (``SB3_ZOO``); mplearn its defaults.
Stable-Baselines3 and sb3-contrib are optional: ``pip install -r benchmarks/requirements.txt``.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import resource
import statistics
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch

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
GOAL_SOLVED = 4  # of 5 seeds: the goal, with wall seconds to solve <= QR-DQN's


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


def solved_at(episodes: list[tuple[int, float, float]], target: float
              ) -> tuple[int, float] | None:
    """(env step, wall s) of the first episode whose last-``WINDOW`` mean reaches ``target``."""
    rets = np.array([r for _, _, r in episodes])
    if len(rets) < WINDOW:
        return None
    means = np.convolve(rets, np.ones(WINDOW) / WINDOW, mode="valid")  # means[i]: ends at i+W-1
    hits = np.flatnonzero(means >= target)
    if not len(hits):
        return None
    step, wall, _ = episodes[hits[0] + WINDOW - 1]
    return step, wall


def cpu_seconds() -> float:
    """CPU seconds of this process and its finished children (an async run's actor and
    learner). On a loaded machine wall seconds measure the scheduler as much as the system;
    CPU seconds do not."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def run_one(system: str, seed: int, steps: int, target: float, label: str) -> dict:
    """Process target: one (system, seed) run and what the table needs from it."""
    load_start = round(os.getloadavg()[0], 2)
    if system.startswith("sb3-"):  # import before the clock starts, as mplearn is imported
        importlib.import_module("sb3_contrib")
        cpu_start = cpu_seconds()
        start = time.perf_counter()
        episodes, updates = run_sb3(system.removeprefix("sb3-"), seed, steps, start)
    else:
        cpu_start = cpu_seconds()
        start = time.perf_counter()
        episodes, updates = run_mplearn(system.removeprefix("mplearn-"), seed, steps, start)
    wall = time.perf_counter() - start
    cpu = cpu_seconds() - cpu_start
    rets = [r for _, _, r in episodes]
    solved = solved_at(episodes, target)
    return {"system": system, "seed": seed, "steps": steps, "target": target, "label": label,
            "solved": solved is not None,
            "env_steps_to_solve": solved[0] if solved else None,
            "wall_s_to_solve": round(solved[1], 2) if solved else None,
            "last20_at_end": round(float(np.mean(rets[-WINDOW:])), 1) if rets else None,
            "wall_s": round(wall, 2), "wall_s_per_50k": round(wall * PER / steps, 2),
            "cpu_s": round(cpu, 2), "episodes": len(rets), "updates": updates,
            "torch_threads": torch.get_num_threads(),  # this process's; workers set their own
            "load_avg_1m_at_start": load_start, "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
            "machine": machine(),
            "curve": [[s, round(t, 2), r] for s, t, r in episodes]}  # every finished episode


def read_runs(path: Path) -> list[dict]:
    """The runs in a results file; a line cut short by a killed benchmark is ignored."""
    if not path.exists():
        return []
    runs = []
    for line in path.read_text().splitlines():
        try:
            runs.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return runs


def append_run(path: Path, run: dict) -> None:
    """One JSON line, on disk before the next run is waited for."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        if f.tell() and not path.read_bytes().endswith(b"\n"):
            f.write("\n")  # after a line cut short by a kill
        f.write(json.dumps(run) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarize(runs: list[dict], systems: list[str]) -> dict:
    table = {}
    for name in systems:
        rs = sorted((r for r in runs if r["system"] == name), key=lambda r: r["seed"])
        table[name] = {
            "solved": f"{sum(r['solved'] for r in rs)}/{len(rs)}",
            "seeds": [r["seed"] for r in rs],
            "median_env_steps_to_solve": _median([r["env_steps_to_solve"] for r in rs]),
            "median_wall_s_to_solve": _median([r["wall_s_to_solve"] for r in rs]),
            "median_last20_at_end": _median([r["last20_at_end"] for r in rs]),
            "last20_at_end": [r["last20_at_end"] for r in rs],
            "median_wall_s_per_50k": _median([r["wall_s_per_50k"] for r in rs]),
            # CPU seconds of every process of a run (runs from before they were kept: None)
            "median_cpu_s_per_50k": _median([r["cpu_s"] * PER / r["steps"]
                                             for r in rs if r.get("cpu_s") is not None]),
            "median_load_avg_1m": _median([r.get("load_avg_1m_at_start") for r in rs]
                                          + [r.get("load_avg_1m_at_end") for r in rs]),
        }
    return table


def goal(table: dict) -> dict:
    """The issue's goal per mplearn system: >= 4 solved seeds and a median wall time to solve
    no longer than SB3 QR-DQN's (over the seeds each solves); None where a side lacks runs."""
    peer = table.get("sb3-qrdqn", {}).get("median_wall_s_to_solve")
    out = {}
    for name in (n for n in table if n.startswith("mplearn-")):
        row = table[name]
        solved = int(row["solved"].split("/")[0])
        ours = row["median_wall_s_to_solve"]
        faster = None if peer is None or ours is None else ours <= peer
        out[name] = {"solved_enough": solved >= GOAL_SOLVED, "wall_s_to_solve_le_qrdqn": faster,
                     "met": solved >= GOAL_SOLVED and bool(faster)}
    return out


def run_pending(pending: list[tuple[str, int]], steps: int, target: float, jobs: int,
                label: str, out: Path | None) -> tuple[list[dict], list[dict]]:
    """Run ``pending`` in order, ``jobs`` at a time, each in a fresh process; each finished run
    is appended to ``out`` at once. Returns (runs, failures); a failure is not written, so a
    rerun retries it."""
    runs, failed = [], []
    if not pending:
        return runs, failed
    # A fresh spawned process per run (max_tasks_per_child=1): no state carried from one run to
    # the next. Python >= 3.9 pool workers are not daemonic, so mplearn-async can start its
    # actor and learner inside one.
    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn"), initializer=pool_worker_init,
                             max_tasks_per_child=1) as pool:
        futures = {pool.submit(run_one, name, seed, steps, target, label): (name, seed)
                   for name, seed in pending}  # submitted, so started, in interleaved order
        for future in as_completed(futures):
            name, seed = futures[future]
            try:
                run = future.result()
            except Exception as e:  # noqa: BLE001  (kept as a result; the others go on)
                failed.append({"system": name, "seed": seed, "error": repr(e)[:500]})
                continue
            if out is not None:
                append_run(out, run)
            runs.append(run)
    return runs, failed


def run(systems: list[str], seeds: list[int], steps: int, target: float, jobs: int,
        out: Path | None = None, label: str = "", summary_only: bool = False) -> dict:
    started_on = machine()
    order = [(name, seed) for seed in seeds for name in systems]
    # Interleaved, and rotated by one system per seed: with --jobs 2 every system then runs
    # next to each of the others, not always next to the same one.
    rotated = [(systems[(i + j) % len(systems)], seed)
               for i, seed in enumerate(seeds) for j in range(len(systems))]
    matches = lambda r: (r.get("steps") == steps and r.get("target") == target  # noqa: E731
                         and (r.get("system"), r.get("seed")) in order)
    earlier = {(r["system"], r["seed"]): r
               for r in (read_runs(out) if out is not None else []) if matches(r)}
    pending = [] if summary_only else [key for key in rotated if key not in earlier]
    new, failed = run_pending(pending, steps, target, jobs, label, out)
    by_key = {**earlier, **{(r["system"], r["seed"]): r for r in new}}
    runs = [by_key[k] for k in order if k in by_key]
    table = summarize(runs, systems)
    return {"benchmark": "peers", "machine": started_on, "label": label, "env_id": ENV_ID,
            "steps": steps, "target": target, "window": WINDOW, "seeds": seeds, "jobs": jobs,
            "out": str(out) if out is not None else None, "runs_from_file": len(earlier),
            "runs_now": len(new), "failed": failed,
            "missing": [list(k) for k in order if k not in by_key],
            "sb3_hyperparameters": SB3_ZOO, "table": table, "goal": goal(table),
            "runs": [{k: v for k, v in r.items() if k != "curve"} for r in runs],
            "load_avg_1m_after": machine()["load_avg_1m"]}


def build(argv: list[str]):
    ap = parser("peers", __doc__)
    ap.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=SYSTEMS)
    ap.add_argument("--seeds", type=int, nargs="+", default=[11, 12, 13, 14, 15])
    ap.add_argument("--steps", type=int, default=PER, help="env steps per run")
    ap.add_argument("--target", type=float, default=475.0, help="last-20 mean that solves")
    ap.add_argument("--jobs", type=int, default=1, help="runs at a time, one process each")
    ap.add_argument("--out", type=Path, default=None,
                    help="results file (JSON lines): each run appended as it finishes, runs "
                         "already there skipped, the table read from it "
                         "(e.g. benchmarks/results/peers_2core.jsonl)")
    ap.add_argument("--label", default=f"{os.cpu_count()}core",
                    help="the machine's name, kept with every run")
    ap.add_argument("--summary-only", action="store_true",
                    help="print the table from --out without running anything")
    args = ap.parse_args(argv)
    positive("steps", args.steps)
    positive("jobs", args.jobs)
    if args.summary_only and args.out is None:
        raise ValueError("--summary-only: needs --out (the results file to read)")
    if args.out is not None and args.out.is_dir():
        raise ValueError(f"--out: {args.out} is a directory, expected a .jsonl file")
    if not args.summary_only:
        check_requirements(args.systems)
    for seed in args.seeds:  # every config is checked before anything runs
        Config(total_env_steps=args.steps, seed=seed)
    return lambda: run(args.systems, args.seeds, args.steps, args.target, args.jobs,
                       args.out, args.label, args.summary_only)
