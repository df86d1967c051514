"""Shared-memory pitfalls between a writer process and a reader, each measured with the fix on
and off against ONE spawned writer (a process start costs seconds on a small machine, so both
variants share it):

* ``replay_pickled``: a replay buffer handed to a spawned child by name or by value;
* ``torn_reads``: the actor's copy of weights that a learner is publishing right now;
* ``replay_race``: the newest row the replay's counter admits, while the writer appends.

``python -m mplearn check NAME`` runs the same mechanisms one variant per process.
"""

from __future__ import annotations

import copy
import multiprocessing as mp
import time
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from mplearn.bench.common import torch_threads
from mplearn.config import Config
from mplearn.envs import env_spec
from mplearn.fixes import Fixes
from mplearn.mechanisms import BASE as MECHANISM_CONFIG
from mplearn.mechanisms import _learner
from mplearn.replay import Batch, ReplayBuffer
from mplearn.weights import (
    IQNAgent,
    WeightPublisher,
    WeightSubscriber,
    build_network,
    create_shared_model,
)
from mplearn.workers import worker_main

VARIANTS = ("fixed", "broken")


@contextmanager
def _writer(target, *args):
    """A spawned worker running ``target(*args)``; stopped and joined on exit. Yields it and
    its records queue (where a failure's traceback arrives)."""
    ctx = mp.get_context("spawn")
    records = ctx.Queue()
    process = ctx.Process(target=worker_main, args=("writer", records, Fixes(), target, *args),
                          daemon=True)
    process.start()
    try:
        yield process, records
    finally:
        process.join(timeout=30)
        if process.is_alive():
            process.kill()
            process.join()
        records.close()
        records.join_thread()


def _raise_if_dead(process, records) -> None:
    if not process.is_alive() and process.exitcode != 0:
        raise RuntimeError(f"the writer process failed: {records.get(timeout=5)}")


# --- replay pickled by value ---------------------------------------------------------------

@dataclass(frozen=True)
class ReplayPickling:
    rows: int  # rows the child wrote into each buffer
    count: dict[str, int]  # variant -> rows the parent's shared counter says exist
    largest_obs: dict[str, float]  # variant -> max |obs| in a batch the parent samples
    batches: dict[str, Batch]  # variant -> that batch (for checks.replay_batch)

    def __str__(self) -> str:
        lines = [f"a spawned child wrote rows 0..{self.rows - 1} (obs of row i = i) into each "
                 "buffer; the parent then samples 32 rows:"]
        for v, name in (("fixed", "re-attached by name"), ("broken", "pickled by value")):
            lines.append(f"  {v:<6} ({name:<19}): counter {self.count[v]}, "
                         f"max |obs| sampled {self.largest_obs[v]:g}")
        return "\n".join(lines)


def _write_rows_main(buffers: list[ReplayBuffer], rows: int, *, records) -> None:
    """Write rows 0..rows-1 into every buffer; row i has observation i."""
    try:
        for i in range(rows):
            obs = np.full(buffers[0].obs_shape, i, dtype=np.float32)
            for b in buffers:
                b.add(obs, i % 2, 1.0, obs + 1, False, False, 0, 1.0)
    finally:
        for b in buffers:
            b.close()


def replay_pickled(rows: int = 50) -> ReplayPickling:
    """Both buffers go to one spawned child as Process arguments (pickled, as spawn does)."""
    ctx = mp.get_context("spawn")
    buffers = {"fixed": ReplayBuffer(64, (4,), ctx, Fixes()),
               "broken": ReplayBuffer(64, (4,), ctx, Fixes().without("replay_by_name"))}
    try:
        with _writer(_write_rows_main, list(buffers.values()), rows) as (process, records):
            process.join()
            _raise_if_dead(process, records)
        batches = {v: b.sample(32, np.random.default_rng(0)) for v, b in buffers.items()}
        return ReplayPickling(rows, {v: b.count for v, b in buffers.items()},
                              {v: float(np.abs(batches[v].obs).max()) for v in buffers},
                              batches)
    finally:
        for b in buffers.values():
            b.close()
            b.unlink()


# --- torn reads ------------------------------------------------------------------------------

