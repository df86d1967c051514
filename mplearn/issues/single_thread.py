"""Thread oversubscription: the catalogue entry, the mechanism check and the experiments its
notebook runs.

Thread oversubscription, measured: P processes doing learner updates at the same time, each
with T torch threads, on this machine's cores.

A pool of worker processes is started once (starting a process that imports torch costs
seconds) without ``torch.set_num_threads(1)``, so each first reports torch's default thread
count. Then, for every (P, T), P of them set T threads, warm up, start together at an agreed
moment and update for the same number of seconds (a fixed time, not a fixed amount of work: an
oversubscribed machine can be 50 times slower). The measure is updates per second, all
processes together.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import time
from dataclasses import dataclass, field

import torch

from mplearn.core.config import Config
from mplearn.core.fixes import Fixes
from mplearn.core.workers import worker_main
from mplearn.issues.base import (
    CheckResult,
    Issue,
    Margin,
    fix_on_and_off,
)
from mplearn.issues.base import learner_with_rows as _learner

ENTRY = Issue(
    "single_thread", "Thread oversubscription",
    claim="",
    mechanism="Every process runs torch at its default thread count (one per core), so "
              "several processes on few cores fight over them.",
    where="several processes on few cores",
    symptom="multiprocess run slower than the sequential one",
    diagnostic="checks.thread_count(processes); Monitor: threads recorded by each worker; "
               "throughput vs inline",
    notebook="15_single_thread")


def _thread_count_main(*, records) -> None:
    records.put(("threads", torch.get_num_threads()))


def check() -> CheckResult:
    """Needs a machine with more than one core: there torch's default is one thread per core."""

    def experiment(fixes: Fixes) -> float:
        ctx = mp.get_context("spawn")
        records = ctx.Queue()
        probe = ctx.Process(target=worker_main,
                            args=("probe", records, fixes, _thread_count_main))
        probe.start()
        kind, threads = records.get(timeout=60)
        records.get(timeout=60)  # the worker's "done"
        probe.join()
        return float(threads)

    return fix_on_and_off("single_thread", "torch threads in a worker process", experiment,
                 lambda threads: threads > 1)


NO_SCENARIO = ("its effect is on speed, not on learning: no learning runs in data/; its verdict "
               "is on speed (SPEED, stored by `python -m mplearn reproduce single_thread`)")



# --- the experiments its notebook runs --------------------------------------------------------

# The learner update of the default config (CartPole shapes, batch 64, hidden 64, N = N' = 8).
WORKLOAD = Config(device="cpu", learner_path="in_place", buffer_size=1024, seed=0)


def _pool_main(commands, results, config: Config, *, records) -> None:
    """Report torch's default thread count, then run (threads, seconds) commands: set the
    threads, warm up, report ready, wait for the start time, update until the time is up,
    report (updates, seconds)."""
    results.put(("default", torch.get_num_threads()))
    with _learner(config, rows=config.buffer_size) as learner:
        while (command := commands.get()) is not None:
            threads, seconds = command
            torch.set_num_threads(threads)
            learner.update()  # warm-up at this thread count
            results.put(("ready", None))
            start = commands.get()
            while (left := start - time.monotonic()) > 0:
                time.sleep(min(left, 0.01))
            updates = 0
            while time.monotonic() < start + seconds:
                learner.update()
                updates += 1
            results.put(("done", (updates, time.monotonic() - start)))


@dataclass
class ThreadTable:
    cores: int
    default_threads: int  # torch's thread count in a freshly spawned process
    seconds: float  # how long each configuration ran
    rates: dict[tuple[int, int], float] = field(default_factory=dict)  # (P, T) -> updates/s

    def slowdown(self, processes: int, threads: int) -> float:
        """How many times fewer updates/s than the same processes at 1 thread each."""
        return self.rates[(processes, 1)] / self.rates[(processes, threads)]

    def __str__(self) -> str:
        threads = sorted({t for _, t in self.rates})
        processes = sorted({p for p, _ in self.rates})
        width = 24
        head = "".join(f"{f'{t} thread' + ('s' if t > 1 else '') + ' each':>{width}}"
                       for t in threads)
        lines = [f"learner updates per second, all processes together ({self.seconds:g} s "
                 f"each, {self.cores} cores; spawned processes start with "
                 f"{self.default_threads} torch threads):", f"{'processes':>9}{head}"]
        for p in processes:
            cells = [f"{self.rates[(p, t)]:.0f}"
                     + (f" ({self.slowdown(p, t):.1f}x slower)" if t != 1 else "")
                     for t in threads]
            lines.append(f"{p:>9}" + "".join(f"{c:>{width}}" for c in cells))
        return "\n".join(lines)


