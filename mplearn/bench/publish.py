"""Publish: the cost of one versioned publish (learner -> shared CPU model, both networks) and
one actor sync (shared -> the actor's local online network), against a plain memory copy of
the same bytes: torch ``copy_`` tensor by tensor and in one flat tensor, and numpy ``copyto``.

The publish source is a CPU train copy (``learner_path="copy"`` on cpu). Everything runs on one
thread, as the workers do. MB/s counts the bytes copied (read once, written once).
"""

from __future__ import annotations

import numpy as np
import torch

from mplearn.bench.common import machine, parser, positive, seconds_per_call, torch_threads
from mplearn.core.config import Config
from mplearn.core.weights import (
    WeightPublisher,
    WeightSubscriber,
    build_network,
    create_shared_model,
    make_train_copy,
)
from mplearn.envs import env_spec


def _nbytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def _timing(seconds: float, nbytes: int) -> dict:
    return {"ms": 1e3 * seconds, "mb_per_s": nbytes / seconds / 1e6}


def memcpy_baselines(tensors: list[torch.Tensor], min_seconds: float) -> dict:
    """A plain copy of the same bytes: per tensor into preallocated clones, one flat tensor,
    one flat numpy array."""
    nbytes = _nbytes(tensors)
    dests = [torch.empty_like(t) for t in tensors]

    def per_tensor() -> None:
        for d, t in zip(dests, tensors, strict=True):
            d.copy_(t)

    flat_src, flat_dst = torch.cat([t.flatten() for t in tensors]), torch.empty(nbytes // 4)
    np_src, np_dst = flat_src.numpy().copy(), np.empty(nbytes // 4, dtype=np.float32)
    return {
        "torch_per_tensor": _timing(seconds_per_call(per_tensor, min_seconds), nbytes),
        "torch_flat": _timing(seconds_per_call(lambda: flat_dst.copy_(flat_src), min_seconds),
                              nbytes),
        "numpy_flat": _timing(seconds_per_call(lambda: np.copyto(np_dst, np_src), min_seconds),
                              nbytes),
    }


def publish_costs(config: Config, min_seconds: float = 1.0) -> dict:
    """Publish and sync of one model size, with their memory-copy baselines."""
    spec = env_spec(config.env_id)
    shared = create_shared_model(config, spec=spec)
    trainer = make_train_copy(shared, config, spec, torch.device("cpu"))
    publisher = WeightPublisher(shared, config.fixes)
    subscriber = WeightSubscriber(shared, build_network(spec, config), config.fixes)
    published = list(trainer.state_dict().values())
    synced = list(shared.qnetwork_local.state_dict().values())
    with torch_threads(1):
        publish_s = seconds_per_call(lambda: publisher.publish(trainer, 1), min_seconds)
        sync_s = seconds_per_call(lambda: subscriber.sync(force=True), min_seconds)
        # The in-place path brackets every optimizer step with the seqlock: its fixed cost.
        bracket_s = seconds_per_call(lambda: _bracket(publisher), min_seconds)
        # publish() builds the trainer's state_dict on every call: part of its fixed cost.
        state_dict_s = seconds_per_call(trainer.state_dict, min_seconds)
        return {
            "hidden_dim": config.hidden_dim,
            "publish": {"tensors": len(published), "bytes": _nbytes(published),
                        **_timing(publish_s, _nbytes(published)),
                        "memcpy": memcpy_baselines(published, min_seconds)},
            "sync": {"tensors": len(synced), "bytes": _nbytes(synced),
                     **_timing(sync_s, _nbytes(synced)),
                     "memcpy": memcpy_baselines(synced, min_seconds)},
            "seqlock_bracket_us": 1e6 * bracket_s,
            "trainer_state_dict_us": 1e6 * state_dict_s,
        }


def _bracket(publisher: WeightPublisher) -> None:
    with publisher.writing(1):
        pass


def run(hidden_dims: list[int], min_seconds: float = 1.0) -> dict:
    configs = [Config(hidden_dim=h, device="cpu") for h in hidden_dims]
    return _run(configs, min_seconds)


def _run(configs: list[Config], min_seconds: float) -> dict:
    return {"benchmark": "publish", "machine": machine(), "threads": 1,
            "sizes": [publish_costs(c, min_seconds) for c in configs]}


def build(argv: list[str]):
    ap = parser("publish", __doc__)
    ap.add_argument("--hidden", type=int, nargs="+", default=[64, 256],
                    help="hidden_dim of each model size (256: about 10x the default's bytes)")
    ap.add_argument("--min-seconds", type=float, default=1.0, help="timing per measurement")
    args = ap.parse_args(argv)
    positive("min_seconds", args.min_seconds)
    configs = [Config(hidden_dim=h, device="cpu") for h in args.hidden]
    return lambda: _run(configs, args.min_seconds)
