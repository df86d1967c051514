"""Replay buffer pickled by value under spawn: the catalogue entry, the mechanism check, the
scenarios behind data/ and the experiments its notebook runs.
"""

from __future__ import annotations

import multiprocessing as mp
from dataclasses import dataclass

import numpy as np

from mplearn.core.fixes import Fixes
from mplearn.core.replay import Batch, ReplayBuffer, _write_rows_main
from mplearn.issues import measures
from mplearn.issues.base import (
    CARTPOLE_MARGIN,
    CheckResult,
    Issue,
    Manipulation,
    Scenario,
    fix_on_and_off,
)
from mplearn.issues.shared_memory import _raise_if_dead, _writer

ENTRY = Issue(
    "replay_by_name", "Replay buffer pickled by value under spawn",
    claim="",
    mechanism="numpy arrays over multiprocessing.shared_memory are pickled by value unless "
              "the buffer re-attaches by name; the size counter (mp.Value) is shared, so "
              "the learner samples zeros. Under fork the naive buffer works.",
    where="spawn start method (macOS, Windows, notebooks that use spawn)",
    symptom="tiny loss, first-layer gradient exactly 0, no learning",
    diagnostic="checks.replay_batch(batch): all-zero rows; Monitor: the learner's "
               "batches are all zeros",
    notebook="11_replay_by_name")


def check() -> CheckResult:
    def experiment(fixes: Fixes) -> float:
        ctx = mp.get_context("spawn")
        buffer = ReplayBuffer(64, (4,), ctx, fixes)
        try:
            child = ctx.Process(target=_write_rows_main, args=(buffer, 50, 0))
            child.start()
            child.join()
            # The child wrote rows 0..49 with observations i (and a shared counter of 50).
            return float(np.abs(buffer.sample(32, np.random.default_rng(0)).obs).max())
        finally:
            buffer.close()
            buffer.unlink()

    return fix_on_and_off(
        "replay_by_name", "max |obs| the parent samples after a spawned child wrote "
        "rows 0..49", experiment, lambda largest: largest == 0.0)


def batch_abs_obs(record: dict) -> float | None:
    """The largest mean |obs| of a sampled batch (0: the learner's copy is all zeros)."""
    return measures.largest(record, "learner", "batch_abs_obs")


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "replay_by_name",
        "A replay pickled by value under spawn: the learner process samples its own copy, all "
        "zeros, while the counter it shares says rows exist (lockstep: real processes).",
        "lockstep", margin=CARTPOLE_MARGIN,
        manipulation=Manipulation(
            "largest mean |obs| of a sampled batch (0: all-zero batches)", batch_abs_obs,
            lambda value: value == 0.0),
        diagnostics=("learner.loss", "learner.batch_abs_obs", "learner.mean_q")),
)



# --- the experiments its notebook runs --------------------------------------------------------

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


def _write_rows_to_each_main(buffers: list[ReplayBuffer], rows: int, *, records) -> None:
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
        with _writer(_write_rows_to_each_main, list(buffers.values()), rows) as (process, records):
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
