"""Paired-seed sweeps: the runs behind ``data/``, how they are scheduled, stored and loaded.

A run is defined by a ``RunSpec`` (config with seed and fixes, optional restart) and stored
under ``<root>/runs/<key>.json.gz`` (``runstore``), the key a hash of that definition: a run
shared by several issues (the fixed system with identical config) is done once, and a run
whose file exists is skipped (resumption). Variants with the same seed share environment seeds
and initial weights (``System`` seeds both from ``Config.seed``), so their difference is paired.

``run_sweep`` runs the specs as tasks on Dask (a local cluster of single-threaded worker
processes, or an existing cluster): each task runs its spec in its own spawned process (its
workers are that process's children), as many at once as the cores allow. A run that fails
(a broken variant that crashes by design) is stored with status "crashed", its error, a
traceback summary and its partial curves. ``reproduce`` regenerates ``data/``; ``load``
gives a notebook what it plots.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import logging
import math
import multiprocessing as mp
import os
import platform
import queue
import re
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mplearn.core.config import Config, ConfigError
from mplearn.core.fixes import Fixes
from mplearn.core.metrics import FINAL_EPISODES, library_versions
from mplearn.core.system import System
from mplearn.core.workers import ERROR, worker_main
from mplearn.envs.slow import step_latency_s
from mplearn.issues import issue as catalogue_issue
from mplearn.issues import scenarios
from mplearn.issues.base import Scenario, Variant
from mplearn.lab import runstore, speed, stats

FORMAT = 1
MAX_POINTS = 250  # records kept per series (learner and actor records are subsampled)
DIGITS = 5  # significant digits kept for recorded floats
RUNS = "runs"
WINDOW_STEP = 100  # env steps between the points a window metric averages
# Cost model for scheduling (ms per env step on an idle core of the dev machine): acting, and
# learning per update. Used only to order runs and to skip one that cannot end in the budget.
ACT_MS, LEARN_MS = 0.13, 2.24


# --- what a run is -------------------------------------------------------------------------------

@dataclass(frozen=True)
class RunSpec:
    config: Config  # the whole run: total_env_steps is the total over both phases
    restart_at: int | None = None  # env steps of phase 1; phase 2 resumes from its models
    restart_overrides: tuple = ()  # (field, value) pairs for phase 2

    def definition(self) -> dict:
        return {"config": self.config.to_dict(), "restart_at": self.restart_at,
                "restart_overrides": dict(self.restart_overrides)}

    @property
    def key(self) -> str:
        text = json.dumps(self.definition(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def phases(self) -> list[tuple[Config, int]]:
        """(config, env-step offset) of each phase."""
        c = self.config
        if self.restart_at is None:
            return [(c, 0)]
        first = c.replace(total_env_steps=self.restart_at)
        second = c.replace(total_env_steps=c.total_env_steps - self.restart_at,
                           **dict(self.restart_overrides))
        return [(first, 0), (second, self.restart_at)]

    def cores(self) -> int:
        """Cores the run keeps busy: lockstep processes take turns, async ones do not."""
        c = self.config
        return {"inline": 1, "lockstep": c.n_agents, "async": c.n_agents + 1}[c.mode]

    def cost_s(self) -> float:
        """Wall seconds on idle dev-machine cores (the scheduler's prior): one actor acts for
        every agent; learners run one after another inline, side by side otherwise, and
        overlap the actor in async mode."""
        c = self.config
        act = c.n_agents * (ACT_MS + 1e3 * step_latency_s(c.env_id, c.env_kwargs))
        learn = LEARN_MS * c.updates_per_step
        per_step = {"inline": act + c.n_agents * learn, "lockstep": act + learn,
                    "async": max(act, learn)}[c.mode]
        return c.total_env_steps * per_step / 1e3


def run_specs(scenario: Scenario, variant: Variant) -> list[RunSpec]:
    """One spec per seed for a variant of a scenario."""
    fixes = Fixes().without(scenario.issue) if variant.broken else Fixes()
    restart = scenario.restart
    specs = []
    for seed in range(scenario.seeds):
        config = Config(**{**variant.overrides, "total_env_steps": scenario.steps,
                           "seed": seed, "fixes": fixes})
        specs.append(RunSpec(
            config, restart.at if restart else None,
            tuple(sorted(restart.overrides.items())) if restart else ()))
        specs[-1].phases()  # builds (so validates) each phase's config
    return specs


# --- one run, inside its own process -----------------------------------------------------------

def _round(x: float) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    return float(f"{x:.{DIGITS}g}")


def _columns(records: list[dict], offset: int) -> dict[str, list]:
    """Records as columns (env_step first), subsampled to at most MAX_POINTS."""
    stride = max(1, math.ceil(len(records) / MAX_POINTS))
    keep = records[::stride]
    if records and keep[-1] is not records[-1]:
        keep.append(records[-1])
    keys = [k for k in (records[0] if records else {})
            if k not in ("env_step", "time") and isinstance(records[0][k], (int, float))]
    out = {"env_step": [int(r["env_step"]) + offset for r in keep]}
    for k in keys:
        out[k] = [_round(float(r.get(k, math.nan))) for r in keep]
    return out


@torch.no_grad()
def _target_distance(system: System) -> list[float]:
    """Per agent, ||shared target - shared local|| / ||shared local|| (parameters)."""
    out = []
    for m in system.shared_models:
        local = torch.cat([p.reshape(-1) for p in m.qnetwork_local.parameters()])
        target = torch.cat([p.reshape(-1) for p in m.qnetwork_target.parameters()])
        out.append(_round(((target - local).norm() / local.norm()).item()))
    return out


@torch.no_grad()
def _shared_targets(system: System) -> list[torch.Tensor]:
    """Per agent, a copy of the shared target network's parameters, flattened."""
    return [torch.cat([p.reshape(-1) for p in m.qnetwork_target.parameters()]).clone()
            for m in system.shared_models]


@torch.no_grad()
def _sigmas(system: System) -> list[np.ndarray]:
    """Per agent, the shared online network's NoisyLinear sigma parameters, flattened."""
    out = []
    for m in system.shared_models:
        sig = [p.reshape(-1) for n, p in m.qnetwork_local.named_parameters() if "sigma" in n]
        out.append(torch.cat(sig).numpy().copy() if sig else np.zeros(0))
    return out


def _equal_actions(system: System, rows: int = 4000) -> dict[str, float | None]:
    """Agents 0 and 1, the same replay rows (row i is env step i for both): the fraction of
    equal actions among rows both collected at epsilon >= 0.5, and among all rows."""
    a, b = system.buffers[0], system.buffers[1]
    n = min(len(a), len(b))
    if n == 0:
        return {"explore": None, "all": None}
    ba, bb = (buf.sample(rows, np.random.default_rng(0)) for buf in (a, b))  # same indices
    same = ba.actions == bb.actions
    explore = (ba.epsilons >= 0.5) & (bb.epsilons >= 0.5)
    return {"explore": _round(float(same[explore].mean())) if explore.any() else None,
            "all": _round(float(same.mean()))}


def _run_phase(system: System) -> tuple[dict, BaseException | None]:
    """Run a system to its end; returns (measurements taken before stop, error or None)."""
    extras: dict = {}
    error = None
    try:
        system.start()
        sigma0 = _sigmas(system)
        target0 = _shared_targets(system)
        while not system.done:
            system.poll(timeout=0.1)
        extras["target_distance"] = _target_distance(system)
        # How far each shared target moved during the phase (0: never written by a publish).
        extras["target_moved"] = [
            _round(float((t1 - t0).norm() / t0.norm()))
            for t0, t1 in zip(target0, _shared_targets(system), strict=True)]
        if any(s.size for s in sigma0):
            extras["sigma"] = [{"start": _round(float(np.abs(s0).mean())),
                                "end": _round(float(np.abs(s1).mean())),
                                "change": _round(float(np.abs(s1 - s0).max()))}
                               for s0, s1 in zip(sigma0, _sigmas(system), strict=True)]
        if system.config.n_agents > 1:
            extras["equal_actions"] = _equal_actions(system)
    except Exception as e:  # a crash by design is a result: keep what was collected
        error = e
    finally:
        if system._started:
            system.stop()
    return extras, error


# The package's own folder: a frame is ours when its file is one of the package's modules.
_PACKAGE = Path(__file__).resolve().parents[1]
_FRAME = re.compile(r'\s*File "(?P<path>[^"]+)", line \d+')


def _is_ours(path: str) -> bool:
    """Whether a traceback frame's file is a module of the mplearn package. Not a substring
    test: a checkout in a folder named ``mplearn`` holds its virtual environment's torch too.
    The file's path below its last folder named ``mplearn`` must be a module of this package,
    so a traceback from another checkout or machine (a crash record, a Dask worker) matches."""
    parts = re.split(r"[\\/]", path)
    if "mplearn" not in parts:
        return False
    rel = parts[len(parts) - parts[::-1].index("mplearn"):]
    return bool(rel) and "site-packages" not in rel and "dist-packages" not in rel \
        and _PACKAGE.joinpath(*rel).is_file()


def summarize_traceback(detail: str, frames: int = 6) -> tuple[str, str]:
    """(the error's last line, a summary): the last ``frames`` frames inside the mplearn
    package, each with its source line, then the error."""
    lines = [ln for ln in detail.strip().splitlines() if ln.strip()]
    if not lines:
        return "unknown error", ""
    ours = []
    for i, ln in enumerate(lines[:-1]):
        frame = _FRAME.match(ln)
        if frame and _is_ours(frame["path"]):
            ours.append(ln.strip())
            nxt = lines[i + 1]
            if not nxt.lstrip().startswith(("File ", "^", "~")):
                ours.append("    " + nxt.strip())
    keep = ours[-2 * frames:] if ours else lines[-2 * frames - 1:-1]
    return lines[-1].strip(), "\n".join([*keep, lines[-1].strip()])


def _summary_of(error: BaseException) -> tuple[str, str]:
    """Summary of an exception: a worker's traceback (in a WorkerError) when it has one."""
    text = str(error) or type(error).__name__
    detail = text if "Traceback" in text else "".join(traceback.format_exception(error))
    return summarize_traceback(detail)


def machine() -> dict:
    """Where runs happen: a label (MPLEARN_MACHINE, else cores and host), cores, cpu model."""
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = os.cpu_count()
    label = os.environ.get("MPLEARN_MACHINE") or f"{cores}-core {platform.node()}"
    return {"label": label, "cores": cores, "cpu": cpu, "hostname": platform.node()}


def run_one(spec: RunSpec) -> dict:
    """Run a spec (both phases of a restart) in this process; returns its record."""
    torch.manual_seed(spec.config.seed)  # inline mode builds the actor's nets in this process
    record = {"format": FORMAT, "key": spec.key, "spec": spec.definition(), "status": "ok",
              "error": None, "traceback": None, "restart_at": spec.restart_at,
              "machine": machine(), "versions": library_versions(),
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    n = spec.config.n_agents
    episodes = [[[], []] for _ in range(n)]
    learner = [[] for _ in range(n)]
    actor = [[] for _ in range(n)]
    extras: dict = {}
    env_steps, updates, wall = 0, [0] * n, 0.0
    sources = None
    start = time.perf_counter()
    for config, offset in spec.phases():
        system = System(config, sources)
        phase_extras, error = _run_phase(system)
        result = system.result() if system._started else None
        if result is not None:
            for i in range(n):
                for e in result.episodes[i]:
                    episodes[i][0].append(int(e["env_step"]) + offset)
                    episodes[i][1].append(_round(float(e["ret"])))
                learner[i].append(_columns(result.learner[i], offset))
                actor[i].append(_columns(result.actor[i], offset))
            env_steps = offset + result.env_steps
            updates = [u + v for u, v in zip(updates, result.updates, strict=True)]
        for k, v in phase_extras.items():
            extras.setdefault(k, []).append(v)  # one entry per phase
        if error is not None:
            record["status"] = "crashed"
            record["error"], record["traceback"] = _summary_of(error)
            break
        sources = system.shared_models
    wall = time.perf_counter() - start
    record.update(env_steps=env_steps, updates=updates, wall_s=round(wall, 2),
                  episodes=episodes, learner=[_concat(p) for p in learner],
                  actor=[_concat(p) for p in actor], extras=extras)
    return record


def _concat(phases: list[dict]) -> dict[str, list]:
    out: dict[str, list] = {}
    for cols in phases:
        for k, v in cols.items():
            out.setdefault(k, []).extend(v)
    return out


def run_main(spec: RunSpec, path: str, *, records) -> None:
    """Process entry point of one run: run it, write its record (crashed ones too)."""
    runstore.write(path, run_one(spec))


# --- the sweep ------------------------------------------------------------------------------------

@dataclass
class SweepReport:
    ran: int = 0
    skipped: int = 0  # files already there
    crashed: int = 0
    unfinished: int = 0  # not started or stopped at the time budget
    wall_s: float = 0.0
    speed: str = ""  # single_thread's speed study: "measured", "kept", "not started"


def _crashed_record(spec: RunSpec, error: str, detail: str) -> dict:
    n = spec.config.n_agents
    return {"format": FORMAT, "key": spec.key, "spec": spec.definition(), "status": "crashed",
            "error": error, "traceback": detail, "restart_at": spec.restart_at,
            "machine": machine(), "versions": library_versions(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "env_steps": 0, "updates": [0] * n, "wall_s": 0.0,
            "episodes": [[[], []] for _ in range(n)], "learner": [{} for _ in range(n)],
            "actor": [{} for _ in range(n)], "extras": {}}


class SchedulerError(ValueError):
    """The sweep cannot run on Dask: not installed, no scheduler there, daemonic workers."""


def _daemonic() -> bool:
    """Run on each Dask worker: a daemonic worker process may not start a run's process."""
    return mp.current_process().daemon


def run_task(spec: RunSpec, deadline: float, stop: str) -> tuple[dict | None, float]:
    """A Dask task: run ``spec`` in its own spawned process (its workers are that process's
    children) and return (its record, wall seconds), or (None, seconds) when stopped at
    ``deadline`` (``time.time()``) or by the sweep's ``stop`` event. The record travels back
    to the client, so the workers need no shared filesystem. A run that raises or whose
    process dies gives a crashed record."""
    from distributed import Event

    started = time.monotonic()
    ctx = mp.get_context("spawn")
    errors = ctx.Queue()
    name = f"run-{spec.key}"
    with tempfile.TemporaryDirectory(prefix="mplearn-") as tmp:
        path = runstore.path(tmp, spec.key)
        p = ctx.Process(target=worker_main, name=name,
                        args=(name, errors, Fixes(), run_main, spec, str(path)))
        p.start()  # not a daemon: its own workers are its children
        stopped = Event(stop)
        while p.exitcode is None:
            p.join(timeout=1.0)
            if p.exitcode is None and (time.time() > deadline or stopped.is_set()):
                p.terminate()  # its workers follow it (they exit with their parent)
                p.join(timeout=10)
                return None, time.monotonic() - started
        if path.exists():
            record = runstore.read(path)
        else:  # the run process itself failed
            failures: dict[str, str] = {}
            _drain_errors(errors, failures, timeout=0.5)
            detail = failures.get(name, f"the run process exited with code {p.exitcode}")
            record = _crashed_record(spec, *summarize_traceback(detail))
    return record, time.monotonic() - started


@contextmanager
def _client(jobs: int | None, scheduler: str | None):
    """A Dask client: on the cluster at ``scheduler``, or on a local cluster of ``jobs``
    (default: all cores) single-threaded worker processes. Workers must not be daemonic (a
    daemonic process may not have children, and every run is a child of its worker)."""
    try:
        import dask
        from distributed import Client, LocalCluster
    except ImportError:
        raise SchedulerError("dask: sweeps run on Dask: pip install 'mplearn[sweeps]' "
                             "(or -r requirements.txt)") from None
    environ = dict(os.environ)
    with dask.config.set({"distributed.worker.daemon": False}):  # also for restarted workers
        if scheduler:
            try:
                client = Client(scheduler, set_as_default=False)
            except OSError as e:  # unreachable, or timed out
                raise SchedulerError(f"scheduler: cannot connect to {scheduler}: {e}") from None
            cluster = None
        else:
            cluster = LocalCluster(n_workers=jobs or os.cpu_count() or 1, threads_per_worker=1,
                                   processes=True, dashboard_address=None,
                                   silence_logs=logging.ERROR)
            client = Client(cluster, set_as_default=False)
        # A LocalCluster writes OMP/MKL/OPENBLAS_NUM_THREADS=1 into this process's environment
        # for its workers to inherit, and leaves them there: every process started here
        # afterwards would be single-threaded (and the single_thread issue could not show).
        for name in set(os.environ) - set(environ):
            del os.environ[name]
        os.environ.update(environ)
        try:
            daemonic = sorted(a for a, d in client.run(_daemonic).items() if d)
            if daemonic:
                raise SchedulerError(f"scheduler: workers {', '.join(daemonic)} are daemonic "
                                     "and cannot start runs; start them with "
                                     "DASK_DISTRIBUTED__WORKER__DAEMON=False")
            yield client
        finally:
            client.close()
            if cluster is not None:
                cluster.close()


def startable(todo: list[RunSpec], busy: int, jobs: int, any_running: bool, keep_order: bool,
              seconds_left: float, slowdown: float = 1.0) -> list[RunSpec]:
    """The specs of ``todo`` to start now, in order: each must fit in the cores left (``jobs``
    minus ``busy``; one run always fits on an idle cluster) and be expected to end in the
    seconds left (its cost times the slowdown seen so far). A run that cannot end in time is
    passed over. With ``keep_order`` a run that does not fit yet holds back the ones after it:
    pairs stay side by side, and a run that needs more cores (async, several agents) is not
    starved by the one-core runs queued behind it."""
    chosen = []
    for spec in todo:
        if spec.cost_s() * slowdown > seconds_left:
            continue
        if busy + spec.cores() > jobs and (any_running or chosen):
            if keep_order:
                break
            continue
        chosen.append(spec)
        busy += spec.cores()
    return chosen


def run_sweep(specs: Iterable[RunSpec], root: str | Path, jobs: int | None = None,
              progress: bool = True, budget_s: float | None = None,
              scheduler: str | None = None, keep_order: bool = False) -> SweepReport:
    """Run every spec whose file is missing under ``root/runs`` on Dask: a local cluster of
    ``jobs`` single-threaded workers (default: one per core), or the cluster at ``scheduler``
    (``jobs`` default: its worker threads). At most ``jobs`` cores are kept busy (a run takes
    as many as it keeps busy). With ``budget_s``, no run starts that would not end in time,
    and runs still going at the end are stopped (left for the next sweep). Runs start longest
    first (a shorter tail), or in the given order with ``keep_order`` (pairs side by side)."""
    from distributed import KilledWorker, as_completed
    from tqdm import tqdm

    t0 = time.time()
    store = Path(root) / RUNS
    unique = {s.key: s for s in specs}
    todo = [s for k, s in unique.items() if runstore.find(store, k) is None]
    report = SweepReport(skipped=len(unique) - len(todo))
    if not keep_order:
        todo.sort(key=lambda s: -s.cost_s() * s.cores())  # longest first: a shorter tail
    deadline = t0 + budget_s if budget_s is not None else math.inf
    slowdown = 1.0  # observed wall / prior cost, the largest seen
    if not any(t0 + s.cost_s() <= deadline for s in todo):  # nothing to do: no cluster
        report.unfinished = len(todo)
        report.wall_s = round(time.time() - t0, 1)
        return report
    bar = tqdm(total=len(todo), unit="run", desc="reproduce", disable=not progress,
               file=sys.stderr)
    stop = f"mplearn-stop-{uuid.uuid4().hex}"
    running: dict = {}  # future -> spec
    with _client(jobs, scheduler) as client:
        jobs = jobs or sum(client.nthreads().values())
        done = as_completed(loop=client.loop)

        def submit() -> None:
            busy = sum(s.cores() for s in running.values())
            for spec in startable(todo, busy, jobs, bool(running), keep_order,
                                  deadline - time.time(), slowdown):
                future = client.submit(run_task, spec, deadline, stop, pure=False,
                                       key=f"run-{spec.key}-{uuid.uuid4().hex[:8]}")
                running[future] = spec
                done.add(future)
                todo.remove(spec)

        try:
            submit()
            for future in done:
                spec = running.pop(future)
                try:
                    record, wall = future.result()
                except KilledWorker:  # its Dask worker died, again and again: not a result
                    record, wall = None, 0.0
                if record is None:  # stopped at the budget
                    report.unfinished += 1
                else:
                    runstore.write(runstore.path(store, spec.key), record)
                    report.ran += 1
                    report.crashed += record["status"] == "crashed"
                    if record["status"] == "ok":
                        slowdown = max(slowdown, wall / spec.cost_s())
                    bar.update(1)
                    bar.set_postfix(crashed=report.crashed, running=len(running),
                                    refresh=False)
                submit()
        finally:  # interrupted: stop the runs (on a cluster that outlives this sweep too)
            if running:
                from distributed import Event

                Event(stop, client=client).set()
                until = time.monotonic() + 15
                while time.monotonic() < until and not all(f.done() for f in running):
                    time.sleep(0.2)
            bar.close()
    report.unfinished += len(todo) + len(running)
    report.wall_s = round(time.time() - t0, 1)
    return report


def _drain_errors(errors, failures: dict, timeout: float = 0.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            left = deadline - time.monotonic()
            rec = errors.get(timeout=left) if left > 0 else errors.get_nowait()
        except queue.Empty:
            return
        if rec[0] == ERROR:
            failures[rec[1]] = rec[2]


# --- data/: the scenarios' runs and their manifests ----------------------------------------------

def scenario_specs(scenario: Scenario) -> dict[str, list[RunSpec]]:
    """Variant name -> its runs, one per seed."""
    return {v.name: run_specs(scenario, v) for v in scenario.variants()}


def _metric(window: dict | None, steps: list, rets: list) -> float:
    """Final return, or the learning curve (running mean of the last 20 episodes) averaged
    over the window's env steps, every 100: what the figure shows there. (A mean over the
    episodes ending in the window would weigh a burst of short episodes by their number.)"""
    rets = np.asarray(rets, dtype=float)
    if window is None:
        return float(rets[-FINAL_EPISODES:].mean()) if rets.size else math.nan
    grid = np.arange(window["start"] + WINDOW_STEP, window["end"] + 1, WINDOW_STEP)
    curve = stats.curves_on_grid([(steps, rets)], grid)[0]
    return float(np.nanmean(curve)) if np.isfinite(curve).any() else math.nan


def run_values(window: dict | None, rec: dict) -> tuple[float, float]:
    """(final return, the metric: ``window`` None or {start, end}) of a run record, averaged
    over its agents."""
    final = [_metric(None, s, r) for s, r in rec["episodes"]]
    metric = [_metric(window, s, r) for s, r in rec["episodes"]]
    return float(np.mean(final)), float(np.mean(metric))


def where_run(rec: dict) -> dict:
    """Where a run record was made: its machine label and torch version."""
    return {"machine": rec["machine"]["label"], "torch": str(rec["versions"].get("torch"))}


ONE_MACHINE_EXCLUSION = "runs on two machines or torch builds"


@dataclass
class PairedRuns:
    """The usable pairs of one condition (seed i of the fixed arm with seed i of the broken
    one), and the pairs left out, counted by reason: a missing run; runs on two machines or
    torch builds (two machines running one config and seed differ by more than several
    effects); a run with no finished episode (no value)."""

    seeds: list[int] = dataclasses.field(default_factory=list)
    fixed: list[dict] = dataclasses.field(default_factory=list)  # run records
    broken: list[dict] = dataclasses.field(default_factory=list)
    fixed_values: list[float] = dataclasses.field(default_factory=list)  # the metric
    broken_values: list[float] = dataclasses.field(default_factory=list)
    machines: list[str] = dataclasses.field(default_factory=list)  # distinct, of pairs used
    excluded: dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def differences(self) -> np.ndarray:
        return np.asarray(self.fixed_values, dtype=float) - np.asarray(self.broken_values,
                                                                        dtype=float)

    def _exclude(self, why: str) -> None:
        self.excluded[why] = self.excluded.get(why, 0) + 1


def paired_runs(manifest: dict, pair: dict, base: str | Path) -> PairedRuns:
    """The pairs of ``pair`` (a manifest's {condition, fixed, broken}) that a verdict uses;
    ``base`` the manifest's folder. A crashed run's metric is its partial curve's
    (``run_values``)."""
    window = manifest["metric"]["window"]

    def rows(variant: str) -> dict[int, dict]:
        return {r["seed"]: r for r in manifest["runs"] if r["variant"] == variant}

    fixed, broken = rows(pair["fixed"]), rows(pair["broken"])
    out = PairedRuns()
    for seed in sorted(set(fixed) | set(broken)):
        paths = [Path(base) / r["file"] for r in (fixed.get(seed), broken.get(seed))
                 if r is not None and r.get("status") != "missing"]
        if len(paths) < 2 or not all(q.exists() for q in paths):
            out._exclude("missing run")
            continue
        rf, rb = (runstore.read(q) for q in paths)
        if where_run(rf) != where_run(rb):
            out._exclude(ONE_MACHINE_EXCLUSION)
            continue
        vf, vb = run_values(window, rf)[1], run_values(window, rb)[1]
        if not (math.isfinite(vf) and math.isfinite(vb)):
            out._exclude("no finished episode")
            continue
        out.seeds.append(seed)
        out.fixed.append(rf)
        out.broken.append(rb)
        out.fixed_values.append(vf)
        out.broken_values.append(vb)
        label = "{machine}, torch {torch}".format(**where_run(rf))
        if label not in out.machines:
            out.machines.append(label)
    return out


def _declared(scenario: Scenario, condition: str | None = None) -> dict:
    """What the scenario declares before any run, for the manifest."""
    margin = scenario.margin_of(condition) if condition is not None else scenario.margin
    m = scenario.manipulation
    return {"margin": dataclasses.asdict(margin) if margin else None,
            "manipulation": {"description": m.description, "unit": m.unit} if m else None}


def write_manifest(scenario: Scenario, root: str | Path, command: str) -> dict:
    root = Path(root)
    window = dataclasses.asdict(scenario.metric) if scenario.metric else None
    runs, machines, versions, dates = [], {}, None, []
    for name, specs in scenario_specs(scenario).items():
        for spec in specs:
            path = runstore.find(root / RUNS, spec.key)
            file = (path or runstore.path(root / RUNS, spec.key)).name
            row = {"variant": name, "seed": spec.config.seed, "file": f"../{RUNS}/{file}"}
            if path is not None:
                rec = runstore.read(path)
                final, metric = run_values(window, rec)
                row.update(status=rec["status"], env_steps=rec["env_steps"],
                           updates=rec["updates"], final_return=_round(final),
                           metric=_round(metric),
                           wall_s=rec["wall_s"], **where_run(rec), error=rec["error"])
                where = machines.setdefault(rec["machine"]["label"], {
                    **rec["machine"], "library_versions": rec["versions"], "runs": 0})
                where["runs"] += 1
                versions = versions or rec["versions"]
                dates.append(rec["date"])
            else:
                row.update(status="missing")
            runs.append(row)
    info = catalogue_issue(scenario.issue)
    variants = scenario.variants()
    manifest = {
        "issue": scenario.issue, "title": info.title, "question": scenario.question,
        "metric": {"label": scenario.metric_label, "window": window},
        # Declared before the runs (the verdict reads them from the scenario, in code).
        "declared": {"metric": scenario.metric_label, **_declared(scenario),
                     "max_seeds": scenario.max_seeds},
        "scenario": {"mode": scenario.mode, "steps": scenario.steps, "seeds": scenario.seeds,
                     "restart": dataclasses.asdict(scenario.restart) if scenario.restart
                     else None,
                     "diagnostics": list(scenario.diagnostics),
                     "extras": list(scenario.extras)},
        "variants": [{"name": v.name, "condition": v.condition, "broken": v.broken,
                      "overrides": v.overrides,
                      "config": run_specs(scenario, v)[0].config.to_dict()}
                     for v in variants],
        "pairs": [{"condition": c, "fixed": f, "broken": b, **_declared(scenario, c),
                   "seeds": _pair_machines(runs, f, b)} for c, f, b in scenario.pairs()],
        "runs": runs,
        "complete": all(r["status"] != "missing" for r in runs),
        "provenance": {
            "command": command, "library_versions": versions or library_versions(),
            "machines": list(machines.values()),  # each with its runs' library versions
            "run_dates": [min(dates), max(dates)] if dates else None,
            "written": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"),
            "package_version": (versions or library_versions())["mplearn"]},
    }
    runstore.write_json(root / scenario.issue / "manifest.json", manifest)
    return manifest


def _pair_machines(runs: list[dict], fixed: str, broken: str) -> list[dict]:
    """Per seed with both runs stored: where each ran, and whether that is one machine and
    torch build (a verdict uses only those)."""
    by = {(r["variant"], r["seed"]): r for r in runs if r["status"] != "missing"}
    out = []
    for seed in sorted({s for v, s in by if v == fixed} & {s for v, s in by if v == broken}):
        f, b = ({"machine": by[(v, seed)]["machine"], "torch": by[(v, seed)]["torch"]}
                for v in (fixed, broken))
        out.append({"seed": seed, "fixed": f, "broken": b, "one_machine": f == b})
    return out


def import_pairs(source: str | Path, root: str | Path = "data",
                 chosen: Iterable[Scenario] | None = None) -> dict[str, int]:
    """Copy into ``root/runs`` the pairs of ``source/runs`` (a sweep made elsewhere, such as on
    another machine) that ``root`` lacks as a pair on one machine. Pairs travel whole: a run is
    copied only with its partner, both made on one machine and torch build, and never over a
    run that already completes a usable pair in ``root`` (runs are shared between scenarios).
    A pair is usable when both runs come from one machine and torch build and its broken run
    holds what the scenario's manipulation check reads (older runs may predate it).
    Returns counts: pairs imported, kept (``root`` had them), conflicting, absent."""
    src, dst = Path(source) / RUNS, Path(root) / RUNS
    counts = {"imported": 0, "kept": 0, "conflict": 0, "absent": 0}

    def where(folder: Path, spec: RunSpec) -> dict | None:
        path = runstore.find(folder, spec.key)
        return where_run(runstore.read(path)) if path is not None else None

    def readable(folder: Path, spec: RunSpec, manipulation) -> bool:
        """The broken run holds the record its manipulation check reads (older runs may not)."""
        if manipulation is None:
            return True
        return manipulation.measure(runstore.read(runstore.find(folder, spec.key))) is not None

    pairs = []  # (fixed spec, broken spec, the scenario's manipulation check)
    for s in (list(chosen) if chosen is not None else list(scenarios())):
        by_variant = scenario_specs(s)
        for _, fixed, broken in s.pairs():
            pairs += [(f, b, s.manipulation)
                      for f, b in zip(by_variant[fixed], by_variant[broken], strict=True)]

    def usable(folder: Path, f: RunSpec, b: RunSpec, manipulation) -> bool:
        w = where(folder, f)
        return w is not None and w == where(folder, b) and readable(folder, b, manipulation)

    # Keys that complete a usable pair in root: not to be overwritten.
    anchored = {spec.key for f, b, m in pairs if usable(dst, f, b, m) for spec in (f, b)}
    for f, b, manipulation in pairs:
        pair = (f, b)
        if usable(dst, f, b, manipulation):
            counts["kept"] += 1
            continue
        w_dst = [where(dst, spec) for spec in pair]
        if not usable(src, f, b, manipulation):
            counts["absent"] += 1
            continue
        w_src = [where(src, spec) for spec in pair]
        if any(spec.key in anchored and w != w_src[0] for spec, w in zip(pair, w_dst, strict=True)):
            counts["conflict"] += 1
            continue
        dst.mkdir(parents=True, exist_ok=True)
        for spec in pair:
            old = runstore.find(dst, spec.key)  # a lone run (no partner here), or a legacy file
            if old is not None:
                old.unlink()
            runstore.write(runstore.path(dst, spec.key),
                           runstore.read(runstore.find(src, spec.key)))
            anchored.add(spec.key)
        counts["imported"] += 1
    return counts


def stored_records(issue_name: str, root: str | Path = "data",
                   broken: bool | None = None) -> Iterable[dict]:
    """The stored run records of an issue's manifest (``broken``: only the broken arms'
    variants, or only the fixed ones; None: all), missing runs skipped."""
    folder = Path(root) / issue_name
    manifest = json.loads((folder / "manifest.json").read_text())
    is_broken = {v["name"]: v["broken"] for v in manifest["variants"]}
    for entry in manifest["runs"]:
        if broken is not None and is_broken[entry["variant"]] != broken:
            continue
        path = folder / entry["file"]
        if entry.get("status") != "missing" and path.exists():
            yield runstore.read(path)


def select(names: Iterable[str] | None = None, steps: int | None = None,
           seeds: int | None = None) -> list[Scenario]:
    """The scenarios to run (all when ``names`` is empty), scaled; raises ValueError naming a
    bad argument, and ConfigError for a config that would not validate."""
    names = list(names or [])
    if seeds is not None and (not names or speed.ISSUE in names) \
            and seeds > speed.SPEED.max_repeats:
        raise ValueError(f"seeds: {seeds} is above {speed.ISSUE}'s cap of "
                         f"{speed.SPEED.max_repeats} repeats (SpeedStudy.max_repeats)")
    if names and all(n == speed.ISSUE for n in names):
        return []  # a speed study alone (``reproduce`` runs it): no scenario
    names = [n for n in names if n != speed.ISSUE]
    by_name = {s.issue: s for s in scenarios()}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ValueError(f"name: no scenario for {unknown[0]!r}; known: {', '.join(by_name)}")
    if steps is not None and steps <= 0:
        raise ValueError(f"steps: must be > 0, got {steps}")
    if seeds is not None and seeds <= 0:
        raise ValueError(f"seeds: must be > 0, got {seeds}")
    chosen = [by_name[n] for n in dict.fromkeys(names)] if names else list(scenarios())
    over = [s for s in chosen if seeds is not None and seeds > s.max_seeds]
    if over:  # the cap is stated in advance: more seeds is a new plan, not more of this one
        raise ValueError(f"seeds: {seeds} is above {over[0].issue}'s cap of "
                         f"{over[0].max_seeds} (Scenario.max_seeds)")
    chosen = [s.scaled(steps, seeds) for s in chosen]
    for s in chosen:  # every config validates before any process starts
        scenario_specs(s)
    return chosen


def _paired_order(scenarios: list[Scenario]):
    """Specs in the order they should run: scenario by scenario, condition by condition, and
    within a condition seed by seed, fixed then broken. A sweep cut short by its budget then
    leaves complete pairs (at most one pair per worker unfinished), all from one sitting."""
    for s in scenarios:
        by_variant = scenario_specs(s)
        for _, fixed, broken in s.pairs():
            for pair in zip(by_variant[fixed], by_variant[broken], strict=True):
                yield from pair


def run_scenarios(scenarios: list[Scenario], root: str | Path = "data",
                  jobs: int | None = None, progress: bool = True,
                  budget_s: float | None = None, command: str | None = None,
                  scheduler: str | None = None) -> SweepReport:
    """Run the scenarios' missing runs (shared runs once) and (re)write their manifests."""
    if jobs is not None and jobs <= 0:
        raise ValueError(f"jobs: must be > 0, got {jobs}")
    specs = list(_paired_order(scenarios))
    report = run_sweep(specs, root, jobs, progress, budget_s, scheduler, keep_order=True)
    command = command or " ".join(["python -m mplearn", *sys.argv[1:]])
    for s in scenarios:
        if write_manifest(s, root, command)["complete"]:
            save_figures(s.issue, root)
    return report


def save_figures(issue_name: str, root: str | Path = "data") -> list[Path]:
    """``<root>/<issue>/figure.png`` (one per condition: ``figure_<i>.png``), a quick look at
    what ``load(issue_name).figure()`` draws."""
    res = load(issue_name, root)
    conditions = [p["condition"] for p in res.pairs]
    paths = []
    for i, condition in enumerate(conditions):
        name = "figure.png" if len(conditions) == 1 else f"figure_{i + 1}.png"
        path = Path(root) / issue_name / name
        res.figure(condition).savefig(path, dpi=80)
        paths.append(path)
    return paths


def reproduce(names: Iterable[str] | None = None, steps: int | None = None,
              seeds: int | None = None, jobs: int | None = None, root: str | Path = "data",
              progress: bool = True, budget_s: float | None = None,
              scheduler: str | None = None) -> SweepReport:
    """``python -m mplearn reproduce``: the named scenarios (all by default), scaled; on the
    Dask cluster at ``scheduler`` (default: a local one). ``single_thread`` (named, or all) is
    a speed study: it runs first, alone on this machine, unless this machine's is stored
    (``--seeds`` sets its repeats)."""
    names = list(names or [])
    chosen = select(names, steps, seeds)
    status = ""
    if not names or speed.ISSUE in names:
        t0 = time.time()
        status = study_speed(root, seeds, budget_s)
        if budget_s is not None:
            budget_s = max(0.0, budget_s - (time.time() - t0))
    report = (run_scenarios(chosen, root, jobs, progress, budget_s, scheduler=scheduler)
              if chosen else SweepReport())
    report.speed = status
    report.unfinished += status == "not started"
    return report


def study_speed(root: str | Path, repeats: int | None = None,
                budget_s: float | None = None) -> str:
    """single_thread's speed study on this machine, unless stored or over the budget."""
    if speed.stored_here(root, machine()["label"]):
        return "kept"
    if budget_s is not None and speed.SPEED.cost_s(os.cpu_count() or 1, repeats) > budget_s:
        return "not started"
    speed.measure(root, machine(), repeats,
                  command=" ".join(["python -m mplearn", *sys.argv[1:]]))
    return "measured"


# --- loading, for the notebooks -------------------------------------------------------------------

@dataclass
class IssueResults:
    """One issue's results: per variant the learning curves on a common grid, the per-seed
    values of the scenario's metric and their summaries; per condition the paired difference
    fixed - broken and the probability of improvement; diagnostics; the manifest."""

    issue: str
    manifest: dict
    grid: np.ndarray
    curves: dict[str, np.ndarray]  # variant -> [runs, len(grid)], return (last 20 episodes)
    values: dict[str, np.ndarray]  # variant -> per-seed metric (seed order; NaN if missing)
    summaries: dict[str, stats.Summary]  # variant -> IQM and 95% CI of the metric
    # condition -> fixed - broken over the verdict's pairs (``paired``): mean and the paired
    # t-interval (stats.t_interval, the verdict's), not a bootstrap
    differences: dict[str, stats.Summary]
    improvement: dict[str, float]  # condition -> P(fixed > broken)
    diagnostics: dict[str, dict[str, list]]  # "learner.loss" -> variant -> runs (steps, values)
    extras: dict[str, dict[str, list]]  # extra -> variant -> per-seed value (per phase)
    status: dict[str, list[str]]  # variant -> per-seed status
    paired: dict[str, PairedRuns] = dataclasses.field(default_factory=dict)  # condition ->
    margins: dict[str, float | None] = dataclasses.field(default_factory=dict)  # condition ->

    @property
    def variants(self) -> list[str]:
        return list(self.curves)

    @property
    def pairs(self) -> list[dict]:
        return self.manifest["pairs"]

    def table(self) -> str:
        """Per condition: fixed and broken (IQM, 95% CI), the paired difference, P(fixed >
        broken)."""
        rows = [f"{self.issue}: {self.manifest['metric']['label']}"]
        for p in self.pairs:
            f, b = self.summaries[p["fixed"]], self.summaries[p["broken"]]
            d = self.differences[p["condition"]]
            crashed = sum(s == "crashed" for s in self.status[p["broken"]])
            rows.append(f"  {p['condition'] or 'default':<16} fixed {f}; broken {b}"
                        f"{f' ({crashed} crashed)' if crashed else ''}; fixed - broken: "
                        f"mean {d.mean:.4g} [{d.ci_low:.4g}, {d.ci_high:.4g}]; "
                        f"P(fixed > broken) {self.improvement[p['condition']]:.2f}")
        return "\n".join(rows)

    def figure(self, condition: str | None = None):
        """The effect figure (plots.effect_figure) of one condition (default the first): the
        learning curves of the pairs the verdict uses, and beside them the paired differences
        per seed with their mean, its interval and the margin band."""
        from mplearn.lab import plots

        pair = next((p for p in self.pairs if condition in (None, p["condition"])), None)
        if pair is None:
            raise ValueError(f"condition: {condition!r} is not one of "
                             f"{[p['condition'] for p in self.pairs]}")
        cond = pair["condition"]
        used = self.paired[cond]
        curves = {"fixed": _agent_mean_curves(used.fixed, self.grid),
                  "broken": _agent_mean_curves(used.broken, self.grid)}
        d = self.differences[cond]
        title = f"{self.manifest['title']}" + (f" ({cond})" if cond else "")
        fig = plots.effect_figure(self.grid, curves, used.differences, (d.ci_low, d.ci_high),
                                  self.margins.get(cond), title)
        left, right = fig.axes[:2]
        restart = self.manifest["scenario"]["restart"]
        if restart:
            left.axvline(restart["at"], color="0.5", linewidth=1, linestyle=":")
        window = self.manifest["metric"]["window"]
        if window:
            left.axvspan(window["start"], window["end"], color="0.85", alpha=0.4, linewidth=0)
            right.set_xlabel("fixed - broken (shaded window)")
        return fig


def load(issue_name: str, root: str | Path = "data") -> IssueResults:
    """An issue's results from ``root/<issue>/manifest.json`` and its run files."""
    root = Path(root)
    path = root / issue_name / "manifest.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no results for {issue_name!r} (python -m mplearn "
                                f"reproduce {issue_name})")
    manifest = json.loads(path.read_text())
    window = manifest["metric"]["window"]
    grid = stats.make_grid(manifest["scenario"]["steps"], 100)
    curves, values, status, diagnostics, extras = {}, {}, {}, {}, {}
    for v in manifest["variants"]:
        rows = sorted((r for r in manifest["runs"] if r["variant"] == v["name"]),
                      key=lambda r: r["seed"])
        recs = [runstore.read(path.parent / r["file"])
                if r["status"] != "missing" else None for r in rows]
        status[v["name"]] = [r["status"] for r in rows]
        curves[v["name"]] = _agent_mean_curves(recs, grid)
        values[v["name"]] = np.array([run_values(window, rec)[1] if rec else math.nan
                                      for rec in recs])
        for name in manifest["scenario"]["diagnostics"]:
            kind, key = name.split(".", 1)
            diagnostics.setdefault(name, {})[v["name"]] = [
                (np.asarray(rec[kind][0].get("env_step", [])),
                 np.asarray([math.nan if x is None else x
                             for x in rec[kind][0].get(key, [])], dtype=float))
                for rec in recs if rec is not None]
        for name in manifest["scenario"]["extras"]:
            extras.setdefault(name, {})[v["name"]] = [
                rec["extras"].get(name) if rec else None for rec in recs]
    summaries = {k: stats.summarize(x) for k, x in values.items()}
    declared = next((s for s in scenarios() if s.issue == issue_name), None)
    differences, improvement, paired, margins = {}, {}, {}, {}
    for p in manifest["pairs"]:
        cond = p["condition"]
        a, b = values[p["fixed"]], values[p["broken"]]
        paired[cond] = used = paired_runs(manifest, p, path.parent)
        differences[cond] = _t_summary(used.differences)
        improvement[cond] = stats.probability_of_improvement(a, b)
        margin = declared.margin_of(cond) if declared else None  # the code's, else the manifest's
        margins[cond] = margin.value if margin else (p.get("margin") or {}).get("value")
    return IssueResults(issue_name, manifest, grid, curves, values, summaries, differences,
                        improvement, diagnostics, extras, status, paired, margins)


def _t_summary(differences: np.ndarray) -> stats.Summary:
    """The paired differences' mean with the verdict's t-interval, as a Summary."""
    t = stats.t_interval(differences)
    d = stats.finite(differences)
    nan = math.nan
    return stats.Summary(t.n, t.mean, float(stats.iqm(d)) if d.size else nan, t.low, t.high,
                         "mean", float(np.median(d)) if d.size else nan, t.confidence)


def _agent_mean_curves(recs: list[dict | None], grid: np.ndarray) -> np.ndarray:
    """[runs, T]: each run's return curve (running mean of 20 episodes), averaged over its
    agents; NaN after a crashed run's last step and for a missing run."""
    out = np.full((len(recs), grid.size), np.nan)
    for i, rec in enumerate(recs):
        if rec is None:
            continue
        per_agent = stats.curves_on_grid([tuple(e) for e in rec["episodes"]], grid,
                                         ends=[rec["env_steps"]] * len(rec["episodes"]))
        with np.errstate(all="ignore"):
            out[i] = per_agent.mean(axis=0)
    return out


__all__ = ["ConfigError", "IssueResults", "RunSpec", "SchedulerError", "SweepReport",
           "import_pairs", "load", "reproduce", "run_one", "run_scenarios", "run_sweep",
           "scenario_specs", "select"]
