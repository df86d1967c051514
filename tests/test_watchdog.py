"""The liveness watchdog: a worker that makes no progress while the others wait on it.

A worker stopped with SIGSTOP (as a hung one would be) is raised in the parent as a WorkerError
that names it and the state of its process, after ``stall_timeout_s`` and not long after; the
others sleep meanwhile (on a doorbell or at the barrier, not in a spin); stop() ends within its
timeout, and no process and no /dev/shm entry is left behind (``no_leaks``). Inline mode has no
worker process to watch. The rules themselves (who is waited on, when a stall is called) are
checked here too, on made-up counters and a made-up clock.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from mplearn import Config, System, WorkerError
from mplearn.core.watchdog import Stall, Watchdog, cpu_seconds, culprit, duties, process_state

pytestmark = pytest.mark.usefixtures("no_leaks")

STALL_S = 4.0
# Every wait here is generous: the machine may be shared and loaded.
LIMIT_S = 120
SMALL = dict(n_agents=2, total_env_steps=20_000, learning_starts=32, batch_size=16,
             buffer_size=2_000, hidden_dim=16, embedding_dim=16, log_interval=10, device="cpu",
             max_update_lag=50, stall_timeout_s=STALL_S)


def learning(system: System) -> bool:
    return min(system.updates) >= 5


def poll_until(system: System, ready) -> None:
    deadline = time.monotonic() + LIMIT_S
    while not ready(system):
        assert time.monotonic() < deadline, "the run did not get there in time"
        system.poll(timeout=0.05)


def timed_stop(system: System, monkeypatch) -> list[float]:
    """Make ``system.stop`` record how long each call took."""
    durations: list[float] = []
    stop = system.stop

    def timed(timeout: float = 10.0):
        t0 = time.monotonic()
        try:
            return stop(timeout)
        finally:
            durations.append(time.monotonic() - t0)

    monkeypatch.setattr(system, "stop", timed)
    return durations


@pytest.mark.parametrize("mode", ["lockstep", "async"])
@pytest.mark.parametrize("victim", ["actor", "learner-0"])
def test_a_stopped_worker_is_named_with_its_state(mode, victim, monkeypatch):
    system = System(Config(**SMALL, mode=mode)).start()
    durations = timed_stop(system, monkeypatch)
    poll_until(system, learning)
    process = next(p for p in system._processes if p.name == victim)
    others = [p for p in system._processes if p is not process]
    os.kill(process.pid, signal.SIGSTOP)
    stopped_at = time.monotonic()

    # The others wait on the stopped worker: asleep, not spinning. Measured from when they have
    # caught up (a learner owes a few updates when the actor stops) to before the report.
    while time.monotonic() < stopped_at + 1.5:
        system.poll(timeout=0.05)
    cpu = {p.name: cpu_seconds(p.pid) for p in others}
    while time.monotonic() < stopped_at + STALL_S - 0.5:
        system.poll(timeout=0.05)
    window = time.monotonic() - stopped_at - 1.5
    busy = {p.name: (cpu_seconds(p.pid) - cpu[p.name]) / window for p in others}
    assert all(share < 0.1 for share in busy.values()), f"share of a core while waiting: {busy}"

    with pytest.raises(WorkerError) as info:
        system.run()
    reported = time.monotonic() - stopped_at - sum(durations)
    assert info.value.worker == victim
    assert f"its process ({process.pid}) is stopped" in str(info.value)
    assert "stall_timeout_s" in str(info.value)
    # Not before the watchdog's time (less the last poll before the stop), and soon after it.
    assert STALL_S - 0.5 <= reported < STALL_S + 30, reported
    assert len(durations) == 1 and durations[0] < 10.0, durations  # stop()'s timeout
    assert process.exitcode == -signal.SIGKILL  # a stopped process cannot exit otherwise
    assert all(p.exitcode is not None for p in system._processes)
    result = system.result()
    assert result.error == str(info.value) and result.updates[0] >= 5


def test_an_actor_stopped_while_it_waits_at_the_barrier_is_named():
    """Lockstep: the actor waits at the barrier while the learners train. Stopped there, it
    never acknowledges the learners' release, and they stall inside the barrier with it."""
    system = System(Config(**{**SMALL, "n_agents": 1}, mode="lockstep")).start()
    poll_until(system, learning)
    actor = next(p for p in system._processes if p.name == "actor")
    rv = system._rendezvous
    deadline = time.monotonic() + LIMIT_S
    while not (rv.arrived[0] > rv.passed[0] and rv.arrived[0] % 2 == 0):  # inside the 2nd wait
        assert time.monotonic() < deadline
    os.kill(actor.pid, signal.SIGSTOP)
    with pytest.raises(WorkerError) as info:
        system.run()
    assert info.value.worker == "actor", (str(info.value), list(rv.arrived), list(rv.passed))
    assert "is stopped" in str(info.value)
    assert all(p.exitcode is not None for p in system._processes)


@pytest.mark.parametrize(("mode", "victim"), [("lockstep", "actor"), ("async", "learner-0")])
def test_stop_with_a_stopped_worker_ends_within_its_timeout(mode, victim):
    """Before the watchdog says anything (its time is far off), stop() kills the stopped worker
    rather than waiting for it: SIGTERM waits too while a process is stopped."""
    system = System(Config(**{**SMALL, "stall_timeout_s": 600.0}, mode=mode)).start()
    poll_until(system, learning)
    process = next(p for p in system._processes if p.name == victim)
    os.kill(process.pid, signal.SIGSTOP)
    time.sleep(0.5)
    t0 = time.monotonic()
    result = system.stop(timeout=5.0)
    took = time.monotonic() - t0
    assert took < 5.0, took
    assert process.exitcode == -signal.SIGKILL
    assert all(p.exitcode is not None for p in system._processes)
    assert result.error is None and result.updates[0] >= 5


