"""Benchmarks: ``python -m mplearn bench NAME [options]`` prints one JSON object.

Each benchmark is a module with ``build(argv)``: it parses and checks the options (a bad value
raises ``ValueError`` naming it, before anything runs) and returns a function that runs the
benchmark and returns a JSON-ready dict. The scripts under ``benchmarks/`` call the same code.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

BENCHMARKS = {
    "throughput": "inline vs async env steps/s and updates/s, against the ideal overlap",
    "solve": "env steps and wall seconds until CartPole-v1's last-20 mean reaches 475",
    "publish": "cost of a versioned publish and an actor sync, against a plain memory copy",
    "gpu": "CUDA learner updates/s vs CPU, CUDA publish vs device-to-host bandwidth",
    "notebooks": "wall time of each notebook under pytest --nbval-lax",
    "profile": "the inline learner update and env step op by op (torch.profiler), one thread",
    "peers": "solve rate and wall time against Stable-Baselines3 QR-DQN and DQN (optional deps)",
}


def build(name: str, argv: list[str]) -> Callable[[], dict]:
    """The benchmark ``name`` with its options parsed and checked; ValueError if unknown."""
    if name not in BENCHMARKS:
        raise ValueError(f"name: no benchmark {name!r}; available: {', '.join(BENCHMARKS)}")
    module = importlib.import_module(f"mplearn.bench.{name}")
    return module.build(argv)
