# %% [markdown]
# # 08 · The training step counter
#
# **The claim.** The plan's review (its "Learning Issues Evaluation Report") marks the training
# step counter as fixed: `training_step = 0` is initialised in the learner process and
# incremented, and the publish and epsilon schedules use it correctly.
#
# The review is right about the plan. The counter is on its list because an earlier analysis of
# the plan, which the review checks, had flagged it; so this notebook asks what happens when the
# counter is wrong. Both ways it goes wrong are silent. A counter never incremented makes every schedule fire on every update; a
# counter never initialised kills the learner process at its first update, and the rest of the
# system carries on. Run it top to bottom (Restart & Run All); every number printed here is
# computed by the cells above it. How to read the verdict at the end:
# [20 · How to read a verdict](20_how_to_read_a_verdict.ipynb).

# %%
import torch

from mplearn import checks
from mplearn.issues import step_counter as issue
from mplearn.lab import notebook, plots

torch.set_num_threads(1)  # tiny tensors: one thread is fastest, and spares the other core
print("The claim:", issue.ENTRY.claim)
print("\nThe mechanism:", issue.ENTRY.mechanism)

# %% [markdown]
# ## 1 · The mechanism, in tiny exact experiments
#
# **Never incremented.** The learner publishes when `training_step % publish_interval == 0` and
# advances epsilon when `training_step % epsilon_decay_freq == 0`. If `training_step` stays 0,
# `0 % n == 0` holds on every update. The `step_counter` switch is that increment in the kit's
# learner; its check counts publishes in 20 updates, scheduled every 10:

# %%
# NBVAL_CHECK_OUTPUT
print(issue.check())

# %% [markdown]
# The epsilon schedule fires on every update too. With the kit's default `epsilon_decay_freq =
# 1` that changes nothing (the schedule advances every update anyway), so here the schedule
# advances every 10 updates and reaches its end (0.01) after 500 updates, as the plan's
# `epsilon_decay_freq` does. The kit's own learner, a short inline run, fix on and off:

# %%
# NBVAL_CHECK_OUTPUT
runs = issue.schedules(updates=200, epsilon_decay_freq=10, epsilon_decay_updates=500)
print(f"{'update':>6} {'epsilon fixed':>14} {'broken':>7} {'publishes fixed':>16} {'broken':>7}")
for f, b in zip(runs["fixed"], runs["broken"], strict=True):
    if f["update"] in (10, 20, 50, 100, 200):
        print(f"{f['update']:>6} {f['epsilon']:>14.3f} {b['epsilon']:>7.3f} "
              f"{f['publishes']:>16} {b['publishes']:>7}")

# %% [markdown]
# Ten times the publishes (each one a copy of both networks into shared memory, a cost on the
# learner's critical path) and an exploration schedule ten times shorter: after 50 updates the
# broken learner already exploits at epsilon 0.01.
#
# **Never initialised.** In the plan the counter is a local variable of the `learner_process`
# function. Drop the `training_step = 0` line and `training_step += 1` raises at the first
# update: Python reports an `UnboundLocalError`, a subclass of `NameError` (at module level it
# would be a plain `NameError`). The plan's loop, run here for 5 updates with the line and
# without it (updates done, error type):

# %%
# NBVAL_CHECK_OUTPUT
for initialise in (True, False):
    done, error = issue.uninitialised_counter(initialise, updates=5)
    print(f"counter initialised: {initialise!s:<5}  updates done: {done}  "
          f"error: {error.split(':')[0] or 'none'}")
print("UnboundLocalError is a NameError:", issubclass(UnboundLocalError, NameError))

# %% [markdown]
# **A silent death.** The same loop in a real learner process (the kit's `Learner` driven by the
# plan's loop and counter), started beside the kit's real `Actor`, which acts 2,000 env steps.
# The learner dies at its first update, once the actor has collected `learning_starts` = 500
# steps. A parent that does not look at its children sees nothing:

# %%
# NBVAL_CHECK_OUTPUT
print(issue.learner_death(watch=False))

# %% [markdown]
# The actor finished the whole run with the weights it started with (version 0) and the initial
# epsilon 1.0, since nobody decays it any more: a return at the level of a random policy,
# and no error anywhere. A parent that watches (it reads the error queue before every env step,
# as `System.poll()` does) raises the learner's traceback instead. The env step at which it
# notices depends on timing, so this cell's output is not checked:

# %%
watched = issue.learner_death(watch=True)
print(watched)
print("\n".join(str(watched.error).strip().splitlines()[-5:]))
print(checks.explain_error(watched.error))

