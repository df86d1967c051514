"""lab.pool: a notebook's short runs side by side in spawned workers, one per core.

Results come back in order and equal to running here; a worker's exception comes back naming
its process; a worker that dies is named too, and the pool is gone with it; workers take one
torch thread (that they never outlive their parent: test_parent_death.py); a live run gives
the same records either way.
"""

from __future__ import annotations

import math
import os
import time

import pytest
import torch

from mplearn.lab import notebook, pool


@pytest.fixture(autouse=True)
def no_pool_left():
    yield
    pool.shutdown()
    assert pool.workers() == []


def test_results_come_back_in_order_and_equal_to_a_run_here():
    items = [200, 3, 50, 7, 120]
    assert pool.run_all(math.factorial, items, jobs=2) == [math.factorial(n) for n in items]
    assert 1 <= len(pool.workers()) <= 2
    assert all(p.pid != os.getpid() for p in pool.workers())


def test_one_job_runs_here_without_a_pool():
    assert pool.run_all(math.factorial, [4, 5], jobs=1) == [24, 120]
    assert pool.workers() == []


def test_workers_take_one_torch_thread():
    # _threads is imported by name in the workers (they get this process's sys.path)
    assert pool.run_all(_threads, [0, 1], jobs=2) == [1, 1]
    assert torch.get_num_threads() >= 1  # this process keeps its own


def _threads(_):
    return torch.get_num_threads()


def test_an_exception_in_a_worker_names_its_process():
    with pytest.raises(pool.PoolWorkerError, match=r"SpawnProcess-\d+ \(pid \d+\) raised "
                                                   r"ValueError: invalid literal") as info:
        pool.run_all(int, ["1", "not a number"], jobs=2)
    assert isinstance(info.value.__cause__, ValueError) or "ValueError" in str(info.value)
    assert pool.workers() == []  # the pool was stopped with it; the next call starts another
    assert pool.run_all(int, ["1", "2"], jobs=2) == [1, 2]


def test_a_worker_that_dies_is_reported_and_the_pool_is_gone():
    with pytest.raises(pool.PoolWorkerError, match="died"):
        pool.run_all(os._exit, [3, 3], jobs=2)
    assert pool.workers() == []


def test_a_live_run_gives_the_same_records_in_the_pool_and_here():
    args = dict(steps=600, seeds=1, mode="inline",
                overrides={"learning_starts": 100, "log_interval": 20})
    here = notebook.live("optimizer_binding", jobs=1, **args)
    side_by_side = notebook.live("optimizer_binding", jobs=2, **args)
    assert here.table() == side_by_side.table()
    for v in ("fixed", "broken"):
        (a,), (b,) = here.records[v], side_by_side.records[v]
        assert a["status"] == b["status"] == "ok"
        assert a["episodes"] == b["episodes"] and a["learner"] == b["learner"]
        assert a["updates"] == b["updates"] and a["updates"][0] > 0


def test_an_interrupt_while_waiting_stops_the_runs_at_once():
    """Jupyter's interrupt (KeyboardInterrupt in the kernel) must not leave runs going on in
    the background: the pool's workers are killed and the next call starts new ones."""
    import signal
    import threading

    # A real SIGINT, as Jupyter's interrupt sends (it wakes a blocked wait; interrupt_main
    # would only set a flag that the waiting thread reads after its wait). Python's own
    # handler, as in a kernel: a run started in the background by a shell inherits SIGINT
    # ignored, and Python then installs none.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT)).start()
    t0 = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            pool.run_all(time.sleep, [60, 60], jobs=2)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert time.monotonic() - t0 < 15
    assert pool.workers() == []
    assert pool.run_all(math.factorial, [3, 4], jobs=2) == [6, 24]
