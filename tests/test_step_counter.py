"""The plan's step counter: never incremented, never initialised, and a learner that dies."""

from __future__ import annotations

import pytest

from mplearn.core.system import WorkerError
from mplearn.issues import step_counter

pytestmark = pytest.mark.usefixtures("no_leaks")


def test_a_counter_never_incremented_publishes_and_decays_epsilon_on_every_update():
    runs = step_counter.schedules(updates=40)
    fixed, broken = runs["fixed"][-1], runs["broken"][-1]
    assert fixed["update"] == broken["update"] == 40
    assert fixed["publishes"] == 4 and broken["publishes"] == 40
    assert broken["epsilon"] < fixed["epsilon"]


def test_a_counter_never_initialised_raises_a_name_error_at_the_first_update():
    assert step_counter.uninitialised_counter(True, updates=5) == (5, "")
    done, error = step_counter.uninitialised_counter(False, updates=5)
    assert done == 0 and error.startswith("UnboundLocalError") and "training_step" in error


def test_an_unwatched_learner_dies_silently_and_the_actor_acts_on_with_its_initial_state():
    r = step_counter.learner_death(watch=False, total_env_steps=800, learning_starts=300)
    assert r.error is None and r.env_steps == 800
    assert r.learner_updates == 0 and r.learner_exitcode == 1
    assert r.actor_epsilon == 1.0 and r.actor_weights_version == 0


def test_a_watching_parent_raises_the_learners_traceback():
    r = step_counter.learner_death(watch=True, total_env_steps=800, learning_starts=300)
    assert isinstance(r.error, WorkerError) and r.error.worker == "learner-0"
    assert "Traceback" in str(r.error) and "UnboundLocalError" in str(r.error)
    assert 300 <= r.noticed_at <= 800


def test_the_same_loop_with_the_counter_initialised_trains():
    r = step_counter.learner_death(watch=True, total_env_steps=400, learning_starts=300,
                                  initialise=True)
    assert r.error is None and r.learner_exitcode == 0
    assert r.learner_updates == 100
