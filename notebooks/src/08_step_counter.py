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
# computed by the cells above it.

# %%
%matplotlib inline
import matplotlib.pyplot as plt
import torch

from mplearn.diagnose import checks
from mplearn.lab import notebook, plots
from mplearn.issues import step_counter
from mplearn.catalogue import issue
from mplearn.mechanisms import run_check

torch.set_num_threads(1)  # tiny tensors: one thread is fastest, and spares the other core
print(issue("step_counter").mechanism)

# %% [markdown]
# ## 1 · The mechanism, in tiny exact experiments
#
# **Never incremented.** The learner publishes when `training_step % publish_interval == 0` and
# advances epsilon when `training_step % epsilon_decay_freq == 0`. If `training_step` stays 0,
# `0 % n == 0` holds on every update. The `step_counter` switch is that increment in the kit's
# learner; its check counts publishes in 20 updates, scheduled every 10:

# %%
# NBVAL_CHECK_OUTPUT
print(run_check("step_counter"))

# %% [markdown]
# The epsilon schedule fires on every update too. With the kit's default `epsilon_decay_freq =
# 1` that changes nothing (the schedule advances every update anyway), so here the schedule
# advances every 10 updates and reaches its end (0.01) after 500 updates, as the plan's
# `epsilon_decay_freq` does. The kit's own learner, a short inline run, fix on and off:

# %%
# NBVAL_CHECK_OUTPUT
runs = step_counter.schedules(updates=200, epsilon_decay_freq=10, epsilon_decay_updates=500)
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
    done, error = step_counter.uninitialised_counter(initialise, updates=5)
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
print(step_counter.learner_death(watch=False))

# %% [markdown]
# The actor finished the whole run with the weights it started with (version 0) and the initial
# epsilon 1.0, since nobody decays it any more: a return at the level of a random policy,
# and no error anywhere. A parent that watches (it reads the error queue before every env step,
# as `System.poll()` does) raises the learner's traceback instead. The env step at which it
# notices depends on timing, so this cell's output is not checked:

# %%
watched = step_counter.learner_death(watch=True)
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
run = notebook.live("step_counter", steps=2_000, seeds=2)
print(run.table())

# %%
_ = run.figure()
_

# %% [markdown]
# The full-length results (25,000 env steps, 5 paired seeds), computed once by
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
    walls = [r["wall_s"] for r in results.manifest["runs"] if r["variant"] == variant]
    print(f"{variant:<7} wall per run: mean {np.mean(walls):.0f} s "
          f"(from {min(walls):.0f} to {max(walls):.0f} s)")

# %% [markdown]
# What the broken learner did differently, over time: its epsilon (what the actor explores
# with) and the publishes it made.

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.4), layout="constrained")
plots.diagnostic_over_time(left, results.diagnostics["learner.epsilon"], "epsilon",
                           title="exploration: the learner's epsilon")
plots.diagnostic_over_time(right, results.diagnostics["learner.publishes"],
                           "publishes (cumulative)", title="weight publishes", logy=True)
plt.show()

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

# %%
print(notebook.verdict("step_counter", root="../data"))

# %% [markdown]
# - The review's claim (the plan's counter is initialised and incremented): **right** about the
#   plan. The two ways the counter goes wrong behave very differently.
# - Never initialised: **real**, and total. The learner dies at its first update
#   (`UnboundLocalError`, a `NameError`), and without a parent that watches, the run goes on:
#   the actor acted all 2,000 env steps at epsilon 1.0 with its initial weights and a
#   random-policy return (section 1). A watching parent raises the learner's traceback.
# - Never incremented: **no effect measured** on learning. Epsilon reached 0.01 ten times
#   sooner and the learner published on every update instead of every tenth, yet after 25,000
#   env steps the broken runs were not worse: an IQM of 415 against 385, paired difference
#   fixed - broken of -22 (95% CI [-58, 7]). On the way the curves differ (the broken runs rise
#   first, then stall between about 7,000 and 15,000 env steps), but they end level. CartPole
#   forgives early exploitation; a task that needs long exploration may not (not measured
#   here). What it does cost is ten times the publishes, each a copy of both networks into
#   shared memory: the indicative wall times above are 8% longer (128 s against 119 s) on this
#   small network.
#
# ## 5 · Try it
# Toggle the fix and rerun the short experiment (one seed).

# %%
toggle = notebook.FixToggle("step_counter", steps=1_500)
_ = toggle.run()
toggle