@dataclass(frozen=True)
class TornReads:
    reads: int  # copies per variant
    torn: dict[str, int]  # variant -> copies that mixed two versions
    retries: int  # copies the fixed reader threw away because a write overlapped them

    def fraction(self, variant: str) -> float:
        return self.torn[variant] / self.reads

    def __str__(self) -> str:
        return "\n".join(
            [f"{self.reads} actor copies per variant while a (slowed-down) learner process "
             "publishes; a copy is torn when its elements hold more than one version:"] +
            [f"  {v:<6}: {self.torn[v]:>4} torn ({self.fraction(v):.1%})"
             + (f", {self.retries} copies retried" if v == "fixed" else "")
             for v in VARIANTS])


def _publish_versions_main(shared: IQNAgent, stop, tensor_s: float, pause_s: float, *,
                           records) -> None:
    """A learner that publishes versions 1, 2, ... until ``stop``, every tensor of version k
    filled with k. Slowed down on purpose: ``tensor_s`` after each tensor it writes (a publish
    then lasts milliseconds, as a copy from a GPU can), ``pause_s`` between publishes (its
    other updates)."""
    trainer = copy.deepcopy(shared)  # private tensors of the same shapes
    publisher = WeightPublisher(shared)
    source = trainer.state_dict()
    target = shared.state_dict()  # views of the shared storage
    version = 0
    with torch.no_grad():
        while not stop.is_set():
            version += 1
            for t in source.values():
                t.fill_(version)
            with publisher.writing(version):  # the seqlock: odd while writing
                for name, t in source.items():
                    target[name].copy_(t)
                    time.sleep(tensor_s)
            time.sleep(pause_s)


def torn_reads(reads: int = 200, tensor_s: float = 0.0002, pause_s: float = 0.002,
               spacing_s: float = 0.001) -> TornReads:
    """One learner process publishes versions 1, 2, ... (every tensor of version k filled with
    k; slowed down so that the race shows on any machine: the fraction measures this set-up,
    not the real system); this process copies the shared online network ``reads`` times with
    a plain ``load_state_dict``-style reader (fix off), then with the seqlock reader (fix on),
    ``spacing_s`` apart, and checks every copy."""
    config = Config(device="cpu")
    spec = env_spec(config.env_id)
    shared = create_shared_model(config, spec=spec)
    # The writer needs no optimizer: unpickling one costs a spawned child seconds of imports.
    shared.optimizer = None
    locals_ = {v: build_network(spec, config) for v in VARIANTS}
    readers = {"fixed": WeightSubscriber(shared, locals_["fixed"], Fixes()),
               "broken": WeightSubscriber(shared, locals_["broken"],
                                          Fixes().without("versioned_publish"))}
    torn = dict.fromkeys(VARIANTS, 0)
    stop = mp.get_context("spawn").Event()
    writer = _writer(_publish_versions_main, shared, stop, tensor_s, pause_s)
    with torch_threads(1), writer as (process, records):
        try:
            while int(shared.weights_version) < 1:  # nothing published yet
                _raise_if_dead(process, records)
                time.sleep(0.01)
            for v in VARIANTS:
                for _ in range(reads):
                    _raise_if_dead(process, records)
                    readers[v].sync(force=True)
                    values = torch.cat([t.flatten() for t in locals_[v].state_dict().values()])
                    torn[v] += int(values.min() != values.max())
                    time.sleep(spacing_s)
        finally:
            stop.set()
    return TornReads(reads, torn, readers["fixed"].retries)


# --- replay race -------------------------------------------------------------------------------

@dataclass(frozen=True)
class ReplayRace:
    rows: int  # rows appended to each buffer
    reads: dict[str, int]  # variant -> reads of the newest counted row
    unwritten: dict[str, int]  # variant -> reads that found that row not written yet

    def fraction(self, variant: str) -> float:
        return self.unwritten[variant] / max(self.reads[variant], 1)

    def __str__(self) -> str:
        return "\n".join(
            [f"a writer process appends {self.rows:,} rows to each buffer; this process reads "
             "the newest row the counter admits:"] +
            [f"  {v:<6}: {self.unwritten[v]:>6} of {self.reads[v]:>6} reads found it unwritten "
             f"({self.fraction(v):.1%})" for v in VARIANTS])


