"""Reliability of the System under faults, interrupts and repeated use.

Whatever happens (a worker raises or is killed with SIGKILL, Ctrl-C during start, run or stop, a
System dropped without stop, twenty start/stop cycles), the parent gets an error that names the
process, no worker survives, nothing of the run is left in /dev/shm and what was collected up to
the fault can still be read. test_system.py checks the basic cases (a raising worker in lockstep
and async, Ctrl-C in async, an actor killed at the lockstep barrier, a running async System
collected); this file covers the rest of the matrix.

A run's /dev/shm entries are the ones this process maps while it runs (/proc/self/maps): named
semaphores ``sem.mp-*`` and the replay segments ``psm_*``. Entries of other programs on the
machine never count. A named semaphore is mapped under the temporary name it was created with
(``sem.XXXXXX (deleted)``), so entries are matched by inode, not by name. Once ``start()`` has
returned, none of them has a name any more (every worker has opened them; test_cleanup.py).
"""

from __future__ import annotations

import contextlib
import faulthandler
import gc
import multiprocessing as mp
import os
import signal
import time
import weakref
from pathlib import Path

import pytest
from conftest import alive, child_pids, shm_entries

import mplearn.core.system
from mplearn import Config, System, WorkerError

pytestmark = pytest.mark.usefixtures("no_leaks", "_ctrl_c_raises")


