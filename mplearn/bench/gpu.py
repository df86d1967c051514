"""GPU: learner updates/s on CUDA against the CPU (1 thread and torch's default), the CUDA ->
shared-CPU publish against the measured device-to-host bandwidth (pinned, pageable and shared
destinations), the system end to end on CUDA, and the device-mismatch issue on real CUDA.

Learner rates time ``Learner.update()`` as the system runs it (sample from a shared replay,
batch to the device, one IQN step; on CUDA the learner trains a copy and publishes every
``publish_interval`` updates), on a replay filled with random transitions.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import mplearn
from mplearn.bench.common import machine, parser, positive, seconds_per_call, torch_threads
from mplearn.core.channels import AgentChannel
from mplearn.core.config import Config
from mplearn.core.fixes import Fixes
from mplearn.core.learner import Learner
from mplearn.core.replay import ReplayBuffer
from mplearn.core.system import WorkerError, train
from mplearn.core.weights import WeightPublisher, create_shared_model, make_train_copy
from mplearn.envs import env_spec

PAPER_QUANTILES = (64, 64, 32)  # N, N', K (Dabney et al. 2018, Atari)


def _fill(buffer: ReplayBuffer, rows: int, n_actions: int, rng: np.random.Generator) -> None:
    for _ in range(rows):
        obs = rng.standard_normal(buffer.obs_shape).astype(np.float32)
        buffer.add(obs, int(rng.integers(n_actions)), 1.0, obs + 0.01, bool(rng.random() < 0.05),
                   False, 0, 0.1, 3)


def learner_rate(config: Config, threads: int, min_seconds: float = 2.0,
                 replay_rows: int = 2000) -> dict:
    """Updates/s of one ``Learner`` on ``config.device`` with ``threads`` intra-op threads."""
    spec, ctx = env_spec(config.env_id), mp.get_context("spawn")
    buffer = ReplayBuffer(max(replay_rows, config.batch_size), spec.obs_shape, ctx)
    try:
        _fill(buffer, max(replay_rows, config.batch_size), spec.n_actions,
              np.random.default_rng(config.seed))
        channel = AgentChannel(0, create_shared_model(config, spec=spec), buffer,
                               epsilon=ctx.Value("d", 1.0, lock=False),
                               env_steps=ctx.Value("q", replay_rows, lock=False),
                               updates=ctx.Value("q", 0, lock=False))
        with torch_threads(threads):
            learner = Learner(config, spec, channel, seed=config.seed)
            sync = torch.cuda.synchronize if learner.device.type == "cuda" else (lambda: None)
            for _ in range(5):  # warm-up: allocator, kernels, Adam's lazy state
                learner.update()
            seconds = seconds_per_call(learner.update, min_seconds, repeats=3, sync=sync)
    finally:
        buffer.close()
        buffer.unlink()
    return {"device": learner.device.type, "threads": threads, "path": learner.path,
            "batch_size": config.batch_size, "N": config.num_tau_samples,
            "N_prime": config.num_tau_prime_samples, "K": config.num_quantile_samples,
            "updates_per_s": 1 / seconds, "ms_per_update": 1e3 * seconds}


def d2h_copy(nbytes: int, min_seconds: float = 0.5) -> dict:
    """Device-to-host copy of ``nbytes`` (one flat tensor) into pinned, pageable and shared
    (what the shared model lives in) host memory: microseconds and GB/s."""
    src = torch.randn(nbytes // 4, device="cuda")
    dests = {"pinned": torch.empty(nbytes // 4, pin_memory=True),
             "pageable": torch.empty(nbytes // 4),
             "shared": torch.empty(nbytes // 4).share_memory_()}
    out = {"bytes": nbytes}
    for name, dst in dests.items():
        s = seconds_per_call(lambda d=dst: d.copy_(src), min_seconds,
                             sync=torch.cuda.synchronize)
        out[name] = {"us": 1e6 * s, "gb_per_s": nbytes / s / 1e9}
    return out


def cuda_publish(config: Config, min_seconds: float = 0.5) -> dict:
    """One ``WeightPublisher.publish`` from a CUDA train copy into the shared CPU model."""
    spec = env_spec(config.env_id)
    shared = create_shared_model(config, spec=spec)
    trainer = make_train_copy(shared, config, spec, torch.device("cuda"))
    publisher = WeightPublisher(shared, config.fixes)
    tensors = list(trainer.state_dict().values())
    nbytes = sum(t.numel() * t.element_size() for t in tensors)
    s = seconds_per_call(lambda: publisher.publish(trainer, 1), min_seconds,
                         sync=torch.cuda.synchronize)
    return {"hidden_dim": config.hidden_dim, "tensors": len(tensors), "bytes": nbytes,
            "publish_us": 1e6 * s, "publish_mb_per_s": nbytes / s / 1e6,
            "flat_d2h_same_bytes": d2h_copy(nbytes, min_seconds)}


def end_to_end(agents: int = 2, mode: str = "async", steps: int = 5000) -> dict:
    """``python -m mplearn run --device cuda ...`` in a subprocess; its summary."""
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "mplearn", "run", "--device", "cuda", "--agents",
                   str(agents), "--mode", mode, "--steps", str(steps), "--quiet", "--out", out]
        root = str(Path(mplearn.__file__).resolve().parents[1])
        env = {**os.environ,
               "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
        start = time.perf_counter()
        proc = subprocess.run(command, capture_output=True, text=True, env=env,
                              stdin=subprocess.DEVNULL, check=False)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            return {"command": " ".join(command[1:]), "returncode": proc.returncode,
                    "stderr_tail": proc.stderr[-2000:]}
        summary = json.loads((Path(out) / "result.json").read_text())["summary"]
    keys = ("final_return", "env_steps", "updates", "wall_s", "env_steps_per_s",
            "updates_per_s", "policy_lag_mean", "publishes", "target_updates", "error")
    return {"command": "python " + " ".join(command[1:-2]), "returncode": 0,
            "command_wall_s": wall, **{k: summary[k] for k in keys}}


def device_mismatch() -> dict:
    """The batch left on the CPU (``batch_to_device`` off) with a CUDA learner: the learner must
    die and its error reach the parent as a WorkerError."""
    config = Config(device="cuda", mode="async", total_env_steps=1500, learning_starts=500,
                    batch_size=32, fixes=Fixes().without("batch_to_device"))
    try:
        train(config)
    except WorkerError as e:
        lines = [line for line in str(e).splitlines() if line.strip()]
        return {"surfaced": True, "worker": e.worker, "error": lines[-1]}
    return {"surfaced": False, "worker": None, "error": None}


def run(batches: list[int], quantiles: tuple[int, int, int], min_seconds: float,
        e2e_steps: int) -> dict:
    started_on, default_threads = machine(), torch.get_num_threads()
    n, n_prime, k = quantiles
    configs = [Config(batch_size=b, num_tau_samples=n, num_tau_prime_samples=n_prime,
                      num_quantile_samples=k) for b in batches]
    configs.append(Config())  # the kit's defaults (N = N' = K = 8, batch 64), for reference
    rates = []
    for c in configs:
        rates.append(learner_rate(c.replace(device="cuda"), 1, min_seconds))
        rates.append(learner_rate(c.replace(device="cpu"), 1, min_seconds))
        if default_threads > 1:
            rates.append(learner_rate(c.replace(device="cpu"), default_threads, min_seconds))
    out = {"benchmark": "gpu", "machine": started_on, "default_threads": default_threads,
           "learner": rates,
           "publish": [cuda_publish(Config(hidden_dim=h), min_seconds / 4) for h in (64, 256)],
           "d2h_bandwidth": d2h_copy(64 * 2**20, min_seconds / 2),
           "device_mismatch": device_mismatch()}
    if e2e_steps > 0:
        out["end_to_end"] = end_to_end(2, "async", e2e_steps)
    return out


def build(argv: list[str]):
    ap = parser("gpu", __doc__)
    ap.add_argument("--batches", type=int, nargs="+", default=[32, 256])
    ap.add_argument("--quantiles", type=int, nargs=3, default=list(PAPER_QUANTILES),
                    metavar=("N", "N_PRIME", "K"))
    ap.add_argument("--min-seconds", type=float, default=2.0, help="timing per learner rate")
    ap.add_argument("--e2e-steps", type=int, default=5000,
                    help="env steps of the end-to-end run (0: skip it)")
    args = ap.parse_args(argv)
    positive("min_seconds", args.min_seconds)
    for b in args.batches:
        Config(batch_size=b)
    if args.e2e_steps < 0:
        raise ValueError(f"e2e_steps: must be >= 0, got {args.e2e_steps}")
    if args.e2e_steps > 0:
        Config(total_env_steps=args.e2e_steps)
    n, n_prime, k = args.quantiles
    Config(num_tau_samples=n, num_tau_prime_samples=n_prime, num_quantile_samples=k)
    if not torch.cuda.is_available():
        raise ValueError("device: the gpu benchmark needs CUDA; torch.cuda.is_available() "
                         "is False")
    return lambda: run(args.batches, tuple(args.quantiles), args.min_seconds, args.e2e_steps)
