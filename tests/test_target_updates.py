"""Duplicate target updates: effective tau and the target's time constant."""

from __future__ import annotations

import pytest

from mplearn.issues import single_target_update as target_updates


def test_two_soft_updates_equal_one_with_the_effective_tau():
    assert target_updates.effective_tau(0.005, 2) == pytest.approx(0.009975)
    assert target_updates.repeated_vs_effective(0.005, 2) < 1e-6
    assert target_updates.repeated_vs_effective(1.0, 2) == 0.0  # a hard copy twice: the same


def test_a_repeated_soft_update_halves_the_time_constant_a_repeated_hard_copy_does_not():
    assert target_updates.time_constant(1.0, period=100) == 100
    assert target_updates.time_constant(1.0, period=100, repeats=2) == 100
    once, twice = (target_updates.time_constant(0.005, repeats=r) for r in (1, 2))
    assert once == 200 and twice == 100  # 1/tau, then about 1/(2 tau)


def test_the_plans_extra_update_every_four_steps_shortens_the_time_constant_by_a_fifth():
    once = target_updates.time_constant(0.001)
    plan = target_updates.time_constant(0.001, extra_every=4)
    assert once == 1000 and plan == 800


def test_a_target_that_never_gets_there_is_an_error():
    with pytest.raises(ValueError, match="tau"):
        target_updates.time_constant(1.0, period=10, limit=5)
