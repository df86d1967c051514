"""The parent's liveness watchdog: a worker that makes no progress for ``stall_timeout_s`` while
the others wait on it is named, with the state of its process (stopped, sleeping, running).

Progress is read from what the workers write to shared memory anyway (env steps, updates,
barrier waits begun and ended): nothing is added to a worker's step. Who is waited on follows
the protocol:

* async: a learner that owes updates (its agent's env steps allow more than it did), the actor
  while no learner is more than ``max_update_lag`` behind, and at the end each worker until it
  says it is done;
* lockstep: a worker outside the barrier (working), or inside one that has opened (it should
  have left it), or every worker when all are inside one that has not opened;
* a worker that has not moved yet (starting up: importing torch, building its environments) is
  judged by the CPU time it uses, the only progress it shows.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from mplearn.core.config import Config

# /proc/<pid>/stat's state letter, in words.
_STATES = {"R": "running", "S": "sleeping", "D": "in an uninterruptible wait", "T": "stopped",
           "t": "stopped by a debugger", "Z": "a zombie", "X": "dead", "I": "idle"}


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name; None: gone or not Linux."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def process_state(pid: int) -> str:
    """'stopped', 'sleeping', 'running', ... ('unknown' without /proc)."""
    fields = _stat(pid)
    return "unknown" if fields is None else _STATES.get(fields[0], fields[0])


def is_stopped(pid: int) -> bool:
    """Stopped by a signal (SIGSTOP, SIGTSTP) or a debugger: it cannot exit until continued."""
    fields = _stat(pid)
    return fields is not None and fields[0] in ("T", "t")


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time of a process (None without /proc)."""
    fields = _stat(pid)
    if fields is None:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Stall:
    name: str
    pid: int
    seconds: float  # without progress (while waited on, if waited_on)
    state: str
    waited_on: bool = True  # False: a stopped worker the counters do not show anyone waits on

    def __str__(self) -> str:
        return (f"no progress for {self.seconds:.1f} s while the others waited on it "
                f"(stall_timeout_s); its process ({self.pid}) is {self.state}")


def duties(config: Config, env_steps: list[int], updates: list[int], arrived, passed
           ) -> list[tuple[tuple, bool]]:
    """(progress, waited on) of each party: the actor, then learner i as party 1 + i."""
    total = config.total_env_steps
    if config.mode == "lockstep":
        own = [min(env_steps), *updates]
        parties = range(len(own))
        inside = [arrived[p] > passed[p] for p in parties]
        # Every party inside the same barrier and none through it: it should have opened.
        stuck = all(inside) and len({arrived[p] for p in parties}) == 1
        out = []
        for p in parties:
            opened = any(passed[q] >= arrived[p] for q in parties if q != p)
            out.append(((arrived[p], passed[p], own[p]), not inside[p] or opened or stuck))
        return out
    owed = [config.updates_owed(e) for e in env_steps]
    behind = any(o - u > config.max_update_lag for o, u in zip(owed, updates, strict=True))
    steps = min(env_steps)
    # At the end every worker is waited on until it says it is done.
    actor = ((steps,), steps >= total or not behind)
    learners = [((u,), o > u or e >= total) for o, u, e in zip(owed, updates, env_steps,
                                                                strict=True)]
    return [actor, *learners]


def culprit(stalls: list[Stall | None], timeout_s: float) -> Stall | None:
    """The stall to report, once one that others wait on has lasted ``timeout_s``: a stopped
    process first, then a running one, then the longest.

    Workers that wait on each other inside one primitive stall together, and the counters may
    point at the wrong one: a multiprocessing Condition's notify waits until every sleeper has
    woken, so a worker stopped while it sleeps at the barrier holds up the one that releases
    it, which then looks stuck, and the stopped one looks like it waits. Their states tell."""
    found = [s for s in stalls if s is not None]
    if not any(s.waited_on and s.seconds >= timeout_s for s in found):
        return None
    rank = {"stopped": 2, "stopped by a debugger": 2, "running": 1,
            "in an uninterruptible wait": 1}
    return max(found, key=lambda s: (rank.get(s.state, 0), s.seconds))


class Watchdog:
    """Remembers, per worker, its progress, since when it has not changed, and since when it
    has been waited on without any."""

    # Workers that stall together are seen a poll or two apart: a stall this close to the
    # timeout is a candidate too (``culprit`` picks among them).
    NEAR = 0.75

    def __init__(self, timeout_s: float):
        self.timeout_s = timeout_s
        self._seen: dict[str, tuple[tuple, float, float | None]] = {}

    def check(self, name: str, pid: int, progress: tuple, waited_on: bool,
              now: float | None = None) -> Stall | None:
        """A ``Stall`` once ``progress`` has stayed put for ``NEAR * timeout_s`` while waited
        on, or that long at all if the process is stopped by a signal. ``progress`` still at
        zero: the worker is starting, its CPU time is its progress."""
        now = time.monotonic() if now is None else now
        if not any(progress):
            progress = (*progress, cpu_seconds(pid))
        seen = self._seen.get(name)
        if seen is None or seen[0] != progress:
            seen = (progress, now, now if waited_on else None)
        else:  # (progress, unchanged since, waited on since)
            waited = now if seen[2] is None else seen[2]
            seen = (progress, seen[1], waited if waited_on else None)
        self._seen[name] = seen
        _, unchanged, waited = seen
        near = self.NEAR * self.timeout_s
        if waited is not None and now - waited >= near:
            return Stall(name, pid, now - waited, process_state(pid))
        if now - unchanged >= near and is_stopped(pid):
            return Stall(name, pid, now - unchanged, "stopped", waited_on=False)
        return None
