"""The CUDA learner path: train a copy on the GPU, publish into CPU shared memory.

Skipped where no GPU is present (CI); run on a CUDA machine with `pytest tests/test_cuda.py`.
"""

from __future__ import annotations

import pytest
import torch

from mplearn import Config, Fixes, WorkerError, train
from mplearn.bench import build
from mplearn.core.weights import WeightPublisher, create_shared_model, make_train_copy
from mplearn.envs import env_spec

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

SMALL = dict(total_env_steps=1500, learning_starts=500, batch_size=32, device="cuda")


def test_publish_from_cuda_copies_every_tensor_and_keeps_the_trainer_on_the_gpu():
    config = Config(noisy=True, device="cuda")
    spec = env_spec(config.env_id)
    shared = create_shared_model(config, spec=spec)
    trainer = make_train_copy(shared, config, spec, torch.device("cuda"))
    params_before = [id(p) for p in trainer.parameters()]
    with torch.no_grad():
        for p in trainer.parameters():
            p.add_(1.0)
    trainer.qnetwork_local.reset_noise()
    WeightPublisher(shared).publish(trainer, version=7)
    for (name, s), (_, t) in zip(shared.state_dict().items(), trainer.state_dict().items(),
                                 strict=True):
        assert s.device.type == "cpu" and s.is_shared(), name
        assert t.device.type == "cuda", name
        torch.testing.assert_close(s, t.cpu(), rtol=0, atol=0, msg=name)
    assert [id(p) for p in trainer.parameters()] == params_before
    assert int(shared.weights_version) == 7


@pytest.mark.parametrize("mode", ["inline", "lockstep", "async"])
def test_cuda_learner_trains_and_publishes_end_to_end(mode):
    config = Config(mode=mode, n_agents=2, **SMALL)
    result = train(config)
    s = result.summary
    assert s["error"] is None
    assert s["updates"] == [config.updates_owed(config.total_env_steps)] * 2
    # The auto path on cuda trains a copy and publishes every publish_interval updates.
    assert all(p >= s["updates"][0] // config.publish_interval for p in s["publishes"])


def test_lockstep_on_cuda_is_reproducible():
    a = train(Config(mode="lockstep", seed=3, **SMALL))
    b = train(Config(mode="lockstep", seed=3, **SMALL))
    assert [e["ret"] for e in a.episodes[0]] == [e["ret"] for e in b.episodes[0]]
    assert [r["loss"] for r in a.learner[0]] == [r["loss"] for r in b.learner[0]]


def test_device_mismatch_on_cuda_kills_the_learner_and_surfaces_in_the_parent():
    # The batch stays on the CPU (torch.from_numpy) while the train copy is on the GPU.
    config = Config(mode="async", fixes=Fixes().without("batch_to_device"), **SMALL)
    with pytest.raises(WorkerError, match="same device") as caught:
        train(config)
    assert caught.value.worker == "learner-0"
    assert "Traceback" in str(caught.value)  # the child's own traceback reaches the parent


def test_gpu_benchmark_in_a_tiny_configuration():
    out = build("gpu", ["--batches", "32", "--quantiles", "8", "8", "8", "--min-seconds", "0.05",
                        "--e2e-steps", "0"])()
    rates = out["learner"]
    assert {(r["device"], r["path"]) for r in rates} >= {("cuda", "copy"), ("cpu", "in_place")}
    assert all(r["updates_per_s"] > 0 for r in rates)
    for p in out["publish"]:
        assert p["publish_us"] > 0 and p["flat_d2h_same_bytes"]["pinned"]["gb_per_s"] > 0
    assert out["d2h_bandwidth"]["pageable"]["gb_per_s"] > 0
    assert out["device_mismatch"]["surfaced"] and out["device_mismatch"]["worker"] == "learner-0"
