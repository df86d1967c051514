"""Replay race: count before row: the catalogue entry, the mechanism check, the scenarios behind
data/ and the experiments its notebook runs.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from mplearn.core.config import Config
from mplearn.core.fixes import Fixes
from mplearn.core.replay import ReplayBuffer
from mplearn.core.workers import worker_main
from mplearn.issues import measures
from mplearn.issues.base import (
    CARTPOLE_MARGIN,
    CheckResult,
    Issue,
    Manipulation,
    Scenario,
    fix_on_and_off,
)
from mplearn.issues.shared_memory import VARIANTS, _raise_if_dead, _writer

ENTRY = Issue(
    "write_before_publish", "Replay race: count before row",
    claim="",
    mechanism="A buffer that bumps its size before writing the row lets the sampler read a "
              "row that is not written yet.",
    where="async mode, one writer and one sampler",
    symptom="rare zero or stale rows in batches",
    diagnostic="python -m mplearn check write_before_publish (newest counted row read "
               "under concurrent appends); leaves no trace at rest",
    notebook="13_write_before_publish")


def _append_stamped_rows_main(buffer: ReplayBuffer, n_rows: int, *, records) -> None:
    """Append rows 0..n_rows-1; row i carries steps = i + 1, written last."""
    obs = np.zeros(buffer.obs_shape, dtype=np.float32)
    try:
        for i in range(n_rows):
            buffer.add(obs, 0, 0.0, obs, False, False, 0, 1.0, steps=i + 1)
    finally:
        buffer.close()


def check() -> CheckResult:
    def experiment(fixes: Fixes) -> float:
        ctx = mp.get_context("spawn")
        n = 20_000
        buffer = ReplayBuffer(n, (4,), ctx, fixes)
        records = ctx.Queue()
        writer = ctx.Process(target=worker_main, args=(
            "writer", records, fixes, _append_stamped_rows_main, buffer, n))
        writer.start()
        try:
            steps = buffer._views()["steps"]
            unwritten = reads = 0
            while (count := buffer.count) < n:
                # The newest row the counter admits: is it written yet?
                if count > 0:
                    unwritten += int(steps[count - 1] != count)
                    reads += 1
            writer.join(timeout=60)
        finally:
            if writer.is_alive():
                writer.kill()
            writer.join()
            buffer.close()
            buffer.unlink()
        return unwritten / max(reads, 1)

    return fix_on_and_off(
        "write_before_publish", "fraction of reads of the newest counted row that "
        "found it unwritten, during 20,000 concurrent appends", experiment,
        lambda unwritten: unwritten > 0.0)


def unwritten_sampled(record: dict) -> float | None:
    """Rows the learner sampled before they were written."""
    return measures.last(record, "learner", "unwritten_sampled")


@dataclass(frozen=True)
class SampledRows:
    """Every row the broken arm's learners sampled in the stored runs, and how many of them were
    not written yet: what a 'never acted' verdict rests on, as a rate with its bound."""

    runs: int
    rows: int  # rows sampled: updates x batch size, over the runs
    unwritten: int

    @property
    def upper_95(self) -> float:
        """One-sided 95% upper bound on the rate of unwritten rows per sampled row (exact,
        Clopper-Pearson; about 3 / rows when none was seen)."""
        from scipy.stats import beta

        if self.rows == 0:
            return float("nan")
        return float(beta.ppf(0.95, self.unwritten + 1, self.rows - self.unwritten))

    def __str__(self) -> str:
        return (f"{self.unwritten:,} unwritten rows among {self.rows:,} rows sampled by the "
                f"broken arm's learners in {self.runs} stored runs: the rate is below "
                f"{self.upper_95:.2g} per sampled row (95%, one-sided)")


def sampled_rows(records: Iterable[dict]) -> SampledRows:
    """``SampledRows`` of the broken arm's run records (in a notebook:
    ``experiments.stored_records("write_before_publish", DATA, broken=True)``)."""
    runs = rows = unwritten = 0
    for record in records:
        value = unwritten_sampled(record)
        if value is None:  # a run from before the record existed
            continue
        batch = record["spec"]["config"].get("batch_size", Config.batch_size)
        runs += 1
        rows += sum(record["updates"]) * batch
        unwritten += int(value)
    return SampledRows(runs, rows, unwritten)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "write_before_publish",
        "The replay counts a row before writing it: the sampler can read an unwritten row "
        "(async only).",
        "async", margin=CARTPOLE_MARGIN,
        manipulation=Manipulation(
            "rows the learner sampled before they were written", unwritten_sampled,
            lambda n: n >= 1),
        diagnostics=("learner.loss", "learner.unwritten_sampled", "actor.policy_lag")),
)



# --- the experiments its notebook runs --------------------------------------------------------

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
