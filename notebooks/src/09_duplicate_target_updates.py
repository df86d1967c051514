# %% [markdown]
# # 09 · Duplicate target network updates
#
# **The claim.** The plan's review (its "Learning Issues Evaluation Report") names duplicate
# target network updates as one of three critical issues that must be fixed before the plan is
# implemented. It says so once, in its overall assessment: no section analyses the issue, and
# its conclusion lists only two required fixes, neither of them this one. The plan updated the
# target in two places: a soft update inside `train_step`, and another one in the learner loop
# every `target_update_freq` = 4 steps.
#
# Whether a second update matters depends on what kind of update it is. This notebook measures
# it for a hard copy and for a soft (Polyak) update, first exactly, then on learning. Run it top
# to bottom (Restart & Run All); every number printed here is computed by the cells above it.
# How to read the verdict at the end: [20 · How to read a verdict](20_how_to_read_a_verdict.ipynb).

# %%
import torch
from matplotlib.figure import Figure

from mplearn.issues import single_target_update as issue
from mplearn.lab import notebook, plots

torch.set_num_threads(1)  # tiny tensors: one thread is fastest, and spares the other core
print("The claim:", issue.ENTRY.claim)
print("\nThe mechanism:", issue.ENTRY.mechanism)

# %% [markdown]
# ## 1 · The mechanism, in tiny exact experiments
#
# The `single_target_update` switch is the second update in the kit's learner (`grep -n
# "FIX(single_target_update" mplearn/learner.py`). Its check counts target updates in 20
# optimizer steps, scheduled every 10:

# %%
# NBVAL_CHECK_OUTPUT
print(issue.check())

# %% [markdown]
# **What two updates in a row do.** A soft update moves the target a fraction tau of the way
# to the online network: theta' <- (1 - tau) theta' + tau theta. Two of them against the same
# online weights leave (1 - tau)^2 of the old target, which is one update with
# tau_2 = 1 - (1 - tau)^2 = 2 tau - tau^2, nearly twice tau. A hard copy is the case tau = 1:
# copying twice is copying once. With the learner's own `update_target` on a random 64 x 64
# layer (the difference is float rounding):

# %%
# NBVAL_CHECK_OUTPUT
for tau in (0.001, 0.005):
    diff = issue.repeated_vs_effective(tau, repeats=2)
    print(f"tau {tau}: twice = once with tau {issue.effective_tau(tau, 2):.6f} "
          f"(max |difference| < 1e-6: {diff < 1e-6})")
diff = issue.repeated_vs_effective(1.0, repeats=2)
print(f"tau 1 (hard copy): twice = once, max |difference| = {diff}")

# %% [markdown]
# **How far the target trails.** The target network exists to hold the bootstrap targets still
# while the online network moves. A measure of how still: the target's time constant, the number
# of optimizer steps after which it has covered 1 - 1/e (63%) of a sudden change of the online
# weights. For the kit's defaults (a hard copy every 100 updates), the plan's soft update with
# tau = 0.005 used in `data/`, and the plan's origin (tau = 0.001 every update, plus the loop's
# extra update every 4 steps):

# %%
# NBVAL_CHECK_OUTPUT
rows = [
    ("hard copy every 100 updates", dict(tau=1.0, period=100), dict(repeats=2)),
    ("soft tau 0.005 every update", dict(tau=0.005), dict(repeats=2)),
    ("soft tau 0.001 every update", dict(tau=0.001), dict(extra_every=4)),
    ("hard copy every update", dict(tau=1.0), dict(repeats=2)),
]
print(f"{'schedule':<29} {'once':>6} {'duplicated':>11}  (time constant, updates)")
for label, base, duplicate in rows:
    once = issue.time_constant(**base)
    twice = issue.time_constant(**base, **duplicate)
    print(f"{label:<29} {once:>6} {twice:>11}")

