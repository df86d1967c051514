"""Nothing a run puts in /dev/shm outlives the processes using it, even when they all die at once.

A run's replay segments (``psm_*``) and named semaphores (``sem.mp-*``) need their names only
until every worker has opened them; start() unlinks them then (the processes keep using them),
so that no name is left for anybody to clean up when the whole process group dies: a SIGKILL to
the group, a terminal hang-up (SIGHUP to the group), a Jupyter kernel killed. Ctrl-C in a
notebook cell keeps the run's objects alive in the saved traceback; they hold no name either.

A run's entries are found by inode: the ones the processes of the test map while they run
(``ShmWatch`` in conftest.py). Entries of other programs on the machine never count.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import ShmWatch, alive, descendants, mapped_shm_inodes, shm_inodes

from mplearn import Config, System

pytestmark = pytest.mark.usefixtures("no_leaks")

ROOT = Path(__file__).resolve().parent.parent
LIMIT_S = 180  # start-up on a loaded two-core machine takes a while
GRACE_S = 3.0  # a killed process's mappings go when the kernel has reaped it
SMALL = dict(n_agents=2, total_env_steps=200_000, learning_starts=32, batch_size=16,
             buffer_size=2_000, hidden_dim=16, embedding_dim=16, device="cpu", max_update_lag=50)

# A run in a process group of its own; it says when it is learning, then runs on.
RUNNING = f"""
import os
from mplearn import Config, System
if __name__ == "__main__":
    system = System(Config(**{SMALL!r}, mode="async")).start()
    while min(system.updates) < 5:
        system.poll(timeout=0.1)
    print(" ".join(str(p.pid) for p in system._processes), flush=True)
    system.run()
"""

# The same in a notebook cell: started, learning, then left running.
CELL = f"""
from mplearn import Config, System
system = System(Config(**{SMALL!r}, mode="async")).start()
while min(system.updates) < 5:
    system.poll(timeout=0.1)
print(" ".join(str(p.pid) for p in system._processes))
"""


def named(inodes: set[int], before: dict[str, int]) -> list[str]:
    """Entries of /dev/shm with one of these inodes that were not there before."""
    return sorted(n for n, i in shm_inodes().items() if i in inodes and before.get(n) != i)


def settle(check, timeout: float = GRACE_S):
    deadline = time.monotonic() + timeout
    while (left := check()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


@pytest.mark.parametrize("mode", ["inline", "lockstep", "async"])
def test_no_name_is_left_once_start_returns(mode):
    before = shm_inodes()
    system = System(Config(**{**SMALL, "n_agents": 1}, mode=mode)).start()
    try:
        mapped = mapped_shm_inodes(descendants())
        assert mapped - set(before.values()), "the run maps no shared memory"
        assert named(mapped, before) == []
    finally:
        system.stop()


def _hang_up_ends_it() -> None:
    """In the child, before exec: SIGHUP takes its default action (the end of a closed
    terminal's session), even when pytest runs under ``nohup``, whose ignored SIGHUP every
    descendant would inherit across exec."""
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGHUP], ids=["SIGKILL", "SIGHUP"])
def test_a_killed_process_group_leaves_nothing(sig, subprocess_env):
    before = shm_inodes()
    with ShmWatch() as watch:
        run = subprocess.Popen([sys.executable, "-c", RUNNING], cwd=ROOT, env=subprocess_env,
                               start_new_session=True, stdout=subprocess.PIPE, text=True,
                               preexec_fn=_hang_up_ends_it)
        try:
            pids = [int(p) for p in run.stdout.readline().split()]
            assert len(pids) == 3 and all(alive(p) for p in pids), "the run did not start"
            watch.sample()
            os.killpg(run.pid, sig)  # the parent, its workers and the resource tracker
            run.wait(timeout=LIMIT_S)
        finally:
            if run.poll() is None:
                os.killpg(run.pid, signal.SIGKILL)
                run.wait()
    assert run.returncode == -sig
    assert not settle(lambda: [p for p in pids if alive(p)]), "workers outlived the group"
    assert watch.seen, "nothing was mapped"
    assert settle(lambda: named(watch.seen, before)) == []


def test_a_killed_jupyter_kernel_leaves_nothing(subprocess_env):
    jupyter_client = pytest.importorskip("jupyter_client")
    before = shm_inodes()
    kernel = jupyter_client.KernelManager(kernel_name="python3")
    with ShmWatch() as watch:
        kernel.start_kernel(cwd=str(ROOT), env=subprocess_env)
        try:
            client = kernel.client()
            client.start_channels()
            client.wait_for_ready(timeout=LIMIT_S)
            out: list[str] = []
            reply = client.execute_interactive(
                CELL, timeout=LIMIT_S,
                output_hook=lambda m: out.append(m["content"]["text"]) if (
                    m["msg_type"] == "stream" and m["content"]["name"] == "stdout") else None)
            client.stop_channels()
            assert reply["content"]["status"] == "ok", reply["content"]
            pids = [int(p) for p in "".join(out).split()]
            assert len(pids) == 3 and all(alive(p) for p in pids)
            watch.sample()
        finally:
            kernel.shutdown_kernel(now=True)  # SIGKILL: nothing runs in the kernel
    assert not settle(lambda: [p for p in pids if alive(p)]), "workers outlived the kernel"
    assert watch.seen, "nothing was mapped"
    assert settle(lambda: named(watch.seen, before)) == []


def test_interrupts_keep_no_semaphore():
    """Three runs interrupted by a real Ctrl-C (SIGINT), mostly while poll() waits on the
    records queue, each traceback kept (as IPython keeps them): the frames keep the queue and
    its semaphores alive, and none of them has a name in /dev/shm."""
    # Python's handler: a pytest started as a background job inherits SIGINT ignored.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    before = shm_inodes()
    kept: list[BaseException] = []
    try:
        with ShmWatch() as watch:
            for seed in range(3):
                system = System(Config(**{**SMALL, "n_agents": 1}, mode="async", seed=seed))
                sent: list[threading.Timer] = []

                def interrupt(s: System, sent=sent) -> None:
                    if min(s.updates) >= 5 and not sent:
                        sent.append(threading.Timer(0.03, os.kill, (os.getpid(),
                                                                    signal.SIGINT)))
                        sent[0].start()

                try:
                    system.run(interrupt)
                except KeyboardInterrupt as e:
                    kept.append(e)
                sent[0].join()
                watch.sample()
                assert named(watch.seen, before) == [], f"after interrupt {seed + 1}"
    finally:
        signal.signal(signal.SIGINT, previous)
    assert len(kept) == 3 and all(e.__traceback__ is not None for e in kept)
    assert watch.seen, "nothing was mapped"