@pytest.fixture
def _ctrl_c_raises():
    """Ctrl-C must raise KeyboardInterrupt here even when pytest was started with SIGINT
    ignored (a shell's background job inherits SIG_IGN, and Python then keeps it)."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)

MODES = ("inline", "lockstep", "async")
# A small network and a long run: every test stops it (or a fault does) long before the end.
# max_update_lag holds the async actor back until its learner runs.
SMALL = dict(n_agents=1, total_env_steps=20_000, learning_starts=32, batch_size=16,
             buffer_size=2_000, hidden_dim=16, embedding_dim=16, log_interval=10, device="cpu",
             max_update_lag=50)
LIMIT_S = 60  # a wait that takes longer is a failure, not a slow machine


def config(**changes) -> Config:
    return Config(**{**SMALL, **changes})


@pytest.fixture(autouse=True)
def watchdog():
    """A hang here would hang the whole test run: dump every thread's stack and exit instead
    (the workers watch this process and exit with it)."""
    faulthandler.dump_traceback_later(300, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


def mapped_inodes() -> set[int]:
    """The inodes of the /dev/shm files this process maps, named or not."""
    inodes = set()
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split()  # address perms offset dev inode path
        if len(fields) >= 6 and fields[5].startswith("/dev/shm/"):
            inodes.add(int(fields[4]))
    return inodes


def mapped_shm() -> set[str]:
    """The entries of /dev/shm that this process has mapped."""
    inodes = mapped_inodes()
    return {e.name for e in os.scandir("/dev/shm") if e.inode() in inodes}


def created_since(mapped_before: set[str]) -> set[str]:
    """The /dev/shm entries this process has mapped since then."""
    return mapped_shm() - mapped_before


def start(cfg: Config) -> tuple[System, set[str]]:
    """A started System and the /dev/shm entries it created that still have a name: none (the
    run maps shared memory, but every name is gone once start() returns)."""
    before, inodes = mapped_shm(), mapped_inodes()
    system = System(cfg).start()
    assert mapped_inodes() - inodes, "the run maps no shared memory"
    entries = created_since(before)
    assert entries == set(), f"named after start(): {sorted(entries)}"
    return system, entries


def poll_until(system: System, ready) -> None:
    deadline = time.monotonic() + LIMIT_S
    while not ready(system):
        assert time.monotonic() < deadline, "the run did not get there within a minute"
        system.poll(timeout=0.05)


def learning(system: System) -> bool:
    """Acting and learning both under way."""
    return min(system.updates) >= 5 and bool(system.episodes(0))


def assert_released(system: System, entries: set[str]) -> None:
    """No worker alive (by multiprocessing and by pid), no /dev/shm entry of the run left, while
    the System itself is still referenced: stop() releases everything, not the garbage
    collector."""
    assert mp.active_children() == []
    assert [p.name for p in system._processes if alive(p.pid)] == []
    assert all(p.exitcode is not None for p in system._processes)
    assert sorted(entries & shm_entries()) == []


def assert_stop_again_is_a_no_op(system: System) -> None:
    first = system.result()
    again = system.stop()
    assert (again.env_steps, again.updates, again.episodes, again.learner, again.actor,
            again.error) == (first.env_steps, first.updates, first.episodes, first.learner,
                             first.actor, first.error)


# --- a worker raises --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("fault", "worker"), [("actor@150", "actor"),
                                               ("learner@20", "learner-0")])
def test_a_raising_worker_is_named_and_its_results_stay_readable(mode, fault, worker):
    system, entries = start(config(mode=mode, inject_fault=fault))
    with pytest.raises(WorkerError) as info:
        system.run()
    message = str(info.value)
    assert info.value.worker == worker
    assert message.startswith(f"{worker} failed:")
    assert "Traceback" in message and "InjectedFault: " in message
    assert_released(system, entries)

    result = system.result()
    assert result.error == message
    if worker == "actor":  # everything before env step 150, nothing after it
        assert result.env_steps == 150
        assert [r["env_step"] for r in result.actor[0]] == list(range(10, 151, 10))
    else:  # the learner did 20 updates and reported them
        assert result.updates == [20]
        assert [r["update"] for r in result.learner[0]] == [10, 20]
    episodes = system.episodes(0)
    assert episodes, "no finished episode readable after the fault"
    assert all(0 < e["env_step"] <= result.env_steps for e in episodes)
    assert_stop_again_is_a_no_op(system)


# --- a worker is killed -----------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["lockstep", "async"])
@pytest.mark.parametrize("victim", ["actor", "learner-0"])
def test_a_worker_killed_with_sigkill_is_named(mode, victim):
    system, entries = start(config(mode=mode))
    poll_until(system, learning)
    steps, updates = system.env_steps, system.updates[0]
    process = next(p for p in system._processes if p.name == victim)
    os.kill(process.pid, signal.SIGKILL)
    with pytest.raises(WorkerError) as info:
        system.run()
    assert info.value.worker == victim
    assert str(info.value) == f"{victim} failed:\nprocess exited with code -9"
    assert_released(system, entries)
    assert process.exitcode == -signal.SIGKILL

    result = system.result()
    assert result.error == str(info.value)
    assert result.env_steps >= steps and result.updates[0] >= updates
    assert result.episodes[0] and result.actor[0]
    assert_stop_again_is_a_no_op(system)


# --- Ctrl-C -----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["inline", "lockstep"])  # async: test_system.py
def test_ctrl_c_during_run_stops_everything(mode):
    system, entries = start(config(mode=mode))

    def progress(s: System) -> None:
        if learning(s):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        system.run(progress)
    assert_released(system, entries)
    assert all(p.exitcode == 0 for p in system._processes)  # stopped, not killed
    result = system.result()
    assert result.error is None
    assert 0 < result.env_steps < system.config.total_env_steps
    assert result.updates[0] >= 5 and result.episodes[0]
    assert_stop_again_is_a_no_op(system)


@pytest.mark.parametrize("mode", MODES)
def test_ctrl_c_during_stop_still_releases_everything(mode, monkeypatch):
    """A real SIGINT while stop() waits for the workers (process modes) and another while it
    cleans up (every mode): the first cuts the wait short, the second waits for the cleanup."""
    system, entries = start(config(mode=mode))
    poll_until(system, learning)
    interrupts: list[str] = []

    def interrupt_once(when: str, call):
        def interrupted(*args):
            if when not in interrupts:
                interrupts.append(when)
                signal.raise_signal(signal.SIGINT)  # Python raises KeyboardInterrupt right here
            return call(*args)
        return interrupted

    if mode != "inline":
        monkeypatch.setattr(system, "_drain", interrupt_once("waiting", system._drain))
    for buffer in system.buffers:  # the cleanup closes every buffer, then unlinks it
        monkeypatch.setattr(buffer, "close", interrupt_once("cleaning up", buffer.close))
    with pytest.raises(KeyboardInterrupt):
        system.stop()
    assert interrupts == (["cleaning up"] if mode == "inline" else ["waiting", "cleaning up"])
    assert_released(system, entries)
    result = system.result()
    assert result.error is None and result.episodes[0] and result.updates[0] >= 5
    assert_stop_again_is_a_no_op(system)


@pytest.mark.parametrize("mode", MODES)
def test_ctrl_c_during_start_releases_what_had_started(mode, monkeypatch):
    """Ctrl-C while the learner is set up: the actor (a process, except inline) is running."""
    entries: set[str] = set()
    before = mapped_shm()
    if mode == "inline":
        make_learner = mplearn.core.system.Learner

        def learner_interrupted(*args):
            entries.update(created_since(before))
            signal.raise_signal(signal.SIGINT)
            return make_learner(*args)

        monkeypatch.setattr(mplearn.core.system, "Learner", learner_interrupted)
    else:
        spawn = System._spawn

        def spawn_interrupted(self, name, *args):
            if name.startswith("learner"):
                entries.update(created_since(before))
                assert [p.name for p in self._processes if p.is_alive()] == ["actor"]
                signal.raise_signal(signal.SIGINT)
            return spawn(self, name, *args)

        monkeypatch.setattr(System, "_spawn", spawn_interrupted)
    system = System(config(mode=mode))
    with pytest.raises(KeyboardInterrupt):
        system.start()
    assert_released(system, entries)
    assert system.result().error is None  # readable: nothing had run
    assert_stop_again_is_a_no_op(system)
    with pytest.raises(RuntimeError, match="already started"):
        system.start()


# --- dropped without stop -----------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "state"), [("inline", "running"), ("lockstep", "running"),
                                             ("async", "failed")])  # async running: test_system
def test_a_system_dropped_without_stop_is_cleaned_up_by_gc(mode, state):
    fault = "learner@10" if state == "failed" else ""
    system, entries = start(config(mode=mode, inject_fault=fault))
    if state == "failed":
        with pytest.raises(WorkerError, match="^learner-0 failed"):
            poll_until(system, lambda s: False)
        assert any(p.is_alive() for p in system._processes), "nothing left to clean up"
    else:
        poll_until(system, learning)
    processes, ref = list(system._processes), weakref.ref(system)
    del system
    gc.collect()
    assert ref() is None, "something still holds the System"
    assert mp.active_children() == []
    assert [p.name for p in processes if alive(p.pid)] == []
    assert sorted(entries & shm_entries()) == []


# --- twenty start/stop cycles ---------------------------------------------------------------------


def _own_fds() -> int:
    """Open descriptors of this process, less the /proc files that the no_leaks fixture's
    watcher thread has open for a moment while it reads the memory maps."""
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # closed since the listing
            n += not os.readlink(f"/proc/self/fd/{fd}").startswith("/proc/")
    return n


def test_twenty_start_stop_cycles_grow_nothing():
    """As a notebook user re-running a cell: each cycle starts a System, runs it a little and
    stops it; the next cycle's assignment drops it. A stopped System that is still referenced
    (IPython's Out cache, a traceback) holds no name in /dev/shm: none is left once start()
    returns. Two cycles in three are inline: worker start-up (importing torch) is most of a
    cycle's cost."""
    modes = ("inline", "inline", "lockstep", "inline", "inline", "async")
    children = set(child_pids())
    fds = []
    system = None
    for cycle in range(20):
        system, _ = start(config(mode=modes[cycle % 6], seed=cycle))  # no name after start()
        poll_until(system, lambda s: s.env_steps > 0)
        system.stop()
        assert set(child_pids()) == children, f"cycle {cycle}: a worker is left"
        fds.append(_own_fds())
    warm = max(fds[:6])  # every mode once; then 4 more cycles with processes
    assert max(fds[6:]) <= warm, f"open file descriptors per cycle: {fds}"
