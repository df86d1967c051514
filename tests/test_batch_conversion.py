"""Replay arrays to a batch: which conversions a float32 layer accepts."""

from __future__ import annotations

from mplearn.issues import batch_to_device as batch_conversion


def test_from_numpy_keeps_float64_and_the_layer_refuses_it():
    plain, plan, kit = batch_conversion.convert_and_forward("float64")
    assert plain.tensor == "cpu/float64" and "same dtype" in plain.result
    assert plan.tensor == kit.tensor == "cpu/float32"
    assert plan.result == kit.result == "ok"


def test_a_float32_replay_needs_no_conversion_on_the_cpu():
    assert all(r.result == "ok" for r in batch_conversion.convert_and_forward("float32"))
