"""Shared fixtures: leak checks for child processes and /dev/shm entries.

``no_leaks`` snapshots this process's children (read from /proc, zombies included, so an
unreaped worker counts as left behind) before a test and fails the test if a new one is still
there after it. It also fails the test if a /dev/shm entry of the test's own (a shared memory
segment ``psm_*``, a named semaphore ``sem.mp-*``) is left behind. /dev/shm is shared by the
whole machine (another test run, a notebook, a benchmark), so an entry counts as the test's
only if this process or one of its descendants mapped it during the test: a sampler thread
reads their /proc/PID/maps while the test runs, and entries are matched by inode (a named
semaphore is mapped under the temporary name it was created with). Entries of other programs,
however many come and go, never count and cost no wait. Test files opt in with
``pytestmark = pytest.mark.usefixtures(...)``. The check runs only after a test that passed:
a failure's traceback keeps the test's objects (and their semaphores) alive, and the failure is
reported already.
"""

from __future__ import annotations

import gc
import multiprocessing as mp
import os
import threading
import time
import uuid
from multiprocessing import resource_tracker
from pathlib import Path

import pytest

SHM = Path("/dev/shm")
PROC = Path("/proc")
TAG_VAR = "MPLEARN_TEST_TAG"

# Cleanup is synchronous, but a worker's exit (and its parent reaping it) takes a moment: the
# test's own children and /dev/shm entries get this long to go. Foreign entries are not waited for.
GRACE_S = 3.0
SAMPLE_S = 0.1  # how often the sampler reads the maps of this process and its descendants

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


def descendants(root: int | None = None) -> set[int]:
    """This process (or ``root``) and every process below it, from the parent ids in /proc."""
    root = os.getpid() if root is None else root
    parents = {}
    for entry in os.listdir(PROC):
        if entry.isdigit():
            fields = _stat_fields(entry)
            if fields is not None:
                parents[int(entry)] = int(fields[1])
    tree, grew = {root}, True
    while grew:
        below = {p for p, pp in parents.items() if pp in tree} - tree
        tree |= below
        grew = bool(below)
    return tree


def mapped_shm_inodes(pids) -> set[int]:
    """Inodes of the /dev/shm files that the processes ``pids`` map now."""
    inodes = set()
    for pid in pids:
        try:
            maps = (PROC / str(pid) / "maps").read_text()
        except OSError:  # gone, or not ours to read
            continue
        for line in maps.splitlines():
            fields = line.split(maxsplit=5)  # address perms offset dev inode path
            if len(fields) == 6 and fields[5].startswith("/dev/shm/"):
                inodes.add(int(fields[4]))
    return inodes


def shm_inodes() -> dict[str, int]:
    """{name: inode} of the entries of /dev/shm."""
    found = {}
    if SHM.is_dir():
        for e in os.scandir(SHM):
            try:
                found[e.name] = e.inode()
            except OSError:
                continue
    return found


class ShmWatch:
    """The /dev/shm inodes mapped by this process and its descendants while the watch runs,
    sampled every ``SAMPLE_S`` by a thread (reads of /proc only)."""

    def __init__(self):
        self.seen: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="shm-watch", daemon=True)

    def sample(self) -> None:
        self.seen |= mapped_shm_inodes(descendants())

    def _loop(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            self.sample()

    def __enter__(self) -> ShmWatch:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


@pytest.fixture
def no_leaks(request):
    """Fail the test if it leaves a child process or a /dev/shm entry of its own behind."""
    # The resource tracker is multiprocessing's own lasting helper process (one per
    # interpreter): start it now so that it is part of the snapshot.
    resource_tracker.ensure_running()
    children_before = set(child_pids())
    shm_before = shm_inodes()
    with ShmWatch() as watch:
        yield
    if not request.node.stash.get(CALL_PASSED, False):
        return

    def new_children() -> dict[int, str]:
        return {p: s for p, s in child_pids().items() if p not in children_before}

    def own_shm() -> set[str]:
        """Entries created during the test (new names or new inodes) that were ours."""
        return {name for name, inode in shm_inodes().items()
                if inode in watch.seen and shm_before.get(name) != inode}

    if new_children() or own_shm():
        gc.collect()  # a System dropped by the test releases its semaphores when collected
    assert mp.active_children() == [], "multiprocessing children left alive"
    left = _settle(new_children, GRACE_S)
    assert not left, f"child processes left behind ({{pid: state}}): {left}"
    left = _settle(own_shm, GRACE_S)
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


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (Linux /proc)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
