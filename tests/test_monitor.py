"""The monitor names each broken switch in a lockstep run, and finds nothing in a fixed one."""

from __future__ import annotations

import os

import pytest

from mplearn.config import Config
from mplearn.fixes import Fixes
from mplearn.mechanisms import run_check
from mplearn.monitor import Monitor
from mplearn.system import System, WorkerError

BASE = Config(mode="lockstep", device="cpu", total_env_steps=600, learning_starts=100,
              batch_size=16, hidden_dim=16, embedding_dim=16, buffer_size=1000, log_interval=20,
              learner_path="copy", target_update_period=20, epsilon_decay_updates=200)

# Where a switch acts only under a condition, the run meets it.
SCENARIOS = {
    "train_mode": dict(noisy=True),  # mode-dependent layers
    "grad_clip": dict(max_grad_norm=0.01),  # gradients above the limit
    "batch_to_device": dict(replay_obs_dtype="float64"),  # numpy's default dtype in the replay
    "truncation_bootstrap": dict(env_id="MountainCar-v0"),  # a time limit at 200 steps
    "worker_seeding": dict(n_agents=2),  # more than one random stream
    "throttle": dict(updates_per_step=0.05),  # a ratio the free-running learner exceeds
}
# A replay counter bumped before its row is written leaves no trace once the writes are done:
# only the concurrent stress of its mechanism check shows it.
STRESS_ONLY = {"write_before_publish"}


def monitored_run(config: Config) -> Monitor:
    system = System(config)
    monitor = Monitor(system, every=5)
    try:
        system.run(progress=monitor)
    except WorkerError as e:
        monitor.saw_error(e)
    return monitor


@pytest.mark.parametrize("name", sorted(set(Fixes.names()) - STRESS_ONLY))
def test_monitor_names_the_broken_switch(name, no_leaks):
    if name == "single_thread" and (os.cpu_count() or 1) < 2:
        pytest.skip("torch's default is one thread on a one-core machine: nothing to see")
    monitor = monitored_run(BASE.replace(fixes=Fixes().without(name), **SCENARIOS.get(name, {})))
    assert monitor.issues == [name], monitor.report()
    assert monitor.findings[name].hint


def test_monitor_finds_nothing_when_everything_is_fixed(no_leaks):
    config = BASE.replace(n_agents=2, noisy=True, replay_obs_dtype="float64",
                          env_id="MountainCar-v0", max_grad_norm=0.01)
    monitor = monitored_run(config)
    assert monitor.issues == [], monitor.report()
    assert monitor.report() == "no problems found"


def test_the_stress_only_issue_is_caught_by_its_mechanism_check():
    assert run_check("write_before_publish").passed
