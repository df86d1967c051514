# %% [markdown]
# # 10 · Initial model state
#
# **The claim.** The plan's review (its "Learning Issues Evaluation Report") calls the initial
# model state a potential issue of low to medium impact: it is unclear whether the shared
# models start from random or from copied weights, and it recommends documenting which.
#
# Documenting the start is not enough when processes are involved: each process has its own
# copy of the network, and the question is which weights each one *acts* with. This notebook
# measures the case the kit switches: an actor that acts before its first pull of the shared
# weights, with the random init of its own local network. Run it top to bottom (Restart & Run
# All); every number printed here is computed by the cells above it. How to read the verdict
# at the end: [20 · How to read a verdict](20_how_to_read_a_verdict.ipynb).

# %%
import torch
from matplotlib.figure import Figure

from mplearn.issues import initial_state as issue
from mplearn.lab import notebook, plots

torch.set_num_threads(1)  # tiny tensors: one thread is fastest, and spares the other core
print("The claim:", issue.ENTRY.claim)
print("\nThe mechanism:", issue.ENTRY.mechanism)

# %% [markdown]
# ## 1 · The mechanism, in a tiny exact experiment
#
# The actor keeps a local copy of each agent's online network, built in its own process with
# its own random init. The fix is one blocking pull of the shared weights before the first env
# step (`grep -n "FIX(initial_state" mplearn/actor.py`). Broken, the actor trusts its local copy
# as version 0 and replaces it only when the learner publishes a newer version. The check
# compares the actor's weights with the shared ones at the first step (the actor draws its
# init from torch's global generator, seeded here so the distance printed is the same
# everywhere):

# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(0)
print(issue.check())

# %% [markdown]
# **When it matters.** The actor consults its network only for greedy actions, that is with
# probability 1 - epsilon, and only until the learner's first publish, which comes after
# `learning_starts` env steps (1,000 by default). So:
#
# - From scratch, epsilon is 1.0 during those steps: the network is never consulted, and the
#   shared weights are random anyway. No effect.
# - After a restart from trained weights (a crash, a checkpoint, a second training phase) with
#   little exploration, nearly every one of the first `learning_starts` actions comes from a
#   random network instead of the trained one, and those transitions fill the new replay.
#
# So the scenario trains 15,000 env steps, then starts a new system (actor, learner, replay)
# whose shared models resume from the first one's, with epsilon 0.01, and compares the return
# over the next 5,000 env steps.
#
# ## 2 · The effect on learning
#
# A short live run of the same restart, scaled down: 2,600 env steps, the restart at 1,560, two
# paired seeds. The stored runs use lockstep mode (real processes); a restart starts two
# systems per run, so the live run uses inline mode, the same actor and learner code in one
# process (`notebook.live(..., mode="inline")`), whose numbers repeat on this machine each
# time (a seed reproduces on one machine and torch build). The second
# phase lasts 1,040 env steps and its learner starts after 1,000 of them, so the broken actor
# spends nearly all of it on its own random init: this short run shows the first 1,000 steps
# after a restart, magnified.

# %%
# NBVAL_CHECK_OUTPUT
run = notebook.live("initial_state", steps=2_600, seeds=2, mode="inline")
print(run.table())

# %%
_ = run.figure("Initial model state: a short live restart (at 1,560 env steps)")
_

# %% [markdown]
# The full-length results (20 paired seeds), computed once by
# `python -m mplearn reproduce initial_state` and stored in `data/`. The dotted line marks the
# restart, the shaded band the window whose episodes are compared:

# %%
results = notebook.experiments.load("initial_state", root="../data")
print(results.table())
_ = results.figure()
_

# %% [markdown]
# Before the restart the two variants are the same runs: the actor's own network is never
# consulted at epsilon 1.0, and the learner's first update publishes the shared weights. The
# largest gap between any seed's fixed and broken curves before the restart:

# %%
import numpy as np

restart = results.manifest["scenario"]["restart"]["at"]
before = results.grid < restart
gap = np.nanmax(np.abs(results.curves["fixed"][:, before] - results.curves["broken"][:, before]))
print(f"largest |fixed - broken| before env step {restart}: {gap}")

# %% [markdown]
# The compared value is the curve (mean of the last 20 episodes) averaged over the shaded
# window, the 5,000 env steps after the restart. The final return (the last 20 episodes, 10,000
# env steps after the restart) shows whether the damage lasts:

# %%
for variant in ("fixed", "broken"):
    finals = [r["final_return"] for r in results.manifest["runs"]
              if r["variant"] == variant and r["status"] != "missing"]
    print(f"{variant:<7} final return per seed: {', '.join(f'{x:.1f}' for x in finals)}")

# %% [markdown]
# What the actor acted with: the steps it acted with weights it never pulled, as it records
# them (the count starts again with the new actor at the restart, the dotted line).

# %%
fig = Figure(figsize=(7, 3.4), layout="constrained")
ax = fig.subplots()
plots.diagnostic_over_time(ax, results.diagnostics["actor.unpulled_steps"],
                           "env steps (cumulative)",
                           title="Steps the actor acted with weights it never pulled")
ax.axvline(results.manifest["scenario"]["restart"]["at"], color="0.5", linewidth=1,
           linestyle=":")
fig

# %% [markdown]
# ## 3 · The diagnostic
#
# In your own code: pull before the first step, and check that the actor's network equals the
# shared one right after (the check above measures exactly that distance). In a running
# `System`, the actor records how many steps it acted with weights it never pulled, and the
# monitor names the issue. In this demo run (from scratch, epsilon 1.0) the damage is nil, but
# the pattern is the same:

# %%
monitor = notebook.monitored_run(notebook.demo_config(broken=("initial_state",)))
print(monitor.report())

# %%
# NBVAL_CHECK_OUTPUT
print("issues the monitor named:", monitor.issues)

# %% [markdown]
# ## 4 · The verdict
#
# Computed from the stored runs in `data/` (how to read it:
# [20 · How to read a verdict](20_how_to_read_a_verdict.ipynb)), which hold one setting: the
# restart from trained weights with epsilon 0.01. The review's claim (unclear, document
# whether the shared models start random or copied) looks at the wrong copy: the problem is a
# process that acts with a network of its own before it ever pulls the shared one. From
# scratch it cannot matter (epsilon is 1.0 until the learner's first publish: the largest gap
# before the restart, printed in section 2); after a restart with little exploration it can,
# for as long as the final returns printed in section 2 show. The fix costs one blocking pull
# before the first step.

# %%
print(notebook.verdict("initial_state", root="../data"))

# %% [markdown]
# ## 5 · Try it
# Fix on and fix off side by side, one seed each, the short restart of section 2 (at 60% of
# the run), inline (under 15 s on 2 cores): on the left the steps the actor acted with weights it never
# pulled, on the right the learning curves.

# %%
toggle = notebook.FixToggle(
    "initial_state", diagnostic="actor.unpulled_steps",
    ylabel="env steps acted unpulled (cumulative)",
    see="with the fix off the actor acts on its own random init until the learner's first "
        "publish (the red count climbs, at the start and again after the restart at 60%); "
        "after the restart, at epsilon 0.01, that costs return: the red curve drops. With the "
        "fix on it pulls first and the count stays at 0.",
    steps=3_000, overrides={"log_interval": 20})
_ = toggle.run()
toggle
