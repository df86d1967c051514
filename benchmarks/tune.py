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

sys.path.insert(0, os.path.dirname(__file__))
from solve import solve  # noqa: E402

from mplearn import Config  # noqa: E402


def run(name: str, overrides: dict, seed: int, steps: int) -> dict:
    config = Config(mode="inline", total_env_steps=steps, seed=seed, device="cpu", **overrides)
    return {**solve(config, 475.0), "name": name}


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
    deadline = time.time() + args.budget_s
    with open(args.out, "w") as out, \
            ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(run, name, o, s, args.steps): (name, s)
                   for name, o in grid.items() for s in args.seeds}
        pending = set(futures)
        while pending and time.time() < deadline:
            done, pending = wait(pending, timeout=5, return_when=FIRST_COMPLETED)
            for f in done:
                out.write(json.dumps(f.result()) + "\n")
                out.flush()
        for f in pending:
            print("unfinished", futures[f], file=sys.stderr)
            f.cancel()
        if pending:
            os._exit(1)  # running workers cannot be cancelled: leave without waiting


if __name__ == "__main__":
    main()
