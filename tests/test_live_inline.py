"""A short live restart run in inline mode."""

from __future__ import annotations

import pytest

from mplearn.lab import notebook, pool


@pytest.fixture(autouse=True)
def no_pool_left():
    """live() runs its arms in lab.pool's workers, which a kernel keeps: a test does not."""
    yield
    pool.shutdown()


def test_a_lockstep_scenario_runs_inline_with_its_restart():
    run = notebook.live("initial_state", steps=2_600, seeds=1, mode="inline")
    assert run.condition == "" and set(run.records) == {"fixed", "broken"}
    for variant, (rec,) in run.records.items():
        assert rec["status"] == "ok" and rec["spec"]["config"]["mode"] == "inline"
        assert rec["env_steps"] == 2_600 and rec["restart_at"] == 1_560
        unpulled = rec["actor"][0]["unpulled_steps"][-1]  # after the restart, phase 2
        assert (unpulled > 0) == (variant == "broken")


def test_an_unknown_condition_is_named():
    with pytest.raises(ValueError, match="condition"):
        notebook.live("initial_state", steps=2_600, seeds=1, condition="nope", mode="inline")