# %%
# NBVAL_CHECK_OUTPUT
print("the parent raised:", type(watched.error).__name__, "from", watched.error.worker)
print("the issue it names:", checks.explain_error(watched.error).issue)

# %% [markdown]
# ## 2 · The effect on learning
#
# A never-incremented counter. The effect on learning comes through the epsilon schedule, so
# the scenario advances it every 10 updates (decay over 5,000 updates fixed, over 500 broken),
# on the copy path where publishes happen. A short live run first: CartPole-v1, two paired
# seeds; inline mode computes exactly what lockstep does for a seed.

# %%
# NBVAL_CHECK_OUTPUT
run = notebook.live("step_counter", steps=2_000, seeds=2, mode="inline")
print(run.table())

# %%
_ = run.figure()
_

# %% [markdown]
# The full-length results (25,000 env steps, 20 paired seeds), computed once by
# `python -m mplearn reproduce step_counter` and stored in `data/`:

# %%
results = notebook.experiments.load("step_counter", root="../data")
print(results.table())
_ = results.figure()
_

# %% [markdown]
# The publishes have a price in time. The runs' wall times, recorded on a 16-core host that ran
# several runs at once, are only indicative:

# %%
import numpy as np

for variant in ("fixed", "broken"):
    walls = [r["wall_s"] for r in results.manifest["runs"]
             if r["variant"] == variant and r["status"] != "missing"]
    print(f"{variant:<7} wall per run: mean {np.mean(walls):.0f} s "
          f"(from {min(walls):.0f} to {max(walls):.0f} s)")

# %% [markdown]
# What the broken learner did differently, over time: its epsilon (what the actor explores
# with) and the publishes it made.

# %%
plots.two_diagnostics_figure(
    results.diagnostics["learner.epsilon"], results.diagnostics["learner.publishes"],
    ylabels=("epsilon", "publishes (cumulative)"),
    titles=("exploration: the learner's epsilon", "weight publishes"),
    suptitle="The step counter never incremented: the schedules (25,000 env steps)",
    logy=(False, True))

# %% [markdown]
# ## 3 · The diagnostic
#
# In your own code: count what the schedules did and compare with what they should have done.
# The records of the short run in section 1 hold both counts; a publish per update where one in
# `publish_interval` = 10 is due gives the counter away:

# %%
# NBVAL_CHECK_OUTPUT
for name, records in runs.items():
    last = records[-1]
    print(f"{name:<7} publishes per update: {last['publishes'] / last['update']:.2f} "
          f"(schedule: 0.10)")

# %% [markdown]
# In a running `System`, the monitor compares the learner's publishes and epsilon with their
# schedules and names the issue:

# %%
monitor = notebook.monitored_run(notebook.demo_config(broken=("step_counter",)))
print(monitor.report())

# %%
# NBVAL_CHECK_OUTPUT
print("issues the monitor named:", monitor.issues)

# %% [markdown]
# ## 4 · The verdict
#
# Computed from the stored runs in `data/` (how to read it:
# [20 · How to read a verdict](20_how_to_read_a_verdict.ipynb)); they measure a counter never
# incremented. The review is right about the plan's counter, and the two ways a counter goes
# wrong behave very differently:
#
# - Never initialised: the learner dies at its first update (`UnboundLocalError`, a
#   `NameError`), and without a parent that watches, the run goes on: the actor acts at epsilon
#   1.0 with its initial weights and earns a random policy's return (section 1). A watching
#   parent raises the learner's traceback.
# - Never incremented: epsilon reaches its end ten times sooner and the learner publishes on
#   every update instead of every tenth (the figure above); the verdict says what that did to
#   the return. The publishes also cost time: compare the wall times printed above (indicative
#   only: recorded on a shared host).

# %%
print(notebook.verdict("step_counter", root="../data"))

# %% [markdown]
# ## 5 · Try it
# Fix on and fix off side by side, one seed each, the copy path, the epsilon schedule advanced
# every 10 updates and ending after 1,000, inline (under 15 s on 2 cores): on the left the learner's
# epsilon, on the right the learning curves.

# %%
toggle = notebook.FixToggle(
    "step_counter", diagnostic="learner.epsilon", ylabel="the learner's epsilon",
    see="with the fix off the counter never moves, so the every-10-updates schedule fires on "
        "every update: epsilon reaches 0.01 ten times sooner (the red line drops almost at "
        "once); the returns differ only while the fixed agent still explores.",
    steps=2_500, overrides={"learning_starts": 200, "epsilon_decay_updates": 1_000,
                            "log_interval": 20})
_ = toggle.run()
toggle
