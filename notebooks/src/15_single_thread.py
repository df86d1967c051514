# %% [markdown]
# # 15 · Thread oversubscription
#
# **The claim.** The plan's review does not mention this issue. The plan's origin measured its
# multiprocess version 1.4 to 1.7 times *slower* than its sequential one (5 agents, its own
# task and machine); one thing that makes processes slower than they should be is torch's
# thread pool in every process. The catalogue entry, in our words:

# %%
import json
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from mplearn import checks
from mplearn.issues import single_thread as issue
from mplearn.lab import notebook, plots

RESULTS = Path("../benchmarks/results")
DATA = "../data"
print("The claim:", issue.ENTRY.claim or "none: the review does not mention this issue")
print("\nThe mechanism:", issue.ENTRY.mechanism)

# %% [markdown]
# Timings depend on the machine and on what else runs on it, so the cells that print them are
# not checked against stored output; read the ratios, not the digits. Run the notebook top to
# bottom (Restart & Run All). How to read a verdict: [20 · How to read a
# verdict](20_how_to_read_a_verdict.ipynb) (this issue acts on speed, so its verdict is on
# speed, with the same labels: section 4).
#
# ## 1 · The mechanism
#
# PyTorch runs each operation on a pool of threads, by default one per core. That is right for
# one process alone on the machine. With several processes, each starts its own pool of one
# thread per core: on 2 cores, 4 processes run 8 threads that all want a core. Worse, torch's
# threads wait for each other at the end of every operation, and a thread that is not
# scheduled holds the others up. The fix is one line in every worker:
# `torch.set_num_threads(1)`. The check: what a spawned worker runs with, fix on and off:

# %%
print(issue.check())

# %% [markdown]
# **The measurement.** A pool of spawned processes, started *without* that line (so each first
# reports torch's default), runs the default learner update (CartPole shapes, batch 64) for half
# a second per configuration: 1, 2 or 4 processes at once, with 1 thread each or with torch's
# default.

