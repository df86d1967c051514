"""Mechanism checks: for an issue, a tiny, fast, deterministic experiment that shows the
mechanism itself, run with the fix on and with it off.

``run_check(name)`` returns a ``CheckResult``; ``python -m mplearn check NAME`` prints it and
exits 0 only when the mechanism shows with the fix off and not with it on.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from mplearn.actor import Actor
from mplearn.channels import AgentChannel
from mplearn.config import Config
from mplearn.envs import StepResult, env_spec
from mplearn.fixes import Fixes
from mplearn.learner import Learner
from mplearn.replay import Batch, ReplayBuffer, _write_rows_main
from mplearn.system import System, train
from mplearn.weights import (
    IQNAgent,
    WeightPublisher,
    WeightSubscriber,
    build_network,
    create_shared_model,
)
from mplearn.workers import worker_main

# Small and fast: CartPole shapes, a few updates, cpu.
BASE = Config(device="cpu", batch_size=16, buffer_size=256, learning_starts=16,
              total_env_steps=400, log_interval=10_000, seed=0)


@dataclass(frozen=True)
class CheckResult:
    name: str
    measure: str  # what the numbers are
    fixed: float  # the measure with the fix on
    broken: float  # ... and off
    shows_fixed: bool  # the mechanism shows with the fix on (it must not)
    shows_broken: bool  # ... with it off (it must)

    @property
    def passed(self) -> bool:
        return self.shows_broken and not self.shows_fixed

    def __str__(self) -> str:
        return (f"{self.name}: {self.measure}\n  fix on : {self.fixed:.6g}  "
                f"(mechanism shows: {self.shows_fixed})\n  fix off: {self.broken:.6g}  "
                f"(mechanism shows: {self.shows_broken})\n  "
                f"{'PASS' if self.passed else 'FAIL'}")


# --- helpers -----------------------------------------------------------------------------------

@contextmanager
def _learner(config: Config, rows: int = 64):
    """A Learner in this process, its replay filled with random CartPole-shaped rows."""
    ctx = mp.get_context("spawn")
    spec = env_spec(config.env_id)
    rng = np.random.default_rng(0)
    buffer = ReplayBuffer(config.buffer_size, spec.obs_shape, ctx, config.fixes)
    for _ in range(rows):
        obs = rng.normal(size=spec.obs_shape)
        buffer.add(obs, int(rng.integers(spec.n_actions)), float(rng.normal()),
                   rng.normal(size=spec.obs_shape), False, False, 0, 1.0)
    with torch.random.fork_rng():
        torch.manual_seed(config.seed)
        model = create_shared_model(config, spec=spec)
    channel = AgentChannel(0, model, buffer, epsilon=ctx.Value("d", config.epsilon_start),
                           env_steps=ctx.Value("q", rows), updates=ctx.Value("q", 0))
    try:
        yield Learner(config, spec, channel, seed=config.seed)
    finally:
        buffer.close()
        buffer.unlink()


def _max_abs_diff(a: torch.nn.Module, b: torch.nn.Module) -> float:
    return max((x.detach().cpu() - y.detach().cpu()).abs().max().item()
               for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def _both(name: str, measure: str, experiment: Callable[[Fixes], float],
          shows: Callable[[float], bool]) -> CheckResult:
    fixed = experiment(Fixes())
    broken = experiment(Fixes().without(name))
    return CheckResult(name, measure, fixed, broken, shows(fixed), shows(broken))


# --- the checks --------------------------------------------------------------------------------

def check_optimizer_binding() -> CheckResult:
    def experiment(fixes: Fixes) -> float:
        config = BASE.replace(learner_path="copy", fixes=fixes)
        with _learner(config) as learner:
            before = {k: v.clone() for k, v in learner.model.qnetwork_local.state_dict().items()}
            for _ in range(10):
                learner.update()
            after = learner.model.qnetwork_local.state_dict()
            return max((after[k] - before[k]).abs().max().item() for k in before)

    return _both("optimizer_binding", "max |change| of the trainer's weights over 10 updates",
                 experiment, lambda change: change == 0.0)


def check_target_sync() -> CheckResult:
    def experiment(fixes: Fixes) -> float:
        config = BASE.replace(learner_path="copy", target_update_period=5, publish_interval=10,
                              fixes=fixes)
        with _learner(config) as learner:
            for _ in range(10):  # two target updates, then a publish
                learner.update()
            return _max_abs_diff(learner.channel.model.qnetwork_target,
                                 learner.model.qnetwork_target)

    return _both("target_sync", "max |shared target - trainer target| after a publish",
                 experiment, lambda distance: distance > 0.0)


def check_train_mode() -> CheckResult:
    def experiment(fixes: Fixes) -> float:
        config = BASE.replace(noisy=True, fixes=fixes)
        with _learner(config) as learner:
            learner.update()
            sigmas = [layer.weight_sigma for layer in learner.model.qnetwork_local.noisy_layers()]
            return sum(0.0 if s.grad is None else s.grad.norm().item() for s in sigmas)

    return _both("train_mode", "gradient norm of the NoisyLinear sigma parameters",
                 experiment, lambda norm: norm == 0.0)


def check_grad_clip() -> CheckResult:
    def experiment(fixes: Fixes) -> float:
        config = BASE.replace(max_grad_norm=0.1, fixes=fixes)
        with _learner(config) as learner:
            learner.update()
            grads = [p.grad for p in learner.model.qnetwork_local.parameters()
                     if p.grad is not None]
            return torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item()

    return _both("grad_clip", "norm of the gradient the optimizer stepped with (limit 0.1)",
                 experiment, lambda norm: norm > 0.1 * (1 + 1e-4))


def check_batch_to_device() -> CheckResult:
    """A batch from float64 arrays (what a replay that keeps numpy's default dtype gives)."""

    def experiment(fixes: Fixes) -> float:
        with _learner(BASE.replace(fixes=fixes)) as learner:
            b = learner.channel.buffer.sample(16, np.random.default_rng(0))
            batch = Batch(**{**b.__dict__, "obs": b.obs.astype(np.float64),
                             "next_obs": b.next_obs.astype(np.float64)})
            try:
                learner.train_step(batch)
            except RuntimeError:  # "mat1 and mat2 must have the same dtype"
                return 1.0
            return 0.0

    return _both("batch_to_device", "train_step raised on a float64 batch (1 = yes)",
                 experiment, lambda raised: raised == 1.0)


def check_step_counter() -> CheckResult:
    def experiment(fixes: Fixes) -> float:
        config = BASE.replace(learner_path="copy", publish_interval=10, fixes=fixes)
        with _learner(config) as learner:
            for _ in range(20):
                learner.update()
            return float(learner.publisher.publishes)

    return _both("step_counter", "publishes in 20 updates (schedule: every 10)", experiment,
                 lambda publishes: publishes != 2)


def check_single_target_update() -> CheckResult:
    def experiment(fixes: Fixes) -> float:
        config = BASE.replace(target_update_period=10, fixes=fixes)
        with _learner(config) as learner:
            for _ in range(20):
                learner.update()
            return float(learner.target_updates)

    return _both("single_target_update", "target updates in 20 updates (schedule: every 10)",
                 experiment, lambda n: n != 2)


def check_initial_state() -> CheckResult:
    def experiment(fixes: Fixes) -> float:
        config = BASE.replace(fixes=fixes)
        with _learner(config) as learner:
            actor = Actor(config, env_spec(config.env_id), [learner.channel], seeds=[1])
            try:
                actor.first_pull()
                return _max_abs_diff(actor.nets[0], learner.channel.model.qnetwork_local)
            finally:
                actor.close()

    return _both("initial_state", "max |actor's weights - shared weights| at the first step",
                 experiment, lambda distance: distance > 0.0)


def check_worker_seeding() -> CheckResult:
    def experiment(fixes: Fixes) -> float:
        # Two agents acting at random (epsilon ~1): compare their actions, row by row.
        config = BASE.replace(mode="inline", n_agents=2, total_env_steps=160,
                              learning_starts=150, fixes=fixes)
        system = System(config).start()
        try:
            while not system.done:
                system.poll()
            a, b = (buf.sample(100, np.random.default_rng(0)).actions for buf in system.buffers)
        finally:
            system.stop()
        return float(np.mean(a == b))

    return _both("worker_seeding", "fraction of equal actions of two agents (100 rows)",
                 experiment, lambda same: same > 0.9)


def check_shared_epsilon() -> CheckResult:
    def experiment(fixes: Fixes) -> float:
        # 200 updates decay the learner's epsilon from 1.0 to 0.01; what does the actor see?
        config = BASE.replace(mode="lockstep", total_env_steps=300, learning_starts=100,
                              epsilon_decay_updates=50, fixes=fixes)
        return train(config).actor[0][-1]["epsilon"]

    return _both("shared_epsilon", "epsilon the actor process read at the end (learner: 0.01)",
                 experiment, lambda epsilon: epsilon == BASE.epsilon_start)


def check_replay_by_name() -> CheckResult:
    def experiment(fixes: Fixes) -> float:
        ctx = mp.get_context("spawn")
        buffer = ReplayBuffer(64, (4,), ctx, fixes)
        try:
            child = ctx.Process(target=_write_rows_main, args=(buffer, 50, 0))
            child.start()
            child.join()
            # The child wrote rows 0..49 with observations i (and a shared counter of 50).
            return float(np.abs(buffer.sample(32, np.random.default_rng(0)).obs).max())
        finally:
            buffer.close()
            buffer.unlink()

    return _both("replay_by_name", "max |obs| the parent samples after a spawned child wrote "
                 "rows 0..49", experiment, lambda largest: largest == 0.0)


def check_throttle() -> CheckResult:
    def experiment(fixes: Fixes) -> float:
        # Lockstep rounds of 10 env steps at a ratio of 0.05 allow one update every other
        # round; an unthrottled learner does one in every round.
        config = BASE.replace(mode="lockstep", total_env_steps=1000, learning_starts=100,
                              updates_per_step=0.05, fixes=fixes)
        return train(config).updates[0] / config.updates_owed(config.total_env_steps)

    return _both("throttle", "updates done / updates the ratio allows (ratio 0.05)",
                 experiment, lambda ratio: ratio > 1.0)


def _thread_count_main(*, records) -> None:
    records.put(("threads", torch.get_num_threads()))


def check_single_thread() -> CheckResult:
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

    return _both("single_thread", "torch threads in a worker process", experiment,
                 lambda threads: threads > 1)


class _TimeLimitEnvs:
    """The actor's environment interface, minimal: constant observation and reward 1, never
    terminated, truncated by a time limit every ``limit`` steps."""

    def __init__(self, spec, limit: int):
        self.n_agents, self.spec, self.limit, self._t = 1, spec, limit, 0
        self._obs = np.zeros(spec.obs_shape, dtype=np.float32)

    def observe(self, agent_id: int) -> np.ndarray:
        return self._obs

    def step(self, agent_id: int, action: int):
        self._t += 1
        end = self._t % self.limit == 0
        return StepResult(self._obs, self._obs, 1.0, False, end,
                            float(self.limit) if end else None, self.limit if end else None)

    def close(self) -> None:
        pass


def check_truncation_bootstrap() -> CheckResult:
    def experiment(fixes: Fixes) -> float:
        config = BASE.replace(n_step=1, fixes=fixes)
        with _learner(config, rows=0) as learner:
            actor = Actor(config, env_spec(config.env_id), [learner.channel], seeds=[1])
            actor.envs.close()
            actor.envs = _TimeLimitEnvs(actor.envs.spec, limit=5)
            actor.first_pull()
            for _ in range(20):  # four episodes, each ended by the time limit
                actor.step(queue.SimpleQueue())
            batch = learner.channel.buffer.sample(64, np.random.default_rng(0))
            return float(batch.terminated[batch.truncated].mean())

    return _both("truncation_bootstrap", "fraction of time-limit rows stored as terminal "
                 "(no bootstrap)", experiment, lambda fraction: fraction > 0.0)


# --- races between processes: a writer in a child, a reader here, both free-running ------------

def _publish_versions_main(shared, trainer, stop, fixes: Fixes, *, records) -> None:
    """Publish versions 1, 2, ... until ``stop``: each with every tensor of the trainer equal
    to its version."""
    publisher = WeightPublisher(shared, fixes)
    tensors = list(trainer.state_dict().values())
    version = 0
    with torch.no_grad():
        while not stop.is_set():
            version += 1
            for t in tensors:
                t.fill_(version)
            publisher.publish(trainer, version)


def check_versioned_publish() -> CheckResult:
    reads = 300

    def experiment(fixes: Fixes) -> float:
        # A wide network makes each publish long enough to be caught in the middle.
        config = BASE.replace(hidden_dim=256, fixes=fixes)
        spec = env_spec(config.env_id)
        shared = create_shared_model(config, spec=spec)
        local = build_network(spec, config)
        subscriber = WeightSubscriber(shared, local, fixes)
        ctx = mp.get_context("spawn")
        records, stop = ctx.Queue(), ctx.Event()
        writer = ctx.Process(target=worker_main, args=(
            "publisher", records, fixes, _publish_versions_main, shared, IQNAgent(spec, config),
            stop, fixes))
        writer.start()
        torn = done = 0
        try:
            while done < reads:
                if not writer.is_alive():
                    raise RuntimeError(f"the publisher died: {records.get(timeout=5)}")
                subscriber.sync(force=True)
                if subscriber.version < 1:
                    continue  # the initial random weights: nothing published yet
                # Checksum: a consistent copy holds one version in every element.
                values = torch.cat([t.flatten() for t in local.state_dict().values()])
                torn += int(values.min() != values.max())
                done += 1
        finally:
            stop.set()
            writer.join(timeout=30)
            if writer.is_alive():
                writer.kill()
                writer.join()
        return torn / reads

    return _both("versioned_publish", f"fraction of {reads} actor syncs, during concurrent "
                 "publishes, that copied a mix of two versions (checksum)", experiment,
                 lambda torn: torn > 0.0)


def _append_rows_main(buffer: ReplayBuffer, n_rows: int, *, records) -> None:
    """Append rows 0..n_rows-1; row i carries steps = i + 1, written last."""
    obs = np.zeros(buffer.obs_shape, dtype=np.float32)
    try:
        for i in range(n_rows):
            buffer.add(obs, 0, 0.0, obs, False, False, 0, 1.0, steps=i + 1)
    finally:
        buffer.close()


def check_write_before_publish() -> CheckResult:
    def experiment(fixes: Fixes) -> float:
        ctx = mp.get_context("spawn")
        n = 20_000
        buffer = ReplayBuffer(n, (4,), ctx, fixes)
        records = ctx.Queue()
        writer = ctx.Process(target=worker_main, args=(
            "writer", records, fixes, _append_rows_main, buffer, n))
        writer.start()
        try:
            steps = buffer._views()["steps"]
            unwritten = reads = 0
            while (count := buffer.count) < n:
                # The newest row the counter admits: is it written yet?
                if count > 0:
                    unwritten += int(steps[count - 1] != count)
                    reads += 1
            writer.join(timeout=60)
        finally:
            if writer.is_alive():
                writer.kill()
            writer.join()
            buffer.close()
            buffer.unlink()
        return unwritten / max(reads, 1)

    return _both("write_before_publish", "fraction of reads of the newest counted row that "
                 "found it unwritten, during 20,000 concurrent appends", experiment,
                 lambda unwritten: unwritten > 0.0)


CHECKS: dict[str, Callable[[], CheckResult]] = {
    "optimizer_binding": check_optimizer_binding,
    "target_sync": check_target_sync,
    "train_mode": check_train_mode,
    "grad_clip": check_grad_clip,
    "batch_to_device": check_batch_to_device,
    "step_counter": check_step_counter,
    "single_target_update": check_single_target_update,
    "initial_state": check_initial_state,
    "worker_seeding": check_worker_seeding,
    "shared_epsilon": check_shared_epsilon,
    "replay_by_name": check_replay_by_name,
    "throttle": check_throttle,
    "single_thread": check_single_thread,
    "truncation_bootstrap": check_truncation_bootstrap,
    "versioned_publish": check_versioned_publish,
    "write_before_publish": check_write_before_publish,
}


def run_check(name: str) -> CheckResult:
    if name not in CHECKS:
        raise ValueError(f"check: no mechanism check for {name!r}; available: {sorted(CHECKS)}")
    return CHECKS[name]()
