"""Workers never outlive their parent: a kernel killed with SIGKILL leaves no worker behind."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = """
import time
from mplearn import Config, System
if __name__ == "__main__":
    system = System(Config(mode="async", total_env_steps=100_000, device="cpu")).start()
    while system.env_steps == 0:
        system.poll(timeout=0.1)
    print(" ".join(str(p.pid) for p in system._processes), flush=True)
    time.sleep(120)
"""
# A notebook's pool (lab.pool) keeps its workers for the kernel's life: they too die with it.
POOL_SCRIPT = """
import math
from mplearn.lab import pool
if __name__ == "__main__":
    pool.run_all(math.factorial, [10, 20], jobs=2)
    print(" ".join(str(p.pid) for p in pool.workers()), flush=True)
    import time; time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"  # a zombie has exited; only its parent's bookkeeping is left


@pytest.mark.parametrize("script", [SCRIPT, POOL_SCRIPT], ids=["system", "pool"])
def test_workers_exit_when_the_parent_is_killed(script):
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert len(pids) == 2 and all(_alive(p) for p in pids)
    finally:
        parent.kill()  # SIGKILL: no finalizer, no atexit, nothing runs in the parent
        parent.wait()
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in pids if _alive(p)], "workers outlived their killed parent"