def _append_rows_main(buffers: list[ReplayBuffer], rows: int, *, records) -> None:
    """Append rows 0..rows-1 to every buffer in turn; row i carries steps = i + 1."""
    obs = np.zeros(buffers[0].obs_shape, dtype=np.float32)
    try:
        for i in range(rows):
            for b in buffers:
                b.add(obs, 0, 0.0, obs, False, False, 0, 1.0, steps=i + 1)
    finally:
        for b in buffers:
            b.close()


def replay_race(rows: int = 20_000) -> ReplayRace:
    """One writer process appends to a buffer that writes the row before counting it (fix on)
    and to one that counts it first (fix off), row by row in turn; this process checks the
    newest counted row of each: row k - 1 of a count k must carry steps = k."""
    ctx = mp.get_context("spawn")
    buffers = {"fixed": ReplayBuffer(rows, (4,), ctx, Fixes()),
               "broken": ReplayBuffer(rows, (4,), ctx, Fixes().without("write_before_publish"))}
    reads, unwritten = dict.fromkeys(VARIANTS, 0), dict.fromkeys(VARIANTS, 0)
    try:
        steps = {v: b._views()["steps"] for v, b in buffers.items()}
        with _writer(_append_rows_main, list(buffers.values()), rows) as (process, records):
            while min(b.count for b in buffers.values()) < rows:
                _raise_if_dead(process, records)
                for v, b in buffers.items():
                    count = b.count
                    if 0 < count < rows:
                        unwritten[v] += int(steps[v][count - 1] != count)
                        reads[v] += 1
        return ReplayRace(rows, reads, unwritten)
    finally:
        for b in buffers.values():
            b.close()
            b.unlink()


# --- how far apart are the versions a torn copy mixes? ---------------------------------------

@dataclass(frozen=True)
class TornGap:
    updates_apart: int  # the two versions a torn copy mixes are this many updates apart
    relative_change: float  # ||new - old|| / ||old|| over the online network's tensors
    largest_change: float  # max |new - old| of any weight
    new_like_old: float  # fraction of states where new and old pick the same greedy action
    torn_like_old: float  # ... where the torn copy picks old's greedy action

    def __str__(self) -> str:
        return (f"{self.updates_apart:>2} update(s) apart: weights moved "
                f"{self.relative_change:.2%} (largest change {self.largest_change:.2g}); same "
                f"greedy action as the old version in 1,000 states: new {self.new_like_old:.1%}, "
                f"torn {self.torn_like_old:.1%}")


@torch.no_grad()
def _greedy(net: torch.nn.Module, obs: torch.Tensor) -> torch.Tensor:
    taus = torch.linspace(0.05, 0.95, 8).expand(len(obs), 8)  # fixed taus: exact comparisons
    return net(obs, taus).mean(dim=1).argmax(dim=1)


def torn_gap(updates_apart: int = 1, warmup: int = 300, seed: int = 0) -> TornGap:
    """A learner (default config, CartPole shapes, a replay of random rows) trains ``warmup``
    updates (version old), then ``updates_apart`` more (version new). The torn copy takes the
    first half of the online network's tensors from new, the rest from old, as a reader that
    a publish overtook would."""
    config = MECHANISM_CONFIG.replace(seed=seed)
    with torch_threads(1), _learner(config, rows=256) as learner:
        for _ in range(warmup):
            learner.update()
        net = learner.model.qnetwork_local
        old = {k: v.clone() for k, v in net.state_dict().items()}
        for _ in range(updates_apart):
            learner.update()
        new = {k: v.clone() for k, v in net.state_dict().items()}
        names = list(old)
        torn = {k: (new[k] if i < len(names) // 2 else old[k]) for i, k in enumerate(names)}
        before = torch.cat([old[k].flatten() for k in names])
        after = torch.cat([new[k].flatten() for k in names])
        obs = torch.randn(1000, *learner.channel.buffer.obs_shape,
                          generator=torch.Generator().manual_seed(seed))
        acts = {}
        for name, state in (("old", old), ("new", new), ("torn", torn)):
            net.load_state_dict(state)
            acts[name] = _greedy(net, obs)
        return TornGap(updates_apart, ((after - before).norm() / before.norm()).item(),
                       (after - before).abs().max().item(),
                       (acts["new"] == acts["old"]).float().mean().item(),
                       (acts["torn"] == acts["old"]).float().mean().item())