class ProcessPool:
    """``size`` spawned workers that run timed learner updates on command; a context manager."""

    def __init__(self, size: int, config: Config = WORKLOAD):
        if size <= 0:
            raise ValueError(f"size: must be > 0, got {size}")
        self.size, self.config = size, config
        self._ctx = mp.get_context("spawn")
        self._records = self._ctx.Queue()
        self._results = self._ctx.Queue()
        self._commands = [self._ctx.Queue() for _ in range(size)]
        self._workers: list = []
        self.default_threads: list[int] = []

    def __enter__(self) -> ProcessPool:
        # Started without set_num_threads(1): torch's default is what we want to see.
        fixes = Fixes().without("single_thread")
        for i, commands in enumerate(self._commands):
            p = self._ctx.Process(target=worker_main, daemon=True, args=(
                f"pool-{i}", self._records, fixes, _pool_main, commands, self._results,
                self.config))
            p.start()
            self._workers.append(p)
        self.default_threads = [self._get("default")[0] for _ in self._workers]
        return self

    def __exit__(self, *exc) -> None:
        for commands in self._commands:
            commands.put(None)
        for p in self._workers:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
                p.join()

    def _get(self, kind: str) -> tuple:
        while True:
            try:
                rec = self._results.get(timeout=1.0)
            except queue.Empty:
                try:  # a worker failed: its traceback is in the records queue
                    rec = self._records.get_nowait()
                except queue.Empty:
                    continue
                if rec[0] == "error":
                    raise RuntimeError(f"{rec[1]} failed:\n{rec[2]}") from None
                continue
            if rec[0] != kind:
                raise RuntimeError(f"pool: expected {kind!r}, got {rec[0]!r}")
            return rec[1:]

    def rate(self, processes: int, threads: int, seconds: float) -> float:
        """Updates per second of ``processes`` workers together, each with ``threads``
        threads, all updating for ``seconds``."""
        if not 0 < processes <= self.size:
            raise ValueError(f"processes: must be in 1..{self.size}, got {processes}")
        chosen = self._commands[:processes]
        for commands in chosen:
            commands.put((threads, seconds))
        for _ in chosen:
            self._get("ready")
        start = time.monotonic() + 0.05
        for commands in chosen:
            commands.put(start)
        done = [self._get("done")[0] for _ in chosen]
        return sum(updates / elapsed for updates, elapsed in done)


def thread_table(processes: tuple[int, ...] = (1, 2, 4), threads: tuple[int, ...] | None = None,
                 seconds: float = 1.0) -> ThreadTable:
    """Updates per second for every (processes, threads): ``threads`` defaults to 1 and
    torch's default in a spawned process (one per core)."""
    if seconds <= 0:
        raise ValueError(f"seconds: must be > 0, got {seconds}")
    if threads is not None and 1 not in threads:
        raise ValueError(f"threads: must include 1 (the reference), got {threads}")
    if not processes or min(processes) <= 0:
        raise ValueError(f"processes: must be counts > 0, got {processes}")
    cores = os.cpu_count() or 1
    with ProcessPool(max(processes)) as pool:
        default = pool.default_threads[0]
        threads = threads or tuple(sorted({1, default}))
        table = ThreadTable(cores, default, seconds)
        for p in processes:
            for t in threads:
                table.rates[(p, t)] = pool.rate(p, t, seconds)
    return table


# --- the speed study behind its verdict -------------------------------------------------------

@dataclass(frozen=True)
class SpeedStudy:
    """What the speed verdict compares, declared before anything runs (like a ``Scenario``).

    Per condition (how many processes update at once on this machine's cores), ``repeats``
    paired measurements: the same pool of processes updates for ``seconds`` with 1 thread each
    (fixed) and with torch's default (broken), back to back, the order alternating between
    repeats so that a drift in the machine's load does not favour one arm. The metric of a
    repeat is (fixed - broken) / fixed in percent: positive when the missing fix slows the
    processes down. The manipulation check: the broken arm's workers ran more than one thread
    (on a 1-core machine torch's default is 1, and the comparison says nothing)."""

    metric: str = ("learner updates/s of all processes together, fixed - broken as % of "
                   "fixed (paired repeats, order alternating)")
    unit: str = "% of fixed"
    margin: Margin = Margin(5.0, "a 5% change in speed is within what a shared machine varies "
                                 "between minutes, and would change no one's choice")
    manipulation: str = "torch threads per worker in the broken arm"
    repeats: int = 20
    max_repeats: int = 60  # the cap on repeats, stated in advance
    seconds: float = 1.0

    def conditions(self, cores: int) -> dict[str, int]:
        """Condition label -> processes: one process alone (nothing is oversubscribed; torch's
        default is meant for this), and one process per core (every core busy, as the plan's
        actor and learners keep them)."""
        return {f"{p} process{'es' if p > 1 else ''} on {cores} core{'s' if cores > 1 else ''}": p
                for p in dict.fromkeys((1, cores))}

    def cost_s(self, cores: int, repeats: int | None = None) -> float:
        """Wall seconds, roughly: starting the pool, then per repeat both arms and their
        warm-up and hand-over."""
        return 15.0 + len(self.conditions(cores)) * (repeats or self.repeats) * 2 * (
            self.seconds + 0.3)

    def measure(self, repeats: int | None = None, cores: int | None = None) -> dict:
        """Run the study on this machine: per condition the paired rates, and the thread
        count each spawned worker started with (torch's default, the broken arm's)."""
        repeats = repeats or self.repeats
        if not 0 < repeats <= self.max_repeats:
            raise ValueError(f"repeats: must be in 1..{self.max_repeats}, got {repeats}")
        cores = cores or os.cpu_count() or 1
        conditions = self.conditions(cores)
        out = {"cores": cores, "repeats": repeats, "seconds": self.seconds, "conditions": []}
        with ProcessPool(max(conditions.values())) as pool:
            default = pool.default_threads[0]
            out["default_threads"] = list(pool.default_threads)
            for label, processes in conditions.items():
                rows = []
                for i in range(repeats):
                    order = (1, default) if i % 2 == 0 else (default, 1)
                    rate = {t: pool.rate(processes, t, self.seconds) for t in order}
                    rows.append({"fixed": rate[1], "broken": rate[default],
                                 "first": "fixed" if i % 2 == 0 else "broken"})
                out["conditions"].append({"condition": label, "processes": processes,
                                          "broken_threads": default, "repeats": rows})
        return out


SPEED = SpeedStudy()
