"""The monitor names each broken switch in a lockstep run, and finds nothing in a fixed one."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

from mplearn import Config
from mplearn.core.fixes import Fixes
from mplearn.diagnose import rules
from mplearn.diagnose.monitor import Monitor
from mplearn.issues import run_check
from mplearn.lab.notebook import demo_config, monitored_run

# A replay counter bumped before its row is written leaves no trace once the writes are done:
# only the concurrent stress of its mechanism check shows it.
STRESS_ONLY = {"write_before_publish"}


@pytest.mark.parametrize("name", sorted(set(Fixes.names()) - STRESS_ONLY))
def test_monitor_names_the_broken_switch(name, no_leaks):
    if name == "single_thread" and (os.cpu_count() or 1) < 2:
        pytest.skip("torch's default is one thread on a one-core machine: nothing to see")
    monitor = monitored_run(demo_config(broken=(name,)))
    assert monitor.issues == [name], monitor.report()
    assert monitor.findings[name].hint


def test_monitor_finds_nothing_when_everything_is_fixed(no_leaks):
    # Every condition the broken runs need, at once, with every fix on.
    config = demo_config(n_agents=2, noisy=True, replay_obs_dtype="float64",
                         env_id="MountainCar-v0", max_grad_norm=0.01, updates_per_step=0.05)
    monitor = monitored_run(config)
    assert monitor.issues == [], monitor.report()
    assert monitor.report() == "no problems found"


def test_the_stress_only_issue_is_caught_by_its_mechanism_check():
    assert run_check("write_before_publish").passed


def test_a_stalled_learner_is_called_a_stall_not_a_learning_issue():
    config = Config(device="cpu", total_env_steps=1000, learning_starts=100, batch_size=32)
    monitor = Monitor(SimpleNamespace(config=config), stall_s=0.0)
    monitor._stalled(0, updates=10, env_steps=500)  # the first look
    monitor._stalled(0, updates=10, env_steps=500)  # no update since, 390 owed
    assert monitor.issues == [rules.STALL]
    finding = monitor.findings[rules.STALL]
    assert "no update" in finding.measured and "390 updates owed" in finding.measured
    assert "WorkerError" in finding.hint
    assert "step_counter" not in str(finding)
