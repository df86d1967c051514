"""The quantile Huber loss bounds each element's gradient; Adam ignores a constant scale."""

from __future__ import annotations

import pytest
import torch

from mplearn.core import iqn
from mplearn.issues import grad_clip as clipping


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: one thread is fastest, above all on a busy machine
    yield
    torch.set_num_threads(threads)


def test_the_huber_gradient_is_bounded_and_the_squared_one_is_not():
    q = torch.zeros(1, 4, requires_grad=True)
    taus = torch.full((1, 4), 0.5)
    grads = {}
    for name, loss_fn in clipping.LOSSES.items():
        for scale in (1.0, 1000.0):
            q.grad = None
            loss_fn(q, taus, torch.full((1, 3), scale)).sum().backward()
            grads[name, scale] = q.grad.abs().max().item()
    huber, squared = clipping.LOSSES
    assert grads[huber, 1000.0] == grads[huber, 1.0] == 0.5  # |tau - 1| * kappa / kappa
    assert grads[squared, 1000.0] == 1000 * grads[squared, 1.0]


def test_squared_loss_matches_huber_inside_kappa():
    q, taus = torch.zeros(2, 3), torch.rand(2, 3)
    target = torch.full((2, 5), 0.3)
    assert torch.allclose(clipping.quantile_squared_loss(q, taus, target),
                          iqn.quantile_huber_loss(q, taus, target, kappa=1.0))


def test_per_element_gradients_table():
    text = clipping.per_element_gradients(scales=(1.0, 100.0))
    assert text.count("\n") == 3


def test_adam_is_blind_to_a_constant_gradient_scale_and_sgd_is_not():
    out = clipping.adam_step_scale()
    adam_difference, adam_moved = out["Adam"]
    sgd_difference, sgd_moved = out["SGD"]
    assert adam_difference < 1e-3 * adam_moved
    assert sgd_difference > 0.5 * sgd_moved


def test_run_mean_weights_records_by_their_updates():
    record = {"learner": [{"update": [100, 200, 210], "clip_fraction": [0.0, 1.0, 1.0]}]}
    assert clipping.run_mean(record, "clip_fraction") == 110 / 210
