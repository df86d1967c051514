"""Helpers shared by the benchmarks: option parsing, timing, and where the numbers came from."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import os
import platform
import statistics
import time
from collections.abc import Callable

import torch

from mplearn.core.config import Config, ConfigError
from mplearn.core.workers import torch_threads  # noqa: F401  (bench modules import it from here)


def parser(name: str, doc: str) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog=f"python -m mplearn bench {name}",
                                   description=doc.strip().splitlines()[0])


def parse_set(items: list[str]) -> dict:
    """``["batch_size=32", "env_id=CartPole-v1"]`` -> config overrides (literals where they
    parse, else strings). An unknown field fails here, naming it."""
    fields = {f.name for f in dataclasses.fields(Config)} - {"fixes"}
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set: expected KEY=VALUE, got {item!r}")
        if key not in fields:
            raise ConfigError(f"{key}: unknown config field")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def positive(name: str, value: float) -> float:
    if not value > 0:
        raise ValueError(f"{name}: must be > 0, got {value}")
    return value


def machine() -> dict:
    """What the numbers were measured on, and how busy it was when they were."""
    return {"cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2),
            "platform": platform.platform(), "torch": torch.__version__,
            "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None}


def seconds_per_call(fn: Callable[[], object], min_seconds: float, repeats: int = 5,
                     sync: Callable[[], object] = lambda: None) -> float:
    """Median over ``repeats`` timed loops of the mean time of one call of ``fn``.

    The loop length is calibrated so that all loops together take about ``min_seconds``;
    ``sync`` (e.g. ``torch.cuda.synchronize``) runs before each clock read.
    """
    fn()  # warm-up: first-call allocations and lazy initialisation stay out of the numbers
    sync()
    start, n = time.perf_counter(), 0
    while n == 0 or time.perf_counter() - start < min_seconds / (4 * repeats):
        fn()
        n += 1
    sync()
    per_call = (time.perf_counter() - start) / n
    loops = max(1, round(min_seconds / repeats / per_call))
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        for _ in range(loops):
            fn()
        sync()
        times.append((time.perf_counter() - t0) / loops)
    return statistics.median(times)
