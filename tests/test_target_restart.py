"""The review's publish and a learner restarting from a stale shared target."""

from __future__ import annotations

import pytest
import torch

from mplearn.issues import target_sync as target_restart

pytestmark = pytest.mark.usefixtures("no_leaks")


def test_zipping_the_wrapper_copies_both_networks_but_not_the_buffers():
    r = target_restart.zip_publish(noisy=True)
    assert r.wrapper_parameters == 2 * r.local_parameters
    wrapper, local, whole = (r.stale[p] for p in target_restart.PUBLISHES)
    assert wrapper["local params"][0] == wrapper["target params"][0] == 0
    assert wrapper["buffers"][0] == wrapper["buffers"][1] > 0  # the noise buffers
    assert local["target params"][0] == local["target params"][1] > 0  # the stale target
    assert all(stale == 0 for stale, _ in whole.values())


def test_moving_a_module_converts_it_in_place():
    r = target_restart.apply_is_in_place()
    assert r.returned_itself and r.same_parameter_objects
    assert r.dtype_after == str(torch.float64)


def test_a_restart_from_a_stale_shared_target_collapses_the_values():
    r = target_restart.restart(seeds=1, steps=600, at=400, learning_starts=100)
    assert r.target_distance("broken", 0) > 5 * r.target_distance("fixed", 0)
    # Before the restart the two runs are the same run; after it only the broken one drops.
    assert r.mean_q("fixed", 0, after=False) == r.mean_q("broken", 0, after=False)
    assert r.mean_q("broken", 0, after=True) < 0.6 * r.mean_q("fixed", 0, after=True)
    assert "restart at env step 400" in r.table()
