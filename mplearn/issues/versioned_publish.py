"""Torn reads during publish: the catalogue entry, the mechanism check, the scenarios behind data/
and the experiments its notebook runs.
"""

from __future__ import annotations

import copy
import multiprocessing as mp
import time
from dataclasses import dataclass

import torch

from mplearn.core.config import Config
from mplearn.core.fixes import Fixes
from mplearn.core.weights import (
    IQNAgent,
    WeightPublisher,
    WeightSubscriber,
    build_network,
    create_shared_model,
)
from mplearn.core.workers import torch_threads, worker_main
from mplearn.envs import env_spec
from mplearn.issues import measures
from mplearn.issues.base import (
    BASE,
    CARTPOLE_MARGIN,
    CheckResult,
    Issue,
    Manipulation,
    Scenario,
    fix_on_and_off,
)
from mplearn.issues.base import BASE as MECHANISM_CONFIG
from mplearn.issues.base import learner_with_rows as _learner
from mplearn.issues.shared_memory import VARIANTS, _raise_if_dead, _writer

ENTRY = Issue(
    "versioned_publish", "Torn reads during publish",
    claim="",
    mechanism="load_state_dict copies tensor by tensor with no cross-process lock: an "
              "actor can read a mix of two versions. A seqlock (odd while writing) fixes it.",
    where="async mode only",
    symptom="occasional actions from a network that never existed",
    diagnostic="python -m mplearn check versioned_publish (checksum under concurrent "
               "publish); Monitor: actor copies never validated against a sequence number",
    notebook="12_versioned_publish")


def _publish_constant_versions_main(shared, trainer, stop, fixes: Fixes, *, records) -> None:
    """Publish versions 1, 2, ... until ``stop``: each with every tensor of the trainer equal
    to its version."""
    publisher = WeightPublisher(shared, fixes)
    tensors = list(trainer.state_dict().values())
    version = 0
    with torch.no_grad():
        while not stop.is_set():
            version += 1
            for t in tensors:
                t.fill_(version)
            publisher.publish(trainer, version)


def check() -> CheckResult:
    reads = 300

    def experiment(fixes: Fixes) -> float:
        # A wide network makes each publish long enough to be caught in the middle.
        config = BASE.replace(hidden_dim=256, fixes=fixes)
        spec = env_spec(config.env_id)
        shared = create_shared_model(config, spec=spec)
        local = build_network(spec, config)
        subscriber = WeightSubscriber(shared, local, fixes)
        ctx = mp.get_context("spawn")
        records, stop = ctx.Queue(), ctx.Event()
        writer = ctx.Process(target=worker_main, args=(
            "publisher", records, fixes, _publish_constant_versions_main, shared,
            IQNAgent(spec, config), stop, fixes))
        writer.start()
        torn = done = 0
        try:
            while done < reads:
                if not writer.is_alive():
                    raise RuntimeError(f"the publisher died: {records.get(timeout=5)}")
                subscriber.sync(force=True)
                if subscriber.version < 1:
                    continue  # the initial random weights: nothing published yet
                # Checksum: a consistent copy holds one version in every element.
                values = torch.cat([t.flatten() for t in local.state_dict().values()])
                torn += int(values.min() != values.max())
                done += 1
        finally:
            stop.set()
            writer.join(timeout=30)
            if writer.is_alive():
                writer.kill()
                writer.join()
        return torn / reads

    return fix_on_and_off(
        "versioned_publish", f"fraction of {reads} actor syncs, during concurrent "
        "publishes, that copied a mix of two versions (checksum)", experiment,
        lambda torn: torn > 0.0)


def torn_kept(record: dict) -> float | None:
    """Actor copies that a publish overlapped and that were kept (acted on)."""
    return measures.last(record, "actor", "torn_kept")


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "versioned_publish",
        "Plain load_state_dict reads while the learner writes: torn copies (async only).",
        "async", margin=CARTPOLE_MARGIN,
        manipulation=Manipulation(
            "actor copies a publish overlapped, kept and acted on", torn_kept,
            lambda n: n >= 1),
        diagnostics=("actor.sync_retries", "actor.torn_kept", "actor.policy_lag")),
)



# --- the experiments its notebook runs --------------------------------------------------------

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
