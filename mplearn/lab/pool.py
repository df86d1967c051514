"""Short runs side by side: a pool of spawned worker processes, one per core, kept for the
life of this process (a notebook's kernel), so that the arms and seeds of a live run run at
once instead of one after the other (with 4 cores, a live run's 2 seeds x 2 arms all at once;
on a 2-core machine notebook 06's "Try it" cell went from 13.5 to 4.9 s).

The pool starts on first use and keeps its workers: each pays torch's import (about 1.5 s)
once per kernel, not once per run. Its workers keep the rules of every mplearn worker
(``core.workers``): one torch thread, SIGINT ignored (Jupyter's interrupt reaches the whole
process group; the parent decides), no printing (a run's record comes back as the return
value), and they exit as soon as this process is gone. An interrupt while waiting stops the
pool, so that its runs do not go on in the background; the next call starts a new one.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

import torch

from mplearn.core.workers import quiet_and_tied_to_parent

_pool: ProcessPoolExecutor | None = None


class PoolWorkerError(RuntimeError):
    """A pool worker raised, or died: the message names its process."""


def cores() -> int:
    """The cores this process may run on (its affinity, not the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _worker_setup() -> None:
    torch.set_num_threads(1)
    quiet_and_tied_to_parent()


def _call(fn: Callable, item):
    """In a worker: ``fn(item)``; an exception comes back naming this process (its traceback
    travels with it as the cause)."""
    try:
        return fn(item)
    except BaseException as e:
        me = mp.current_process()
        raise PoolWorkerError(f"{me.name} (pid {me.pid}) raised {type(e).__name__}: {e}") from e


def _get() -> ProcessPoolExecutor:
    global _pool
    if _pool is None:
        # Workers start as tasks arrive (spawn context: never more than the tasks asked for).
        _pool = ProcessPoolExecutor(max_workers=cores(), mp_context=mp.get_context("spawn"),
                                    initializer=_worker_setup)
    return _pool


def workers() -> list:
    """The pool's worker processes (none before first use or after ``shutdown``)."""
    return [] if _pool is None else _workers_of(_pool)


def _workers_of(pool: ProcessPoolExecutor) -> list:
    return list((pool._processes or {}).values())


def shutdown() -> None:
    """Stop the pool now: its workers are killed (a run in progress is dropped) and reaped."""
    global _pool
    if _pool is None:
        return
    pool, _pool = _pool, None
    processes = _workers_of(pool)
    for p in processes:
        if p.is_alive():
            p.kill()
    pool.shutdown(wait=True, cancel_futures=True)
    for p in processes:
        p.join(timeout=5)


def run_all(fn: Callable, items: Iterable, jobs: int | None = None) -> list:
    """``[fn(item) for item in items]``, in that order, with up to ``jobs`` (default: one per
    core) running at once in the pool's worker processes; ``jobs=1`` (or one item) runs them
    here, one after the other. ``fn`` must be a module-level function of mplearn (spawned
    workers import it by name)."""
    items = list(items)
    jobs = min(cores() if jobs is None else jobs, len(items))
    if jobs <= 1:
        return [fn(item) for item in items]
    pool = _get()
    results: dict = {}
    running: dict = {}  # future -> index
    todo = iter(enumerate(items))
    try:
        while len(results) < len(items):
            for i, item in todo:  # keep ``jobs`` running
                running[pool.submit(_call, fn, item)] = i
                if len(running) >= jobs:
                    break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                results[running.pop(future)] = future.result()
        return [results[i] for i in range(len(items))]
    except BrokenProcessPool as e:
        shutdown()
        raise PoolWorkerError(f"a worker process of the pool died ({e})") from e
    except BaseException:  # KeyboardInterrupt above all: do not leave runs going on
        shutdown()
        raise

