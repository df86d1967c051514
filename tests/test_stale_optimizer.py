"""The review's stale-optimizer case has no effect; its real variants do something."""

from __future__ import annotations

from mplearn.issues import optimizer_binding as stale_optimizer


def test_recreating_the_optimizer_after_a_copy_changes_nothing():
    assert stale_optimizer.recreate_after_copy() == 0.0


def test_moments_kept_across_a_replacement_change_the_first_updates():
    r = stale_optimizer.moments_across_replacement()
    assert r.gap(0) == 0.0  # the same weights before the first step
    assert r.first_step_cosine < 0.99  # kept moments point the first step elsewhere
    assert any(abs(r.gap(i)) > 1e-3 for i in range(1, 20))


def test_moving_the_module_after_the_first_step_breaks_the_next_step():
    assert "dtype" in stale_optimizer.move_after_state("float64")
