"""What every worker process does before and after its job.

A worker: runs single-threaded (two cores shared by several processes: torch's default thread
count per process oversubscribes them), ignores SIGINT (the parent decides when to stop), never
prints (it sends records to the parent), dies with its parent, and reports its exception to the
parent as (process name, traceback) instead of dying silently.
"""

from __future__ import annotations

import atexit
import multiprocessing as mp
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from contextlib import contextmanager
from multiprocessing.connection import wait

import torch

from mplearn.core.channels import Stopped
from mplearn.core.fixes import Fixes

# Record kinds sent from workers to the parent.
DONE, ERROR = "done", "error"


def exit_with_parent() -> None:
    """Exit as soon as the parent process is gone (a killed kernel must not leave workers)."""
    parent = mp.parent_process()
    if parent is None:
        return

    def watch() -> None:
        wait([parent.sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def quiet_and_tied_to_parent() -> None:
    """What every worker does besides its thread count: ignore SIGINT (Jupyter's interrupt
    reaches the whole process group; the parent decides), never print, exit with the parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    exit_with_parent()
    devnull = open(os.devnull, "w")  # noqa: SIM115  (lives as long as the process)
    sys.stdout = sys.stderr = devnull


def worker_main(name: str, records, fixes: Fixes, target: Callable, *args) -> None:
    """Process entry point: set the worker up, run ``target(*args, records=records)``."""
    # FIX(single_thread): one thread per worker; the workers share the cores.
    if fixes.single_thread:
        torch.set_num_threads(1)
    else:  # torch's default: one thread per core in every process
        pass
    quiet_and_tied_to_parent()
    try:
        target(*args, records=records)
    except Stopped:
        pass  # the parent asked every worker to stop
    except BaseException:
        records.put((ERROR, name, traceback.format_exc()))
        _exit(1)
    records.put((DONE, name))
    _exit(0)


def _exit(code: int) -> None:
    """Run the exit handlers (they flush the records queue and stop what the target started),
    then leave without tearing the interpreter down: tearing down torch's modules took 1.5 to
    2.5 s per worker on 2 cores, and System.stop() waited for it."""
    atexit._run_exitfuncs()
    os._exit(code)


@contextmanager
def torch_threads(n: int):
    """Run a block with ``n`` intra-op threads (workers run with 1), then restore."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
