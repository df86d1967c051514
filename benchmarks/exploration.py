"""Exploration on DeepSea: noisy layers against no noise, and noisy layers trained in eval mode.

Every variant acts with epsilon 0 (epsilon_start = epsilon_end = 0), so exploration comes from
the noisy layers alone, or from nothing:

* ``noisy``: Config(noisy=True), every fix on.
* ``no_noise``: Config(noisy=False): greedy from the first step.
* ``noisy_eval_mode``: noisy=True with Fixes().without("train_mode"): the learner trains in
  eval mode (no noise in the loss, no gradient into sigma); the actor still acts with noise.
* ``epsilon`` (reference, not run by default): noisy=False, epsilon 1.0 -> 0.01 over 5000 updates.

Runs are inline (one process each, deterministic for a seed). Per variant: solve rate (a run
is solved when at least 18 of its last 20 episodes reach the treasure), env steps to the first
treasure, final return (mean of the last 20 episodes), the noisy layers' mean |sigma| at the end.
Prints one JSON object and saves it (``--out``).

    python benchmarks/exploration.py [--size 8] [--steps 10000] [--seeds 0 1 2 3 4]
                                     [--variants noisy no_noise noisy_eval_mode] [--jobs 1]
    python benchmarks/exploration.py --merge A.json B.json --out C.json   # one table of both
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

from mplearn import Config, Fixes, System
from mplearn.core.metrics import library_versions
from mplearn.core.networks import NoisyLinear

ENV_ID = "mplearn/DeepSea-v0"
FOUND = 0.5  # an episode whose return exceeds this reached the treasure (+1 - 0.01 at most)
LAST = 20  # episodes in the final window
SOLVED_IN_LAST = 18  # treasures in the final window for a run to count as solved
VARIANTS = {
    "noisy": dict(noisy=True, epsilon_start=0.0, epsilon_end=0.0),
    "no_noise": dict(noisy=False, epsilon_start=0.0, epsilon_end=0.0),
    "noisy_eval_mode": dict(noisy=True, epsilon_start=0.0, epsilon_end=0.0,
                            fixes=Fixes().without("train_mode")),
    "epsilon": dict(noisy=False, epsilon_start=1.0, epsilon_end=0.01),
}


def config_for(variant: str, seed: int, size: int, steps: int) -> Config:
    return Config(env_id=ENV_ID, env_kwargs={"size": size}, mode="inline", device="cpu",
                  seed=seed, total_env_steps=steps, learning_starts=500, log_interval=500,
                  **VARIANTS[variant])


def sigma_mean(net: torch.nn.Module) -> float | None:
    """Mean |sigma| over the noisy layers' weights and biases (None without noisy layers)."""
    values = [torch.cat([m.weight_sigma.detach().abs().reshape(-1), m.bias_sigma.detach().abs()])
              for m in net.modules() if isinstance(m, NoisyLinear)]
    return float(torch.cat(values).mean()) if values else None


def run(variant: str, seed: int, size: int, steps: int) -> dict:
    config = config_for(variant, seed, size, steps)
    start = time.perf_counter()
    with System(config) as system:
        sigma_start = sigma_mean(system.shared_models[0].qnetwork_local)
        result = system.run()
        sigma_end = sigma_mean(system.shared_models[0].qnetwork_local)
    at, returns = result.returns(0)
    found = returns > FOUND
    return dict(variant=variant, seed=seed, episodes=len(returns),
                first_treasure_step=int(at[found][0]) if found.any() else None,
                treasures=int(found.sum()), treasures_last20=int(found[-LAST:].sum()),
                solved=bool(found[-LAST:].sum() >= SOLVED_IN_LAST),
                final_return=result.final_return(0, LAST), sigma_start=sigma_start,
                sigma_end=sigma_end, wall_s=round(time.perf_counter() - start, 1))


def _run(args: tuple) -> dict:
    torch.set_num_threads(1)
    return run(*args)


def summarise(runs: list[dict], variants: list[str]) -> dict:
    table = {}
    for v in variants:
        rs = [r for r in runs if r["variant"] == v]
        firsts = [r["first_treasure_step"] for r in rs if r["first_treasure_step"] is not None]
        table[v] = dict(
            runs=len(rs), solve_rate=float(np.mean([r["solved"] for r in rs])),
            found_rate=float(np.mean([r["first_treasure_step"] is not None for r in rs])),
            first_treasure_step=[r["first_treasure_step"] for r in rs],
            first_treasure_step_median=float(np.median(firsts)) if firsts else None,
            final_return=[round(r["final_return"], 3) for r in rs],
            final_return_mean=float(np.mean([r["final_return"] for r in rs])),
            sigma_end=[r["sigma_end"] for r in rs], wall_s=[r["wall_s"] for r in rs])
    return table


def merge(paths: list[str], out_path: str) -> dict:
    parts = [json.loads(Path(p).read_text()) for p in paths]
    if len({(d["size"], d["steps"]) for d in parts}) != 1:
        raise SystemExit("error: --merge: files differ in size or steps")
    runs = [r for d in parts for r in d["runs"]]
    variants = list(dict.fromkeys(r["variant"] for r in runs))
    out = {k: v for k, v in parts[0].items() if k not in ("runs", "variants", "wall_s")}
    out.update(seeds=sorted({r["seed"] for r in runs}), merged_from=paths,
               variants=summarise(runs, variants), runs=runs)
    return _emit(out, out_path)


def _emit(out: dict, out_path: str) -> dict:
    text = json.dumps(out, indent=1)
    print(text)
    if out_path:
        Path(out_path).parent.mkdir(parents=True, exist_ok=True)
        Path(out_path).write_text(text + "\n")
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8, help="DeepSea size N (N x N grid)")
    parser.add_argument("--steps", type=int, default=10_000, help="env steps per run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--variants", nargs="+", default=["noisy", "no_noise", "noisy_eval_mode"],
                        choices=list(VARIANTS))
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (one process each)")
    parser.add_argument("--out", default="benchmarks/results/exploration.json")
    parser.add_argument("--merge", nargs="+", metavar="FILE",
                        help="summarise the runs of earlier result files (same size and steps)")
    args = parser.parse_args(argv)
    if args.merge:
        return merge(args.merge, args.out)
    for v in args.variants:  # fail on a bad value before any run starts
        config_for(v, args.seeds[0], args.size, args.steps)
    tasks = [(v, s, args.size, args.steps) for s in args.seeds for v in args.variants]
    start = time.perf_counter()
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs, mp_context=mp.get_context("spawn")) as pool:
            runs = list(pool.map(_run, tasks))
    else:
        runs = [_run(t) for t in tasks]
    base = config_for(args.variants[0], 0, args.size, args.steps).to_dict()
    out = dict(benchmark="exploration", env_id=ENV_ID, size=args.size, steps=args.steps,
               seeds=args.seeds, solved_means=f"at least {SOLVED_IN_LAST} of the last {LAST} "
               "episodes reach the treasure", optimal_return=0.99,
               random_policy_treasure_per_episode=2.0 ** -args.size,
               variants=summarise(runs, args.variants), runs=runs,
               config={k: v for k, v in base.items() if k not in ("noisy", "fixes")},
               wall_s=round(time.perf_counter() - start, 1), jobs=args.jobs,
               load_average=os.getloadavg(), versions=library_versions())
    return _emit(out, args.out)


if __name__ == "__main__":
    main()
