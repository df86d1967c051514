"""Shared fixtures: leak checks for child processes and /dev/shm entries.

``no_leaks`` snapshots this process's children (read from /proc, zombies included, so an
unreaped worker counts as left behind) and the entries of /dev/shm (shared memory segments
``psm_*`` and named semaphores ``sem.mp-*``) before a test, and fails the test if anything new
is still there after it. Test files opt in with ``pytestmark = pytest.mark.usefixtures(...)``.
The check runs only after a test that passed: a failure's traceback keeps the test's objects
(and their semaphores) alive, and the failure is reported already.
"""

from __future__ import annotations

import gc
import multiprocessing as mp
import os
import time
import uuid
from multiprocessing import resource_tracker
from pathlib import Path

import pytest

SHM = Path("/dev/shm")
PROC = Path("/proc")
TAG_VAR = "MPLEARN_TEST_TAG"

# Cleanup is synchronous, so a leak is permanent; the grace period only lets entries of another
# test run on the same machine (a shared /dev/shm) come and go without failing this one.
GRACE_S = 3.0

CALL_PASSED = pytest.StashKey[bool]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Remember whether the test body passed, for the teardown of ``no_leaks``."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.stash[CALL_PASSED] = report.passed


def shm_entries() -> set[str]:
    return set(os.listdir(SHM)) if SHM.is_dir() else set()


def _stat_fields(pid: str) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name: [state, ppid, ...]; None if gone."""
    try:
        stat = (PROC / pid / "stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()


def child_pids(parent: int | None = None) -> dict[int, str]:
    """{pid: state} of the processes whose parent is ``parent`` (default: this process)."""
    parent = os.getpid() if parent is None else parent
    found = {}
    for entry in os.listdir(PROC):
        if entry.isdigit():
            fields = _stat_fields(entry)
            if fields is not None and int(fields[1]) == parent:
                found[int(entry)] = fields[0]
    return found


def tagged_env(tag: str) -> dict[str, str]:
    """An environment for a subprocess whose every descendant can be found by ``tagged_pids``."""
    return {**os.environ, TAG_VAR: tag}


def tagged_pids(tag: str) -> set[int]:
    """Live (non-zombie) processes whose environment carries ``TAG_VAR=tag``: a subprocess and
    every process it started, wherever they were reparented."""
    needle = f"{TAG_VAR}={tag}".encode()
    found = set()
    for entry in os.listdir(PROC):
        if not entry.isdigit():
            continue
        try:
            environ = (PROC / entry / "environ").read_bytes()
        except OSError:
            continue
        fields = _stat_fields(entry)
        if needle in environ.split(b"\0") and fields is not None and fields[0] != "Z":
            found.add(int(entry))
    return found


def _settle(check, timeout: float):
    """Call ``check`` until it returns something empty or ``timeout`` passes; the last value."""
    deadline = time.monotonic() + timeout
    while True:
        left = check()
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


@pytest.fixture
def no_leaks(request):
    """Fail the test if it leaves a child process or a /dev/shm entry behind."""
    # The resource tracker is multiprocessing's own lasting helper process (one per
    # interpreter): start it now so that it is part of the snapshot.
    resource_tracker.ensure_running()
    children_before = set(child_pids())
    shm_before = shm_entries()
    yield
    if not request.node.stash.get(CALL_PASSED, False):
        return

    def new_children() -> dict[int, str]:
        return {p: s for p, s in child_pids().items() if p not in children_before}

    def new_shm() -> set[str]:
        return shm_entries() - shm_before

    if new_children() or new_shm():
        gc.collect()  # a System dropped by the test releases its semaphores when collected
    assert mp.active_children() == [], "multiprocessing children left alive"
    left = _settle(new_children, GRACE_S)
    assert not left, f"child processes left behind ({{pid: state}}): {left}"
    left = _settle(new_shm, GRACE_S)
    assert not left, f"/dev/shm entries left behind: {sorted(left)}"


def _subprocess_env():
    tag = uuid.uuid4().hex
    yield tagged_env(tag)
    left = _settle(lambda: tagged_pids(tag), GRACE_S)
    assert not left, f"processes started by a subprocess left alive: {sorted(left)}"


@pytest.fixture
def subprocess_env():
    """An environment for subprocesses, tagged so that every process they start can be found;
    after the test, none of them may be alive."""
    yield from _subprocess_env()


@pytest.fixture(scope="module")
def module_subprocess_env():
    """``subprocess_env`` for a module-scoped fixture; checked after the module's tests."""
    yield from _subprocess_env()
