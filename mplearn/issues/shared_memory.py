"""Shared-memory helpers for the issues whose experiments race a spawned writer process
against a reader here (replay_by_name, versioned_publish, write_before_publish): a process
start costs seconds on a small machine, so both variants of an experiment share ONE writer."""


from __future__ import annotations

import multiprocessing as mp
from contextlib import contextmanager

from mplearn.core.fixes import Fixes
from mplearn.core.workers import worker_main

VARIANTS = ("fixed", "broken")


@contextmanager
def _writer(target, *args):
    """A spawned worker running ``target(*args)``; stopped and joined on exit. Yields it and
    its records queue (where a failure's traceback arrives)."""
    ctx = mp.get_context("spawn")
    records = ctx.Queue()
    process = ctx.Process(target=worker_main, args=("writer", records, Fixes(), target, *args),
                          daemon=True)
    process.start()
    try:
        yield process, records
    finally:
        process.join(timeout=30)
        if process.is_alive():
            process.kill()
            process.join()
        records.close()
        records.join_thread()


def _raise_if_dead(process, records) -> None:
    if not process.is_alive() and process.exitcode != 0:
        raise RuntimeError(f"the writer process failed: {records.get(timeout=5)}")
