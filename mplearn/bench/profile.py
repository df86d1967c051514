"""Profile: the inline learner update and actor step, op by op (torch.profiler), one thread.

An inline system runs to ``--warmup`` env steps (so the replay holds real data and Adam has
state), then the learner's update (sample, convert, loss, backward, clip, Adam, records) and
the actor's env step are each timed without the profiler (best of ``--repeats`` loops) and then
profiled. Each op gets its calls and self CPU time per update (or per env step); the profiler's
own overhead inflates its totals, so the untimed figures are the ones to quote.

The ``floor`` part says how far down the update can go without changing what it computes: the
same learner's IQN loss, backward, clip and Adam on one fixed batch with none of the learner's
bookkeeping (sampling, records, the publish lock), and the matrix products alone (every
``addmm``/``mm`` of one update, replayed at the shapes the profiler recorded). What separates
the update from the GEMM floor is elementwise work on [B*N, H] activations and the dispatch of
~750 small ops a step.
"""

from __future__ import annotations

import queue
import time

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

from mplearn.bench.common import machine, parse_set, parser, positive
from mplearn.core.config import Config
from mplearn.core.learner import Learner
from mplearn.core.system import System

GEMMS = ("aten::addmm", "aten::mm")


def _best_ms(fn, calls: int, repeats: int) -> float:
    """Fastest mean ms per call over ``repeats`` loops of ``calls`` calls: load only adds."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - t0) / calls)
    return 1e3 * best


def _ops(fn, calls: int, top: int) -> dict:
    """torch.profiler over ``calls`` calls: the ``top`` ops by self CPU time, per call."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(calls):
            fn()
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0 or e.count > 0]
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    total_us = sum(e.self_cpu_time_total for e in events)
    ops = [{"op": e.key, "calls": round(e.count / calls, 2),
            "self_ms": round(e.self_cpu_time_total / calls / 1e3, 4)} for e in events[:top]]
    return {"profiled_ms": round(total_us / calls / 1e3, 4),
            "op_calls": round(sum(e.count for e in events) / calls, 1), "top": ops}


def _gemm_shapes(fn) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """The (mat1, mat2) shapes of every matrix product one call of ``fn`` makes."""
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        fn()
    shapes = []
    for e in prof.events():
        if e.name in GEMMS:
            mats = [tuple(s) for s in e.input_shapes if len(s) == 2]
            shapes.append((mats[-2], mats[-1]))  # addmm: (bias, mat1, mat2); mm: (mat1, mat2)
    return shapes


def floor(learner: Learner, calls: int, repeats: int) -> dict:
    """The update's parts on one fixed batch, and the GEMM floor (see the module's doc)."""
    c, model = learner.config, learner.model
    online, optimizer = model.qnetwork_local, model.optimizer
    t = learner.to_tensors(learner.channel.buffer.sample(c.batch_size, learner.rng))

    def loss():
        return learner.loss(t)[0]

    def step(clip: bool) -> None:
        value = loss()
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        if clip:
            nn.utils.clip_grad_norm_(online.parameters(), c.max_grad_norm, foreach=True)
        optimizer.step()

    matrices = [(torch.randn(a), torch.randn(b)) for a, b in _gemm_shapes(lambda: step(True))]

    def gemms() -> None:
        for a, b in matrices:
            torch.mm(a, b)

    return {"sample_and_convert_ms": _best_ms(
                lambda: learner.to_tensors(learner.channel.buffer.sample(c.batch_size,
                                                                         learner.rng)),
                calls, repeats),
            "loss_forward_ms": _best_ms(loss, calls, repeats),
            "step_no_clip_ms": _best_ms(lambda: step(False), calls, repeats),
            "step_ms": _best_ms(lambda: step(True), calls, repeats),
            "gemms": len(matrices),
            "gemm_ms": _best_ms(gemms, calls, repeats)}


def run(config: Config, warmup: int, calls: int, repeats: int, top: int) -> dict:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the workers and the inline rounds run
    records: queue.SimpleQueue = queue.SimpleQueue()
    try:
        with System(config) as system:
            while system.env_steps < warmup:
                system.poll()
            learner, actor = system._learners[0], system._actor

            def update() -> None:
                learner.update()
                learner.maybe_record(records)

            def step() -> None:
                actor.step(records)

            out = {"benchmark": "profile", "machine": machine(), "config": {
                       "warmup": warmup, "calls": calls, "repeats": repeats},
                   "update_ms": _best_ms(update, calls, repeats),
                   "env_step_ms": _best_ms(step, calls, repeats)}
            out["update"] = _ops(update, calls, top)
            out["env_step"] = _ops(step, calls, top)
            out["inline_ms_per_step"] = out["update_ms"] + out["env_step_ms"]
            out["floor"] = floor(learner, calls, repeats)  # last: its Adam steps move weights
    finally:
        torch.set_num_threads(threads)
    out["load_avg_1m_after"] = machine()["load_avg_1m"]
    return out


def table(out: dict) -> str:
    """The result as text: one op table per part."""
    lines = [f"update {out['update_ms']:.3f} ms, env step {out['env_step_ms']:.3f} ms, "
             f"inline step {out['inline_ms_per_step']:.3f} ms (best of "
             f"{out['config']['repeats']} x {out['config']['calls']}; load "
             f"{out['machine']['load_avg_1m']} -> {out['load_avg_1m_after']})"]
    f = out.get("floor")
    if f:
        lines.append(
            f"floor: IQN loss forward {f['loss_forward_ms']:.3f} ms; loss, backward, clip and "
            f"Adam on a fixed batch {f['step_ms']:.3f} ms ({f['step_no_clip_ms']:.3f} without "
            f"the clip); sample and convert {f['sample_and_convert_ms']:.3f} ms; its "
            f"{f['gemms']} matrix products alone {f['gemm_ms']:.3f} ms")
    for part in ("update", "env_step"):
        p = out[part]
        lines.append(f"\n{part}: profiled {p['profiled_ms']:.3f} ms, {p['op_calls']} op calls")
        lines.append(f"{'op':<44}{'calls':>8}{'self ms':>10}")
        lines += [f"{o['op'][:43]:<44}{o['calls']:>8}{o['self_ms']:>10.4f}" for o in p["top"]]
    return "\n".join(lines)


def build(argv: list[str]):
    ap = parser("profile", __doc__)
    ap.add_argument("--warmup", type=int, default=1500, help="env steps before timing")
    ap.add_argument("--calls", type=int, default=500, help="updates (and env steps) per loop")
    ap.add_argument("--repeats", type=int, default=5, help="timed loops; the fastest counts")
    ap.add_argument("--top", type=int, default=25, help="ops listed per part")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="config overrides (default learning_starts=100 device=cpu)")
    args = ap.parse_args(argv)
    for name in ("warmup", "calls", "repeats", "top"):
        positive(name, getattr(args, name))
    overrides = {"learning_starts": 100, "device": "cpu", **parse_set(args.set)}
    # The actor keeps stepping past total_env_steps here; leave it room.
    steps = args.warmup + 2 * args.calls * (args.repeats + 1)
    config = Config(mode="inline", total_env_steps=steps, **overrides)
    return lambda: run(config, args.warmup, args.calls, args.repeats, args.top)
