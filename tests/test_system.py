"""End-to-end tests of the System: the three modes on CartPole-v1, the update-to-data ratio,
lockstep reproducibility, the copy path, and the life cycle (worker errors, KeyboardInterrupt,
early exit, garbage collection). Every test checks that no process and no /dev/shm entry is
left behind (``no_leaks`` in conftest.py).
"""

from __future__ import annotations

import gc
import math
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
import weakref
from pathlib import Path

import numpy as np
import pytest

from mplearn import Config, Result, System, WorkerError, train
from mplearn.core.channels import AgentChannel
from mplearn.core.fixes import Fixes
from mplearn.core.learner import learner_main
from mplearn.core.replay import ReplayBuffer
from mplearn.core.weights import create_shared_model
from mplearn.envs import env_spec

pytestmark = pytest.mark.usefixtures("no_leaks")

SHM = Path("/dev/shm")
MODES = ("inline", "lockstep", "async")
# Small runs: about 4 s each on two cores. device="cpu" pins the in-place learner path.
BASE = dict(total_env_steps=1200, learning_starts=500, batch_size=32, n_agents=2,
            log_interval=50, device="cpu")
SUMMARY_KEYS = {"final_return", "env_steps", "updates", "wall_s", "env_steps_per_s",
                "updates_per_s", "policy_lag_mean", "publishes", "target_updates"}


@pytest.fixture(scope="module")
def runs():
    """``runs(config)``: train once per distinct config in this module, then reuse the Result.

    The first test that asks for a config pays for the run (inside its own leak check)."""
    cache: dict[Config, Result] = {}

    def run(config: Config) -> Result:
        if config not in cache:
            cache[config] = train(config)
        return cache[config]

    return run


def _untimed(per_agent: list[list[dict]]) -> list[list[dict]]:
    """Records without their wall-clock ``time``: what must repeat exactly."""
    return [[{k: v for k, v in rec.items() if k != "time"} for rec in recs]
            for recs in per_agent]


def _assert_stopped(system: System) -> None:
    """No worker alive, every worker reaped, every replay segment unlinked."""
    assert mp.active_children() == []
    assert all(p.exitcode is not None for p in system._processes)
    assert not [b.name for b in system.buffers if (SHM / b.name).exists()]