# %% [markdown]
# - A duplicated hard copy changes nothing: the target still trails by 100 updates.
# - A duplicated soft update halves the time constant (200 to 100 updates at tau = 0.005).
# - The plan's own pattern (one extra update every 4 steps) shortens it by a fifth, from 1,000 to
#   800 updates: 5 updates per 4 optimizer steps, an effective tau about 1.25 times larger.
# - A hard copy on every update (or a soft update with tau near 1) leaves a time constant of one
#   update: there is no target network left. Duplicating a sane schedule does not get there; it
#   is the failure people have in mind when they worry about duplicates.
#
# ## 2 · The effect on learning
#
# The kit's default, a hard copy every 100 updates, is unaffected by construction: the second
# copy writes the values the first one just wrote, exactly (section 1), so the runs would be the
# same runs to the last bit, and the stored results do not repeat them. The scenario is the
# plan's soft update instead, tau 0.005 on every update, with the target updated once (fixed)
# or twice (broken). A short live run first: CartPole-v1, two paired seeds (same environment
# seeds and initial weights); inline mode computes exactly what lockstep does for a seed.

# %%
# NBVAL_CHECK_OUTPUT
run = notebook.live("single_target_update", steps=2_000, seeds=2, mode="inline")
print(run.table())

# %%
_ = run.figure()
_

# %% [markdown]
# At 2,000 env steps the runs have barely started learning and the two settings are close. The
# full-length results (25,000 env steps, 20 paired seeds), computed once by
# `python -m mplearn reproduce single_target_update` and stored in `data/`:

# %%
results = notebook.experiments.load("single_target_update", root="../data")
print(results.table())
_ = results.figure()
_

# %% [markdown]
# Compare the two variants in the table above: a duplicated soft update is a larger tau, so
# if the "broken" runs learned faster, the learner's values show why: each target update
# carries new value estimates into the bootstrap targets, and a target that follows twice as
# fast carries them twice as fast. The learner's mean Q-value over time (its batches), and at
# the end of the runs:

# %%
import numpy as np

mean_q = results.diagnostics["learner.mean_q"]
fig = Figure(figsize=(7, 3.4), layout="constrained")
plots.diagnostic_over_time(fig.subplots(), mean_q, "mean Q (learner's batches)", window=5,
                           title="Soft tau 0.005: the learner's Q-values")
display(fig)
for variant, runs in mean_q.items():
    last = [np.mean(values[-20:]) for _, values in runs]
    print(f"{variant:<7} mean Q over each run's last 20 records: "
          f"{', '.join(f'{q:.1f}' for q in last)}")

# %% [markdown]
# ## 3 · The diagnostic
#
# In your own code: count target updates and compare with optimizer steps. The learner's records
# of the short live run hold both; with one update per optimizer step scheduled, two is the
# duplicate:

# %%
# NBVAL_CHECK_OUTPUT
for name, recs in run.records.items():
    learner = recs[0]["learner"][0]
    print(f"{name:<7} target updates per optimizer step: "
          f"{learner['target_updates'][-1] / learner['update'][-1]:.2f} (schedule: 1.00)")

# %% [markdown]
# In a running `System`, the monitor compares the learner's target updates with
# `updates / target_update_period` and names the issue:

# %%
monitor = notebook.monitored_run(notebook.demo_config(broken=("single_target_update",)))
print(monitor.report())

# %%
# NBVAL_CHECK_OUTPUT
print("issues the monitor named:", monitor.issues)

# %% [markdown]
# ## 4 · The verdict
#
# Computed from the stored runs in `data/` (how to read it:
# [20 · How to read a verdict](20_how_to_read_a_verdict.ipynb)); they measure the soft
# update. Section 1 settles the rest exactly: a duplicated hard copy, the kit's default,
# changes nothing (the second copy writes the values the first one wrote); a duplicated soft
# update is a change of tau that halves the target's time constant; the plan's own pattern, an
# extra update every 4 steps, is a smaller change still. A larger tau is not safe everywhere:
# a target that follows too closely stops holding the bootstrap targets still, and at a time
# constant of one update there is no target network left. So the issue is a hyperparameter in
# disguise: count target updates (section 3) so that the tau you tuned is the tau you run.

# %%
print(notebook.verdict("single_target_update", root="../data"))

# %% [markdown]
# ## 5 · Try it
# Fix on and fix off side by side, one seed each, the soft update (tau 0.005 every update),
# inline (under 15 s on 2 cores): on the left the learner's target updates, on the right the learning
# curves.

# %%
toggle = notebook.FixToggle(
    "single_target_update", diagnostic="learner.target_updates",
    ylabel="target updates (cumulative)",
    see="with the fix off the target is updated twice per optimizer step (the red line climbs "
        "twice as steeply): an effective tau of about 0.01 instead of 0.005.",
    steps=2_500, overrides={"learning_starts": 200, "log_interval": 20})
_ = toggle.run()
toggle
