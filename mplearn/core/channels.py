"""What an agent's actor and learner share, and how the processes meet, wait and stop.

Names in /dev/shm: a spawned worker finds a named semaphore (multiprocessing's Lock, Semaphore,
Queue, Barrier) by its name, once, when it unpickles its arguments. After that the name is only a
way in for processes that have not opened it yet, and a leftover if every process dies at once
(a process group killed, a terminal hung up, a Jupyter kernel killed: then nobody is left to
unlink it). ``unlink_semaphores`` removes the names as soon as every worker has attached; the
processes keep using the semaphores (POSIX: unlinking a name does not touch what is open).
Everything else here lives in multiprocessing's shared heap, which is passed to a child as a
file descriptor and never has a name.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import synchronize, util

from mplearn.core.replay import ReplayBuffer
from mplearn.core.weights import IQNAgent

ACTOR_PARTY = 0  # the actor's party number; learner i is party 1 + i


class Stopped(Exception):
    """The system is stopping: leave the loop quietly."""


@dataclass
class AgentChannel:
    """One agent's shared state. Everything here lives in shared memory."""

    agent_id: int
    model: IQNAgent  # shared_models[agent_id]: weights published by the learner
    buffer: ReplayBuffer  # transitions written by the actor, sampled by the learner
    epsilon: object  # mp.Value("d"): published by the learner, read by the actor
    env_steps: object  # mp.Value("q"): env steps of this agent, written by the actor
    updates: object  # mp.Value("q"): learner updates, written by the learner


def learner_party(agent_id: int) -> int:
    return 1 + agent_id


class Doorbell:
    """Wakes one sleeping process. ``ring()`` is one read of shared memory unless the process
    sleeps, so it can follow every env step and every update.

    A sleep also ends after ``TICK_S``: the sleeper reads its condition and the stop flag
    again, and a ring lost to the processor's store reordering (the sleeper's "asleep" and the
    ringer's counter written at the same moment) costs no more than that."""

    TICK_S = 0.05

    def __init__(self, ctx):
        self._asleep = ctx.Value("b", 0, lock=False)
        self._bell = ctx.Semaphore(0)

    def ring(self) -> None:
        if self._asleep.value:
            self._asleep.value = 0
            self._bell.release()

    def wake(self) -> None:
        """Ring whether or not it sleeps (a stop)."""
        self._bell.release()

    def sleep_until(self, ready: Callable[[], bool], stopped: Callable[[], bool]) -> None:
        """Return once ``ready()`` or ``stopped()``."""
        while not ready() and not stopped():
            self._asleep.value = 1
            if not ready():  # read again after saying so: a ring from now on is not missed
                self._bell.acquire(timeout=self.TICK_S)
            self._asleep.value = 0


class Rendezvous:
    """How the workers meet (lockstep: a barrier every worker passes twice per round), wait for
    each other without spinning (async: a doorbell per worker), learn that the system stops (a
    flag: setting it takes no lock, so a stopped or killed worker cannot block it), and show
    the parent's watchdog where each of them is (counters in shared memory)."""

    def __init__(self, ctx, parties: int, lockstep: bool):
        self._stop = ctx.Value("b", 0, lock=False)
        self._barrier = ctx.Barrier(parties) if lockstep else None
        self._bells = [] if lockstep else [Doorbell(ctx) for _ in range(parties)]
        # Per party: 1 once the worker holds everything it shares; barrier waits begun and
        # ended (a worker between the two is waiting for the others).
        self.attached = ctx.Array("b", parties, lock=False)
        self.arrived = ctx.Array("q", parties, lock=False)
        self.passed = ctx.Array("q", parties, lock=False)

    def attach(self, party: int) -> None:
        """Called first thing in a worker: its arguments (and every name in them) are open."""
        self.attached[party] = 1

    def stopped(self) -> bool:
        return self._stop.value != 0

    def wait(self, party: int) -> None:
        """Lockstep: wait at the barrier for every other worker."""
        self.arrived[party] += 1
        try:
            self._barrier.wait()
        except threading.BrokenBarrierError:
            raise Stopped from None
        self.passed[party] += 1

    def ring(self, party: int) -> None:
        """Async: wake ``party`` if it sleeps (something it may wait for has changed)."""
        self._bells[party].ring()

    def sleep_until(self, party: int, ready: Callable[[], bool]) -> None:
        """Async: sleep until ``ready()`` (someone rings ``party``) or the system stops."""
        self._bells[party].sleep_until(ready, self.stopped)

    def stop(self, barrier: bool = True) -> None:
        """Ask every worker to stop. ``barrier=False``: leave the barrier alone (a killed or
        stopped worker may hold its lock; the others are terminated instead)."""
        self._stop.value = 1
        for bell in self._bells:
            bell.wake()
        if barrier and self._barrier is not None:
            self._barrier.abort()  # wake every worker blocked at the barrier

    def semaphores(self) -> list:
        return named_semaphores(self._barrier, self._bells)


def named_semaphores(*objects) -> list[synchronize.SemLock]:
    """The named semaphores inside multiprocessing objects (a Queue holds 3, a Barrier 4, a
    Lock or a Semaphore 1), found by walking their attributes."""
    found, seen, todo = [], set(), list(objects)
    while todo:
        obj = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, synchronize.SemLock):
            found.append(obj)
        elif isinstance(obj, (list, tuple)):
            todo.extend(obj)
        elif type(obj).__module__.startswith(("multiprocessing", __name__)) and hasattr(
                obj, "__dict__"):
            todo.extend(vars(obj).values())
    return found


def unlink_semaphores(semaphores: list[synchronize.SemLock]) -> None:
    """Remove these semaphores' names from /dev/shm now; idempotent. Processes that opened them
    keep using them; a process that has not opened one by now never can.

    multiprocessing registered a finalizer per semaphore that unlinks its name (at garbage
    collection or exit) and tells the resource tracker: it is run now, so that the name is
    unlinked once and nothing complains later."""
    wanted = {id(s) for s in semaphores}
    for finalizer in list(util._finalizer_registry.values()):
        ref = getattr(finalizer, "_weakref", None)  # absent on exit-only finalizers
        if ref is not None and id(ref()) in wanted:
            with contextlib.suppress(FileNotFoundError):  # unlinked by someone else
                finalizer()