# %%
def thread_figure(table):
    """Updates per second, all processes together: 1 thread each (fixed) against torch's
    default (broken), per process count."""
    threads = sorted({t for _, t in table.rates})
    processes = sorted({p for p, _ in table.rates})
    fig = Figure(figsize=(7, 3.2), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / len(threads)
    for k, t in enumerate(threads):
        variant = "fixed" if t == 1 else "broken"
        ax.bar(np.arange(len(processes)) + (k - (len(threads) - 1) / 2) * width,
               [table.rates[(p, t)] for p in processes], width,
               color=plots.VARIANT_COLORS[variant],
               label=f"{t} thread{'s' if t > 1 else ''} per process"
               + (" (fix on)" if t == 1 else " (torch's default: fix off)"))
    ax.set(xticks=range(len(processes)),
           xticklabels=[f"{p} process{'es' if p > 1 else ''}" for p in processes],
           ylabel="learner updates / s (all processes)",
           title=f"Learner updates per second on {table.cores} cores")
    ax.legend(frameon=False, fontsize="small")
    return fig


table = issue.thread_table(processes=(1, 2, 4), seconds=0.5)
print(table)
thread_figure(table)

# %% [markdown]
# Read the rows by how many threads they ask of the cores. The 1-process row is not
# oversubscribed: one process with torch's default runs one thread per core, which is what the
# default is for; whatever it gains or loses there against 1 thread is torch's own threading on
# these small tensors (and whatever else the machine was running), not oversubscription. The
# rows where processes × threads exceed the cores are oversubscribed, and the ratio against
# the same processes at 1 thread each is what the fix buys.
#
# ## 2 · The effect
#
# This issue acts on speed, not on what is learned: there are no learning runs in `data/` for
# it (the registry says why):

# %%
print(issue.NO_SCENARIO)

# %% [markdown]
# With one thread per process (the fix) and the update-to-data ratio enforced (notebook 17),
# what does async mode gain over inline on this machine? Suppose that in the sequential
# (inline) loop an env step costs `a` ms of acting and `b` ms of learning. One actor and one
# learner that overlap perfectly take `max(a, b)` per step instead of `a + b`: a speedup of at
# most `(a + b) / max(a, b)`, which is close to 1 when one side dominates. With several agents
# the learners also run side by side on separate cores, which that bound does not count.
# `python -m mplearn bench throughput --agents 1 2 4 --steps 6000` measures both modes and
# times `a` and `b` inline; its stored result on this 2-core machine:

# %%
stored = json.loads((RESULTS / "throughput_2core.json").read_text())
print(f"{stored['cpus']} cores, {stored['steps']} env steps per agent, overrides "
      f"{stored['overrides']}; {stored.get('note', '')}")
print(f"{'agents':>6} {'inline':>8} {'async':>8} {'a ms':>6} {'b ms':>6} {'speedup':>8} "
      f"{'ideal':>6}")
for n, r in stored["agents"].items():
    print(f"{n:>6} {r['inline']['env_steps_per_s']:>8.0f} {r['async']['env_steps_per_s']:>8.0f} "
          f"{r['inline']['act_ms_per_step']:>6.3f} {r['inline']['learn_ms_per_step']:>6.3f} "
          f"{r['speedup']:>8.2f} {r['ideal_speedup']:>6.2f}")
print("(inline and async: env steps per second, all agents; speedup: async / inline; "
      "ideal: (a + b) / max(a, b))")

# %%
agents = list(stored["agents"])
fig = Figure(figsize=(8, 3.2), layout="constrained")
ax = fig.subplots()
x = np.arange(len(agents))
ax.bar(x, [stored["agents"][n]["speedup"] for n in agents], 0.5,
       color=plots.VARIANT_COLORS["fixed"], label="async / inline, measured")
ax.scatter(x, [stored["agents"][n]["ideal_speedup"] for n in agents], marker="_", s=900,
           color="black", linewidths=2, label="ideal overlap (a + b) / max(a, b)", zorder=3)
ax.axhline(1.0, color="0.5", linewidth=0.8)
ax.set(xticks=x, xticklabels=[f"{n} agent{'s' if n != '1' else ''}" for n in agents],
       ylabel="speed relative to inline", title="Async against inline (stored benchmark)")
ax.legend(frameon=False, fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
fig

# %% [markdown]
# Read the table against its own ideal column: with one agent the learner costs many times
# what the actor does, so even perfect overlap could win little; with more agents the
# learners train side by side on the two cores, which can take async beyond the
# one-actor-one-learner bound. The origin's "1.4 to 1.7 times slower" was measured on another
# task, network and machine, so these numbers are not divided by it: to compare, run both
# on one machine. To measure your own: `python -m mplearn bench throughput --agents 1 2
# --steps 6000` (it takes minutes per agent count; more on a loaded machine).
#
# ## 3 · The diagnostic
#
# `checks.thread_count(processes)` compares the threads of the process it runs in with the
# cores the processes share. This notebook's own kernel runs torch's default:

# %%
print(checks.thread_count(processes=3))

# %% [markdown]
# Every mplearn worker records its thread count (`threads` in the learner and actor records),
# and the `Monitor` names `single_thread` when a worker runs more than one thread.
#
# ## 4 · The verdict
#
# The fix changes how fast the system runs, not what it learns (section 2), so its verdict is
# on speed, declared before anything ran (`issue.SPEED`): the metric is the learner updates
# per second of all processes together, fixed - broken as a percentage of fixed; each pair is
# one repeat in which the same processes run with 1 thread each and with torch's default, back
# to back, the order alternating; the margin and its reason:

# %%
print(f"{issue.SPEED.metric}; margin {issue.SPEED.margin.value:g} {issue.SPEED.unit}: "
      f"{issue.SPEED.margin.reason}; {issue.SPEED.repeats} repeats of "
      f"{issue.SPEED.seconds:g} s per arm")

# %% [markdown]
# Two conditions per machine: one process alone (nothing is oversubscribed: torch's default is
# meant for this) and one process per core (every core busy, as the plan's actor and learners
# keep them). `python -m mplearn reproduce single_thread` measures them on the machine it runs
# on and stores them in `data/single_thread/speed.json`, one entry per machine; the verdicts,
# from the same function as every other issue's:

# %%
print(notebook.verdict("single_thread", root=DATA))

# %% [markdown]
# A verdict here is about its machine and its process count: on a machine with more cores
# than processes, a learner alone may gain from a few threads. Measure before you give a
# worker more than one.
#
# ## 5 · Try it
# The measurement of section 1 again, fix on (1 thread per process) and fix off (torch's
# default) side by side, for 1 up to the number of processes the slider sets (a few seconds
# to start them, then half a second per bar).

# %%
def threads(processes: int):
    return thread_figure(issue.thread_table(processes=tuple(range(1, processes + 1)),
                                            seconds=0.5))


tryit = notebook.TryIt(
    threads, value=2, min=1, max=4, step=1, description="processes (up to)",
    see="where processes × threads exceed the cores, the red bars (torch's default) fall "
        "below the blue ones (1 thread each); with 1 process nothing is oversubscribed.")
_ = tryit.run()
tryit
