"""Batch norm's mode traps, and the sigma table."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mplearn.issues import train_mode as mode_traps


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: one thread is fastest, above all on a busy machine
    yield
    torch.set_num_threads(threads)


def test_acting_in_train_mode_on_one_observation_raises():
    assert "Expected more than 1 value per channel" in mode_traps.act_with_batch_of_one()


def test_train_mode_couples_the_agents_of_one_batch():
    change = mode_traps.coupled_actions()
    assert change["eval"] == 0.0
    assert change["train"] > 1e-3


def test_training_in_eval_mode_never_updates_the_running_statistics():
    train, held = mode_traps.train_in_eval_mode(steps=50)
    assert held.batches_tracked == 0 and held.running_mean == 0.0
    assert train.batches_tracked == 50 and train.running_mean > 1.0
    assert held.first_loss > 10 * train.first_loss  # unnormalised activations


def test_sigma_rows_lists_each_seed_or_the_range_over_seeds():
    first = [[{"start": 0.1, "end": 0.05, "change": 0.2}]]
    second = [[{"start": 0.1, "end": 0.07, "change": 0.3}]]
    runs = {"fixed": [first, second], "broken": [None]}
    text = mode_traps.sigma_rows(runs)
    assert text.count("fixed") == 2 and "broken" not in text
    summary = mode_traps.sigma_rows(runs, per_seed=False)
    assert summary.count("fixed") == 1 and "0.0500 to 0.0700" in summary


def test_only_the_noisy_network_depends_on_the_mode():
    assert mode_traps.kit_network_mode_difference(noisy=False) == 0.0
    assert mode_traps.kit_network_mode_difference(noisy=True) > 0.0


def test_steps_to_reach_reads_each_curve_on_the_grid():
    class Results:
        grid = np.array([250.0, 500.0, 750.0])
        curves = {"fixed": np.array([[0.0, 0.95, 0.99], [0.0, 0.0, 0.1]])}

    text = mode_traps.steps_to_reach(Results(), 0.9)
    assert text.splitlines()[1].split() == ["fixed", "500,", "never"]
