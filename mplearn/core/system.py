"""The System: builds the shared state, starts the actor and the learners, watches them, and
cleans up after them whatever happens.

Three modes run the same ``Actor`` and ``Learner`` code:

* ``inline``: one process, alternating rounds (an actor round, then each learner's owed
  updates). The sequential baseline, and the easiest to debug.
* ``lockstep``: real processes that meet at a barrier twice per round, doing exactly what inline
  does: bit-for-bit reproducible for a seed.
* ``async``: free-running processes; only this mode can show timing effects (policy lag, torn
  reads), and only this mode overlaps acting and learning.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import signal
import threading
import time
import traceback
import weakref
from collections.abc import Callable
from contextlib import contextmanager

import numpy as np
import torch

from mplearn.core.actor import Actor, actor_main
from mplearn.core.channels import AgentChannel, Rendezvous, named_semaphores, unlink_semaphores
from mplearn.core.config import Config, ConfigError
from mplearn.core.learner import Learner, learner_main, resolve_device
from mplearn.core.metrics import Collector, Result
from mplearn.core.replay import ReplayBuffer, check_shared_memory
from mplearn.core.resources import check_resources
from mplearn.core.watchdog import Stall, Watchdog, culprit, duties, is_stopped
from mplearn.core.weights import create_shared_model
from mplearn.core.workers import DONE, ERROR, worker_main
from mplearn.envs import env_spec

# What stop() keeps of its timeout for the last resort (terminate, then kill, the workers left).
_CLEANUP_S = 1.5


class WorkerError(RuntimeError):
    """A worker process failed; the message names it and carries its traceback."""

    def __init__(self, name: str, detail: str):
        super().__init__(f"{name} failed:\n{detail}")
        self.worker = name


def _killed(processes: list) -> bool:
    """Whether a worker died by a signal (exit code < 0: OOM killer, segfault, kill -9)."""
    return any(p.exitcode is not None and p.exitcode < 0 for p in processes)


def _join(processes: list, seconds: float) -> None:
    """Join every process, all within ``seconds``."""
    deadline = time.monotonic() + seconds
    for p in processes:
        p.join(timeout=max(0.0, deadline - time.monotonic()))


def _kill_stopped(processes: list, also: tuple[str, ...] = ()) -> None:
    """SIGKILL the workers stopped by a signal (and those named in ``also``): a stopped process
    cannot exit, nor release a lock it holds, until continued (even SIGTERM waits); SIGKILL ends
    it at once."""
    doomed = [p for p in processes
              if p.exitcode is None and (p.name in also or is_stopped(p.pid))]
    for p in doomed:
        p.kill()
    _join(doomed, 0.5)


def _cleanup(processes: list, buffers: list, rendezvous: Rendezvous | None,
             semaphores: list) -> None:
    """Last resort (also run by the finalizer): stop, terminate, kill, unlink. Idempotent, and
    done within ``_CLEANUP_S`` (plus half a second for a stopped worker).

    A Ctrl-C waits until it is done: cut short, it would leave workers and shared memory
    behind, and a finalizer runs only once."""
    with _sigint_deferred():
        _kill_stopped(processes)
        if rendezvous is not None:
            # A worker killed inside the barrier's lock leaves it held for ever: then aborting
            # the barrier would block; the others are terminated instead.
            rendezvous.stop(barrier=not _killed(processes))
            _join(processes, _CLEANUP_S / 3)
        for p in processes:
            if p.is_alive():
                p.terminate()
        _join(processes, _CLEANUP_S / 3)
        for p in processes:
            if p.is_alive():
                p.kill()
        _join(processes, _CLEANUP_S / 3)
        for b in buffers:
            b.close()
            b.unlink()
        unlink_semaphores(semaphores)


def _private(model: torch.nn.Module) -> None:
    """Copy a shared model's tensors out of shared memory, in place: the same Parameter objects
    and values, without the file descriptor each shared tensor keeps open."""
    tensors = [*model.parameters(), *model.buffers(),
               *(v for v in vars(model).values() if isinstance(v, torch.Tensor))]
    with torch.no_grad():
        for t in tensors:
            t.data = t.data.clone()


@contextmanager
def _sigint_ignored():
    """Ignore SIGINT in this process for a moment (main thread only: elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def _sigint_deferred():
    """Hold a Ctrl-C back until the block is done, then deliver it (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(frame))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught and callable(previous):
        previous(signal.SIGINT, caught[0])  # Python's default handler raises KeyboardInterrupt


class System:
    """``with System(config) as system: result = system.run()``."""

    def __init__(self, config: Config, source_models: list | None = None):
        """``source_models``: one model per agent whose weights (both networks) the shared
        models start from, as when a learner resumes from a checkpoint; None: fresh."""
        if not isinstance(config, Config):
            raise ConfigError(f"config: expected a Config, got {type(config).__name__}")
        self.config = config
        # Everything that can be wrong with the input fails here, before any process starts.
        self.spec = env_spec(config.env_id, config.env_kwargs)
        resolve_device(config.device)
        # Memory, open files, and source_models (a list of one model or None per agent).
        check_resources(config, self.spec, source_models)
        self._sources = list(source_models) if source_models is not None \
            else [None] * config.n_agents
        check_shared_memory(config.n_agents, min(config.buffer_size, config.total_env_steps),
                            self.spec.obs_shape, config.replay_obs_dtype)
        self._ctx = mp.get_context("spawn")
        self._processes: list = []
        self._finalizer = None
        self._started = self._stopped = False
        self._done: set[str] = set()
        self.error: WorkerError | None = None
        self._records = self._rendezvous = self._actor = None  # start() sets, stop() drops them
        self._semaphores: list = []  # named: unlinked once every worker has opened them
        self._watchdog = Watchdog(config.stall_timeout_s)
        self._stalled: list[str] = []  # workers the watchdog found stuck: killed by stop()
        self.shared_models: list = []

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> System:
        if self._started:
            raise RuntimeError("System.start: already started; make a new System to run again")
        self._started = True
        try:
            self._launch()
        except BaseException:  # an error or a Ctrl-C half-way: undo what had started
            self._stopped = True
            with _sigint_deferred():
                if self._finalizer is not None:
                    self._finalizer()
                self._release()
            raise
        return self

    def _launch(self) -> None:
        c, ctx, n = self.config, self._ctx, self.config.n_agents
        # FIX(worker_seeding): every agent's actor stream and every learner its own seed.
        if c.fixes.worker_seeding:
            seeds = [int(s) for s in np.random.SeedSequence(c.seed).generate_state(2 * n)]
        else:  # every stream seeded with the run's seed: identical draws everywhere
            seeds = [c.seed] * (2 * n)
        actor_seeds, learner_seeds = seeds[:n], seeds[n:]
        with torch.random.fork_rng():
            torch.manual_seed(c.seed)  # paired runs: the same seed gives the same initial weights
            self.shared_models = [create_shared_model(c, source, spec=self.spec)
                                  for source in self._sources]
        if c.mode != "inline":
            self._records = ctx.Queue()
            self._rendezvous = Rendezvous(ctx, n + 1, lockstep=c.mode == "lockstep")
            self._semaphores += named_semaphores(self._records, self._rendezvous)
        # From here on, what is made is undone however start() ends (it calls the finalizer).
        self.buffers: list[ReplayBuffer] = []
        self._finalizer = weakref.finalize(self, _cleanup, self._processes, self.buffers,
                                           self._rendezvous, self._semaphores)
        self.buffers += [ReplayBuffer(c.buffer_size, self.spec.obs_shape, ctx, c.fixes,
                                      c.replay_obs_dtype) for _ in range(n)]
        self.channels = [
            AgentChannel(i, self.shared_models[i], self.buffers[i],
                         epsilon=ctx.Value("d", c.epsilon_start, lock=False),
                         env_steps=ctx.Value("q", 0, lock=False),
                         updates=ctx.Value("q", 0, lock=False))
            for i in range(n)
        ]
        self._collector = Collector(n, time.time())
        self._start_time = time.perf_counter()
        if c.mode == "inline":
            self._unlink_names()  # nobody else attaches
            self._records = queue.SimpleQueue()
            self.inline_seconds = {"act": 0.0, "learn": 0.0}  # where inline time goes
            self._actor = Actor(c, self.spec, self.channels, actor_seeds)
            self._actor.first_pull()
            self._learners = [Learner(c, self.spec, ch, s)
                              for ch, s in zip(self.channels, learner_seeds, strict=True)]
            return
        self._spawn("actor", actor_main, c, self.spec, self.channels, actor_seeds,
                    self._rendezvous)
        for ch, s in zip(self.channels, learner_seeds, strict=True):
            self._spawn(f"learner-{ch.agent_id}", learner_main, c, self.spec, ch, s,
                        self._rendezvous)
        self._await_attached()
        self._unlink_names()

    def _await_attached(self) -> None:
        """Wait until every worker has opened what it shares (it unpickled its arguments), has
        exited, or is stuck (the watchdog: its CPU time stays put while it starts)."""
        while self.error is None:
            starting = [p for i, p in enumerate(self._processes)
                        if not self._rendezvous.attached[i] and p.exitcode is None]
            if not starting:
                return
            self._drain(0.05)
            self._check_processes()

    def _unlink_names(self) -> None:
        """Remove the run's names from /dev/shm (replay segments, semaphores): every process
        that needs them has them open, and nothing then outlives the processes using it, even
        when they all die at once (a killed process group or Jupyter kernel)."""
        for b in self.buffers:
            b.unlink()
        unlink_semaphores(self._semaphores)

    def _spawn(self, name: str, target: Callable, *args) -> None:
        p = self._ctx.Process(target=worker_main,
                              args=(name, self._records, self.config.fixes, target, *args),
                              name=name, daemon=True)
        with _sigint_ignored():  # a child inherits it: a Ctrl-C while it starts must not kill it
            p.start()
        self._processes.append(p)

    def __enter__(self) -> System:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def done(self) -> bool:
        if not self._started:
            return False
        if self.config.mode == "inline":
            return self._actor.env_steps >= self.config.total_env_steps and all(
                lrn.updates_owed() <= 0 for lrn in self._learners)
        return len(self._done) == len(self._processes)

    @property
    def env_steps(self) -> int:
        return min(ch.env_steps.value for ch in self.channels)

    @property
    def updates(self) -> list[int]:
        return [ch.updates.value for ch in self.channels]

    def episodes(self, agent_id: int = 0) -> list[dict]:
        """The finished episodes collected so far (env_step, time, ret, length)."""
        return self._collector.episodes[agent_id]

    # --- progress ----------------------------------------------------------------------------
    def poll(self, timeout: float = 0.0) -> int:
        """Advance (inline) or watch (processes); collect records; raise a worker's error.

        Returns the env steps done per agent.
        """
        if not self._started or self._stopped:
            state = "stopped" if self._stopped else "not started"
            raise RuntimeError(f"System.poll: the system is {state}")
        if self.config.mode == "inline":
            if self.error is None:  # a failed inline worker stays failed
                self._inline_round()
        else:
            self._drain(timeout)
            self._check_processes()
        if self.error is not None:
            raise self.error
        return self.env_steps

    def _inline_round(self) -> None:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # the same arithmetic as the single-threaded workers
        worker = "actor"  # who runs now: the name a failure gets, as in the other modes
        try:
            a, c = self._actor, self.config
            t0 = time.perf_counter()
            for _ in range(min(c.sync_interval, c.total_env_steps - a.env_steps)):
                a.step(self._records)
            t1 = time.perf_counter()
            for learner in self._learners:
                worker = f"learner-{learner.channel.agent_id}"
                learner.train_owed(self._records)
            self.inline_seconds["act"] += t1 - t0
            self.inline_seconds["learn"] += time.perf_counter() - t1
            if self.done:
                worker = "actor"
                a.record(self._records)
                for learner in self._learners:
                    worker = f"learner-{learner.channel.agent_id}"
                    learner.finish(self._records)
        except Exception as e:
            self.error = WorkerError(worker, traceback.format_exc())
            raise self.error from e
        finally:
            torch.set_num_threads(threads)
            self._drain(0.0)  # also what a failed round sent before its error

    def _drain(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                left = deadline - time.monotonic()
                rec = self._records.get(timeout=left) if left > 0 else self._records.get_nowait()
            except queue.Empty:
                return
            if rec[0] == DONE:
                self._done.add(rec[1])
            elif rec[0] == ERROR:
                if self.error is None:
                    self.error = WorkerError(rec[1], rec[2])
            else:
                self._collector.add(*rec)

    def _check_processes(self) -> None:
        for p in self._processes:
            if p.exitcode not in (None, 0) and self.error is None and p.name not in self._done:
                self._drain(0.2)  # its traceback may still be in the queue
                if self.error is None:
                    self.error = WorkerError(p.name, f"process exited with code {p.exitcode}")
        if self.error is None:
            stall = self._watch()
            if stall is not None:
                self._stalled.append(stall.name)
                self.error = WorkerError(stall.name, str(stall))

    def _watch(self) -> Stall | None:
        """The worker to blame, if the watchdog finds one stuck."""
        rv = self._rendezvous
        duty = duties(self.config, [ch.env_steps.value for ch in self.channels], self.updates,
                      rv.arrived, rv.passed)
        stalls = []
        for i, p in enumerate(self._processes):
            if p.name in self._done or p.exitcode is not None:
                continue
            progress, waited_on = duty[i]
            # Until it has attached, a worker also holds up the unlinking of the run's names.
            stalls.append(self._watchdog.check(p.name, p.pid, progress,
                                               waited_on or not rv.attached[i]))
        return culprit(stalls, self.config.stall_timeout_s)

    def stop(self, timeout: float = 10.0) -> Result:
        """Stop every worker, collect what they sent, free shared memory. Safe to call twice.
        Ends within ``timeout``: a worker that does not stop when asked is terminated, then
        killed; one stopped by a signal (it could not stop) is killed at once."""
        if not self._started or self._stopped:
            return self.result()
        self._stopped = True
        self.wall_s = time.perf_counter() - self._start_time
        deadline = time.monotonic() + timeout - _CLEANUP_S  # the rest for _cleanup
        try:
            if self.config.mode != "inline":
                # A stuck worker (found by the watchdog, or stopped by a signal) will not stop
                # when asked: kill it now; then the others are terminated, as after any kill
                # (they may wait on it, or on a lock it held).
                _kill_stopped(self._processes, also=tuple(self._stalled))
                if not _killed(self._processes):
                    if not self.done:
                        self._rendezvous.stop()
                    while (any(p.is_alive() for p in self._processes)
                           and time.monotonic() < deadline):
                        self._drain(0.05)
                self._drain(0.0)  # also what came since the last poll when a worker was killed
        finally:
            with _sigint_deferred():
                self._finalizer()
                self._release()
        return self.result()

    def _release(self) -> None:
        """Drop what a stopped System would otherwise hold until it is collected: the records
        queue and the rendezvous (pipes, semaphores), the inline actor's environments, the
        shared models' memory (copied out: the weights stay readable)."""
        if self._actor is not None:
            self._actor.close()
        self._records = self._rendezvous = None
        for model in self.shared_models:
            _private(model)

    def result(self) -> Result:
        if not self._started:
            raise RuntimeError("System.result: the system was never started")
        col = self._collector
        wall = getattr(self, "wall_s", time.perf_counter() - self._start_time)
        return Result(config=self.config.to_dict(), seed=self.config.seed,
                      episodes=col.episodes, learner=col.learner, actor=col.actor, wall_s=wall,
                      env_steps=self.env_steps, updates=self.updates,
                      error=str(self.error) if self.error else None)

    def run(self, progress: Callable[[System], None] | None = None) -> Result:
        """Start (if needed), run to the end, stop; re-raise a worker's error after cleanup."""
        if not self._started:
            self.start()
        try:
            while not self.done:
                self.poll(timeout=0.1)
                if progress is not None:
                    progress(self)
        finally:
            self.stop()
        if self.error is not None:
            raise self.error
        return self.result()


def train(config: Config | None = None, progress: Callable[[System], None] | None = None,
          **overrides) -> Result:
    """Run a system to the end and return its result: ``train(Config(), mode="inline")``."""
    config = (config or Config()).replace(**overrides) if overrides else (config or Config())
    return System(config).run(progress)