# --- the three modes end to end ------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_end_to_end(runs, mode):
    cfg = Config(**BASE, mode=mode)
    total, owed = cfg.total_env_steps, cfg.updates_owed(cfg.total_env_steps)
    result = runs(cfg)

    assert result.error is None
    assert result.env_steps == total
    assert result.updates == [owed, owed]  # the update-to-data ratio, in every mode
    assert result.config == cfg.to_dict() and result.seed == cfg.seed
    for agent in range(2):
        episodes = result.episodes[agent]
        assert episodes, f"agent {agent} finished no episode"
        steps = [e["env_step"] for e in episodes]
        assert steps == sorted(steps) and steps[0] > 0 and steps[-1] <= total
        assert all(e["ret"] == e["length"] for e in episodes)  # CartPole: +1 per step
        assert sum(e["length"] for e in episodes) <= total

        learner = result.learner[agent]
        assert learner, f"agent {agent} has no learner record"
        assert [r["update"] for r in learner] == sorted({r["update"] for r in learner})
        assert learner[-1]["update"] == owed
        # Never ahead of the data: at every record, updates <= what its env steps allow.
        assert all(r["update"] <= cfg.updates_owed(r["env_step"]) for r in learner)
        assert all(math.isfinite(r["loss"]) and r["loss"] >= 0 for r in learner)
        assert learner[-1]["epsilon"] == pytest.approx(cfg.epsilon_at(owed))
        assert learner[-1]["target_updates"] == owed // cfg.target_update_period

        actor = result.actor[agent]
        assert actor, f"agent {agent} has no actor record"
        assert actor[-1]["env_step"] == total
        assert all(r["policy_lag"] >= 0 for r in actor)

    s = result.summary
    assert set(s) >= SUMMARY_KEYS
    assert len(s["final_return"]) == 2 and all(math.isfinite(r) for r in s["final_return"])
    assert s["env_steps"] == total and s["updates"] == [owed, owed]
    assert s["wall_s"] > 0 and s["env_steps_per_s"] > 0 and s["updates_per_s"] > 0
    assert s["episodes"] == [len(e) for e in result.episodes]
    assert s["target_updates"] == [owed // cfg.target_update_period] * 2
    # In place (cpu): every optimizer step is a write under the seqlock, counted as a publish.
    assert s["publishes"] == [owed, owed]
    assert s["error"] is None
    if mode == "async":
        assert s["policy_lag_mean"] >= 0
    else:  # rounds: the actor always acts with the weights of every update so far
        assert s["policy_lag_mean"] == 0


def test_update_to_data_ratio_async(runs):
    cfg = Config(**{**BASE, "n_agents": 1}, mode="async", updates_per_step=0.25)
    result = runs(cfg)
    owed = math.floor(0.25 * (cfg.total_env_steps - cfg.learning_starts))
    assert result.error is None
    assert result.updates == [owed]
    for learner in result.learner:
        assert all(r["update"] <= cfg.updates_owed(r["env_step"]) for r in learner)


# --- reproducibility ----------------------------------------------------------------------


def test_lockstep_is_reproducible(runs):
    cfg = Config(**BASE, mode="lockstep")
    first, again = runs(cfg), train(cfg)
    assert again.error is None
    assert _untimed(again.episodes) == _untimed(first.episodes)
    assert _untimed(again.learner) == _untimed(first.learner)  # exact float equality
    assert _untimed(again.actor) == _untimed(first.actor)


def test_lockstep_seed_changes_the_run(runs):
    cfg = Config(**BASE, mode="lockstep")
    a, b = runs(cfg), runs(cfg.replace(seed=1))
    assert b.error is None
    for agent in range(2):
        assert [e["ret"] for e in a.episodes[agent]] != [e["ret"] for e in b.episodes[agent]]
        assert [r["loss"] for r in a.learner[agent]] != [r["loss"] for r in b.learner[agent]]


def test_inline_and_lockstep_are_the_same_run(runs):
    inline = runs(Config(**BASE, mode="inline"))
    lockstep = runs(Config(**BASE, mode="lockstep"))
    assert _untimed(inline.episodes) == _untimed(lockstep.episodes)
    assert _untimed(inline.learner) == _untimed(lockstep.learner)
    assert _untimed(inline.actor) == _untimed(lockstep.actor)


# --- the copy path ------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["lockstep", "async"])
def test_copy_path(runs, mode):
    # max_update_lag: the async actor waits for the learner, so it acts with published weights.
    cfg = Config(**{**BASE, "n_agents": 1}, mode=mode, learner_path="copy", max_update_lag=100)
    owed, every = cfg.updates_owed(cfg.total_env_steps), cfg.publish_interval
    result = runs(cfg)
    assert result.error is None
    assert result.updates == [owed]
    for publishes in result.summary["publishes"]:
        assert owed // every <= publishes <= owed // every + 1  # + the final publish
    for actor in result.actor:
        versions = [r["version"] for r in actor]
        # The actor acts only with published weights, and it did get trained ones.
        assert all(v % every == 0 or v == owed for v in versions)
        assert max(versions) > 0


def test_copy_path_publishes_the_final_weights_inline():
    # Learner.finish() must publish even when nothing was published before.
    # 40 env steps, learning from 32: 8 updates, fewer than one publish_interval (10).
    cfg = Config(total_env_steps=40, learning_starts=32, batch_size=32, mode="inline",
                 device="cpu", learner_path="copy")
    assert cfg.updates_owed(40) == 8
    with System(cfg) as system:
        result = system.run()
        version = int(system.shared_models[0].weights_version)
    assert result.updates == [8]
    assert version == 8, "the trained weights never reached the shared model"


# --- life cycle: worker errors ---------------------------------------------------------------


@pytest.mark.parametrize(("mode", "fault", "worker"), [
    ("lockstep", "actor@300", "actor"),
    ("lockstep", "learner@50", "learner-0"),
    ("async", "actor@300", "actor"),
    ("async", "learner@50", "learner-0"),
])
def test_worker_error_surfaces_and_everything_stops(mode, fault, worker):
    # One agent, so that exactly one learner fails. A small max_update_lag holds the async actor
    # back until the learner runs: the fault comes when every process is up.
    cfg = Config(total_env_steps=1500, learning_starts=100, batch_size=32, n_agents=1,
                 mode=mode, device="cpu", max_update_lag=50, inject_fault=fault)
    kind, at = fault.split("@")
    at = int(at)
    polls: list[tuple[float, bool]] = []  # (time, whether the fault is due by now)

    def progress(s: System) -> None:
        due = s.env_steps >= at if kind == "actor" else min(s.updates) >= at
        polls.append((time.monotonic(), due))

    system = System(cfg)
    with pytest.raises(WorkerError) as info:
        system.run(progress)
    raised = time.monotonic()

    message = str(info.value)
    assert info.value.worker == worker
    assert message.startswith(f"{worker} failed")
    assert "Traceback" in message and "InjectedFault" in message
    assert f"injected fault at {'env step' if kind == 'actor' else 'update'} {at}" in message
    _assert_stopped(system)
    others = {p.name: 0 for p in system._processes if p.name != worker}
    assert {p.name: p.exitcode for p in system._processes} == {worker: 1, **others}
    assert system.result().error == message
    # Within 2 s of the fault: counted from the first poll that saw it due or, if the error
    # came first, from the last poll before it (earlier than the fault, so stricter).
    assert polls, "the fault came before the first poll"
    due_at = next((t for t, due in polls if due), polls[-1][0])
    assert raised - due_at < 2.0


# --- life cycle: stopping from the parent ----------------------------------------------------


def test_ctrl_c_stops_everything(capfd):
    """A Ctrl-C reaches every process of the group: the workers ignore it (also while they
    start: before worker_main runs, they must inherit SIGINT ignored), the parent's
    KeyboardInterrupt (here raised by a progress callback) stops them and propagates."""
    cfg = Config(total_env_steps=20_000, learning_starts=50, batch_size=32, n_agents=2,
                 mode="async", device="cpu")
    system = System(cfg).start()
    for _ in range(8):  # spawned workers take ~1.5 s to start
        for p in system._processes:
            if p.is_alive():  # not reaped: the pid is still this worker's
                os.kill(p.pid, signal.SIGINT)
        time.sleep(0.1)
    polls = []

    def progress(s: System) -> None:
        polls.append(s.env_steps)
        assert len(polls) < 600, "no learner update within a minute"
        if len(polls) >= 3 and min(s.updates) > 0:  # acting and learning both under way
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        system.run(progress)
    _assert_stopped(system)
    assert all(p.exitcode == 0 for p in system._processes)  # stopped, not killed
    result = system.result()
    assert result.error is None
    assert 0 < result.env_steps < cfg.total_env_steps
    assert all(result.episodes) and all(u > 0 for u in result.updates)
    assert "KeyboardInterrupt" not in capfd.readouterr().err


def test_leaving_the_with_block_early_stops_everything():
    cfg = Config(total_env_steps=20_000, learning_starts=50, batch_size=32, n_agents=1,
                 mode="lockstep", device="cpu")
    with System(cfg) as system:
        for _ in range(600):
            system.poll(timeout=0.1)
            if system.episodes(0) and min(system.updates) > 0:
                break
    _assert_stopped(system)
    assert all(p.exitcode == 0 for p in system._processes)
    result = system.result()
    assert result.error is None and result.episodes[0]
    assert 0 < result.env_steps < cfg.total_env_steps
    again = system.stop()  # a second stop is a no-op that returns the same result
    assert (again.env_steps, again.updates, again.episodes) == (
        result.env_steps, result.updates, result.episodes)
    system.stop()


def test_garbage_collected_system_cleans_up():
    cfg = Config(total_env_steps=20_000, learning_starts=50, batch_size=32, n_agents=1,
                 mode="async", device="cpu")
    system = System(cfg).start()
    for _ in range(600):
        system.poll(timeout=0.1)
        if min(system.updates) > 0:
            break
    processes, names = list(system._processes), [b.name for b in system.buffers]
    assert all(p.is_alive() for p in processes)
    ref = weakref.ref(system)
    del system
    gc.collect()
    assert ref() is None
    assert mp.active_children() == []
    assert all(p.exitcode is not None for p in processes)
    assert not [n for n in names if (SHM / n).exists()]


_KILL_THE_SLEEPING_ACTOR = """
import os, signal, sys, time
from mplearn import Config, System, WorkerError

# Rounds of 50 env steps, then 50 updates: the actor spends most of a round asleep at the barrier.
system = System(Config(total_env_steps=20_000, learning_starts=32, batch_size=32, n_agents=1,
                       mode="lockstep", device="cpu", sync_interval=50)).start()
deadline = time.monotonic() + 60
while min(system.updates) < 1 and time.monotonic() < deadline:
    system.poll(timeout=0.05)
seen = system.updates[0]
while system.updates[0] == seen:  # the learner trains now: the actor sleeps at the barrier
    if time.monotonic() > deadline:
        sys.exit(5)
    time.sleep(0.001)
actor = next(p for p in system._processes if p.name == "actor")
os.kill(actor.pid, signal.SIGKILL)
print("killed", flush=True)
try:
    system.run()
except WorkerError as e:
    sys.exit(0 if e.worker == "actor" and "code -9" in str(e) else 3)
sys.exit(4)
"""


def test_worker_killed_by_a_signal_in_lockstep_surfaces(subprocess_env):
    # In a subprocess: the hang this guards against must not hang the test run.
    proc = subprocess.Popen([sys.executable, "-c", _KILL_THE_SLEEPING_ACTOR],
                            env=subprocess_env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    blocked = False
    try:
        if proc.stdout.readline() == "killed\n":
            # A worker's death surfaces within 2 s like any error; 2.5 s for a loaded machine.
            proc.wait(timeout=2.5)
    except subprocess.TimeoutExpired:
        blocked = True
    finally:
        if proc.poll() is None:
            proc.kill()  # its workers exit with it (they watch their parent)
        out, err = proc.communicate()
    assert not blocked, "System.run() still blocked 2.5 s after the actor was killed"
    assert proc.returncode == 0, out + err


# --- the learner's end of run (in-process, scripted) -----------------------------------------


class _ScriptedSteps:
    """An env_steps counter whose reads follow a script: the actor's last write is seen by the
    second of two reads that follow each other."""

    def __init__(self, values: list[int]):
        self._values = list(values)

    @property
    def value(self) -> int:
        return self._values.pop(0) if len(self._values) > 1 else self._values[0]


class _Running:
    """A rendezvous that never stops; a sleep returns at once (the loop reads again)."""

    def stopped(self) -> bool:
        return False

    def attach(self, party: int) -> None:
        pass

    def ring(self, party: int) -> None:
        pass

    def sleep_until(self, party: int, ready) -> None:
        pass


class _Value:
    def __init__(self, value):
        self.value = value


class _Records(list):
    def put(self, record) -> None:
        self.append(record)


def test_async_learner_does_every_owed_update_when_the_last_step_races():
    # Regression: the async learner read env_steps twice (for updates_owed(), then for the
    # end-of-run check); when the actor's last step landed between the two reads, the learner
    # stopped one update short of updates_owed(total_env_steps).
    cfg = Config(total_env_steps=40, learning_starts=32, batch_size=32, mode="async",
                 device="cpu", log_interval=1000)
    spec = env_spec(cfg.env_id)
    buffer = ReplayBuffer(64, spec.obs_shape)
    try:
        for i in range(40):
            obs = np.full(spec.obs_shape, i / 40, dtype=np.float32)
            buffer.add(obs, i % spec.n_actions, 1.0, obs, False, False, 0, 1.0, 1)
        owed_before, owed_after = cfg.updates_owed(39), cfg.updates_owed(40)
        assert (owed_before, owed_after) == (7, 8)
        # Reads 1-7: 39 steps, one update each. Read 8 (updates_owed): still 39, nothing owed.
        # Read 9 (the end-of-run check): the actor's last step has landed, 40.
        steps = _ScriptedSteps([39] * 8 + [40])
        channel = AgentChannel(0, create_shared_model(cfg, spec=spec), buffer,
                               epsilon=_Value(1.0), env_steps=steps, updates=_Value(0))
        learner_main(cfg, spec, channel, 1, _Running(), records=_Records())
        updates = channel.updates.value
        assert updates == owed_after
    finally:
        buffer.close()
        buffer.unlink()


# --- results ----------------------------------------------------------------------------------


def test_result_json_round_trip(runs, tmp_path):
    cfg = Config(**BASE, mode="inline")
    result = runs(cfg)
    path = result.save(tmp_path / "r.json")
    loaded = Result.load(path)
    assert loaded.summary == result.summary
    assert (loaded.episodes, loaded.learner, loaded.actor) == (
        result.episodes, result.learner, result.actor)
    assert (loaded.config, loaded.seed, loaded.versions) == (
        result.config, result.seed, result.versions)
    assert Config.from_dict(loaded.config) == cfg


def test_an_unthrottled_inline_run_ends():
    # The broken learner over-trains, so updates owed go negative: the run must still end.
    config = Config(mode="inline", device="cpu", total_env_steps=300, learning_starts=100,
                    batch_size=16, hidden_dim=16, updates_per_step=0.05,
                    fixes=Fixes().without("throttle"))
    result = train(config)
    assert result.env_steps == 300
    assert result.updates[0] > config.updates_owed(300)
