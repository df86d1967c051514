"""Tuning sweep behind the defaults: every configuration of a grid over several seeds, in
parallel, each run until CartPole-v1's last-20 mean reaches 475 (inline mode, cpu).

    python benchmarks/tune.py GRID.json --seeds 0 1 2 --jobs 15 [--budget-s 560] [--out FILE]

GRID.json maps a name to config overrides. Writes one JSON line per finished run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path

from mplearn import Config
from mplearn.bench.solve import pool_worker_init, solve


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("grid")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=50_000)
    ap.add_argument("--jobs", type=int, default=os.cpu_count())
    ap.add_argument("--budget-s", type=float, default=float("inf"))
    ap.add_argument("--out", default="tune.jsonl")
    args = ap.parse_args()
    grid = json.loads(Path(args.grid).read_text())
    # Every config is checked before any process starts.
    configs = {(name, s): Config(mode="inline", total_env_steps=args.steps, seed=s,
                                 device="cpu", **o)
               for name, o in grid.items() for s in args.seeds}
    deadline = time.time() + args.budget_s
    with open(args.out, "w") as out, \
            ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn"),
                                initializer=pool_worker_init) as pool:
        futures = {pool.submit(solve, config, 475.0): key for key, config in configs.items()}
        pending = set(futures)
        while pending and time.time() < deadline:
            done, pending = wait(pending, timeout=5, return_when=FIRST_COMPLETED)
            for f in done:
                out.write(json.dumps({**f.result(), "name": futures[f][0]}) + "\n")
                out.flush()
        for f in pending:
            print("unfinished", futures[f], file=sys.stderr)
            f.cancel()
        if pending:
            os._exit(1)  # running workers cannot be cancelled: leave without waiting


if __name__ == "__main__":
    main()