def test_a_worker_stopped_while_it_starts_is_named(monkeypatch):
    """Stopped before it has attached to what it shares: start() stops waiting for it after the
    watchdog's time (a starting worker's progress is the CPU time it uses)."""
    spawn = System._spawn

    def spawn_stopped(self, name, *args):
        spawn(self, name, *args)
        if name == "learner-1":
            os.kill(self._processes[-1].pid, signal.SIGSTOP)

    monkeypatch.setattr(System, "_spawn", spawn_stopped)
    system = System(Config(**SMALL, mode="async"))
    t0 = time.monotonic()
    with pytest.raises(WorkerError) as info:
        system.run()
    assert info.value.worker == "learner-1"
    assert "is stopped" in str(info.value)
    assert time.monotonic() - t0 >= STALL_S
    assert all(p.exitcode is not None for p in system._processes)


# --- the rules, on made-up counters ----------------------------------------------------------


def test_a_stall_is_called_only_while_waited_on_and_after_the_timeout():
    dog, pid = Watchdog(10.0), os.getpid()

    def called(progress, waited_on, now):
        return culprit([dog.check("learner-0", pid, progress, waited_on, now)], 10.0)

    assert called((5,), True, 0.0) is None
    assert called((5,), True, 9.9) is None
    stall = called((5,), True, 10.0)
    assert stall is not None and stall.name == "learner-0" and stall.seconds == 10.0
    assert stall.state == "running"  # this process, reading its own state
    # Progress, or a time when nobody waits on it, starts the count again.
    assert called((6,), True, 11.0) is None
    assert called((6,), True, 20.0) is None
    assert called((6,), False, 25.0) is None
    assert called((6,), True, 34.0) is None  # waited on again, from now
    assert called((6,), True, 43.9) is None
    assert called((6,), True, 44.0) is not None


def test_of_workers_that_stall_together_the_stopped_one_is_named():
    """At a barrier, a stopped sleeper blocks the release, and the others stall with it: a
    poll apart, and all asleep but one."""
    def stall(name, seconds, state):
        return Stall(name, 1, seconds, state)

    together = [stall("learner-0", 4.1, "sleeping"), stall("actor", 3.9, "stopped"),
                stall("learner-1", 3.95, "sleeping"), None]
    assert culprit(together, 4.0).name == "actor"
    assert culprit(together[1:], 4.0) is None  # nobody has reached the timeout yet
    assert culprit([stall("actor", 5.0, "sleeping"), stall("learner-0", 4.5, "running")],
                   4.0).name == "learner-0"


def test_who_is_waited_on_in_async_mode():
    c = Config(n_agents=2, total_env_steps=1000, learning_starts=100, batch_size=32,
               max_update_lag=50)
    # Learner 0 owes 50 updates; learner 1 has done all it may: it waits for data.
    (actor, w_actor), (_, w0), (_, w1) = duties(c, [300, 300], [150, 200], None, None)
    assert (w_actor, w0, w1) == (True, True, False)
    assert actor == (300,)
    # Learner 0 more than max_update_lag behind: the actor waits for it.
    _, w_actor = duties(c, [300, 300], [100, 200], None, None)[0]
    assert w_actor is False
    # The end: everyone owes its finish.
    assert [w for _, w in duties(c, [1000, 1000], [900, 900], None, None)] == [True] * 3


def test_who_is_waited_on_in_lockstep_mode():
    c = Config(mode="lockstep", n_agents=2, total_env_steps=1000, learning_starts=100,
               batch_size=32)
    # The actor steps (outside the barrier), the learners wait inside it: the actor is waited on.
    waited = [w for _, w in duties(c, [205, 205], [100, 100], [4, 5, 5], [4, 4, 4])]
    assert waited == [True, False, False]
    # Barrier 5 opened (the others passed it and wait at 6) but learner 0 is still inside it.
    waited = [w for _, w in duties(c, [210, 210], [110, 110], [6, 5, 6], [5, 4, 5])]
    assert waited == [False, True, False]
    # Every party inside the same barrier and nobody through it: the barrier itself is stuck.
    waited = [w for _, w in duties(c, [210, 210], [110, 110], [5, 5, 5], [4, 4, 4])]
    assert waited == [True, True, True]


def test_a_stopped_worker_is_named_even_when_the_counters_say_it_waits():
    """The counters say learner-0 is stuck (the barrier it is in has opened) and the actor waits
    (in the next one); the actor is stopped: it is the one named."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        deadline = time.monotonic() + LIMIT_S
        while process_state(child.pid) != "sleeping":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        dog = Watchdog(4.0)
        assert dog.check("actor", child.pid, (14, 13, 70), waited_on=False, now=0.0) is None
        assert dog.check("actor", child.pid, (14, 13, 70), waited_on=False, now=4.0) is None
        os.kill(child.pid, signal.SIGSTOP)
        while process_state(child.pid) != "stopped":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        stopped = dog.check("actor", child.pid, (14, 13, 70), waited_on=False, now=4.1)
        assert stopped == Stall("actor", child.pid, 4.1, "stopped", waited_on=False)
        assert culprit([stopped], 4.0) is None  # nobody waits on it, as far as counters show
        stuck = Stall("learner-0", 1, 4.0, "sleeping")
        assert culprit([stuck, stopped], 4.0) is stopped
    finally:
        child.kill()
        child.wait()
    assert process_state(child.pid) == "unknown"  # gone

