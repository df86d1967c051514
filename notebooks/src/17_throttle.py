# %% [markdown]
# # 17 · The update-to-data ratio
#
# **The claim.** The plan's review does not mention this issue. It comes from comparisons of a
# multiprocess learner with a sequential one, where the learner process simply trains as fast
# as it can. The catalogue entry, in our words:

# %%
import numpy as np
from matplotlib.figure import Figure

from mplearn import Config, Fixes, System
from mplearn.issues import throttle as issue
from mplearn.lab import notebook, plots

DATA = "../data"
print("The claim:", issue.ENTRY.claim or "none: the review does not mention this issue")
print("\nThe mechanism:", issue.ENTRY.mechanism)

# %% [markdown]
# Run the notebook top to bottom (Restart & Run All); every number printed here is computed by
# the cells above it. How to read the verdict at the end:
# [20 · How to read a verdict](20_how_to_read_a_verdict.ipynb).
#
# ## 1 · The mechanism, in a tiny exact experiment
#
# A sequential loop does a fixed number of updates per environment step (`updates_per_step`,
# here 1). A learner process that simply trains as fast as it can does whatever its speed
# allows: more updates per env step when acting is slow, fewer when learning is slow. Then a
# "multiprocess vs sequential" comparison compares two different algorithms, and the speed of
# the machine changes the results. The fix enforces the ratio in every mode: a learner waits
# for data rather than train ahead of it.
#
# 1,000 env steps (inline, one process) at a ratio of 0.05 updates per env step after
# `learning_starts` = 100. Unthrottled, the learner does one update in every round of 10 env
# steps whether it is owed or not.

# %%
# NBVAL_CHECK_OUTPUT
config = Config(mode="inline", device="cpu", total_env_steps=1_000, learning_starts=100,
                updates_per_step=0.05, batch_size=16, buffer_size=256, seed=0)
for fixes in (Fixes(), Fixes().without("throttle")):
    with System(config.replace(fixes=fixes)) as system:
        while system.env_steps < config.total_env_steps:
            system.poll()  # one inline round: 10 env steps, then the updates owed
        print(f"{'fixed' if not fixes.broken() else 'broken':<6}: {system.updates[0]} "
              f"updates in {system.env_steps} env steps; the ratio allows "
              f"{config.updates_owed(system.env_steps)}")

# %% [markdown]
# The issue's check:

# %%
# NBVAL_CHECK_OUTPUT
print(issue.check())

# %% [markdown]
# ## 2 · The effect on learning
#
# A short live run of the lockstep condition (the learner may update in every round),
# inline, which computes the same as lockstep for a seed: CartPole-v1, ratio 0.05, one seed:

# %%
# NBVAL_CHECK_OUTPUT
run = notebook.live("throttle", steps=2_000, seeds=1, condition="lockstep", mode="inline")
print(run.table())
for variant, recs in run.records.items():
    print(f"{variant}: {recs[0]['updates'][0]} updates in {recs[0]['env_steps']} env steps")

# %% [markdown]
# In async mode nothing paces an unthrottled learner but its own speed. The stored runs
# (25,000 env steps, a ratio of 0.05: low enough that a free-running learner could beat it)
# come in three conditions: async with two agents on one actor; lockstep rounds; and async
# with an actor as slow as a real simulator, `mplearn/SlowCartPole-v0` (CartPole-v1 whose
# every step also waits 1 ms), where the learner has far more time than the ratio needs.
# Computed once by `python -m mplearn reproduce throttle` and stored in `data/`:

# %%
results = notebook.experiments.load("throttle", root=DATA)
print(results.table())
stored_config = Config(**results.manifest["variants"][0]["config"] | {"fixes": Fixes()})
print(f"updates at the end, per seed (the ratio allows "
      f"{stored_config.updates_owed(stored_config.total_env_steps)}):")
for variant, runs in results.diagnostics["learner.update"].items():
    print(f"  {variant:<24}", [int(updates[-1]) for _, updates in runs])

# %%
# Conditions with stored runs (a condition whose sweep has not run yet has none to draw).
measured = [pair for pair in results.pairs
            if results.diagnostics["learner.update"].get(pair["fixed"])]
for pair in measured:
    display(results.figure(pair["condition"]))

# %% [markdown]
# When did the updates happen? Each learner's update count against the env steps, with what
# the ratio allows (dotted):

# %%
fig = Figure(figsize=(5 * len(measured), 3.2), layout="constrained")
# One scale each: an unthrottled learner with time to spare does ten times the others' updates.
for ax, pair in zip(fig.subplots(1, len(measured), squeeze=False)[0], measured, strict=True):
    series = {"fixed": results.diagnostics["learner.update"][pair["fixed"]],
              "broken": results.diagnostics["learner.update"][pair["broken"]]}
    plots.diagnostic_over_time(ax, series, "learner updates", title=pair["condition"])
    steps = np.linspace(0, stored_config.total_env_steps, 200)
    ax.plot(steps, [stored_config.updates_owed(int(x)) for x in steps], color="0.3",
            linewidth=1, linestyle=":",
            label=f"allowed ({stored_config.updates_per_step} per env step)")
    ax.legend(frameon=False, fontsize="small")
fig.suptitle("Learner updates against the update-to-data ratio")
fig

# %% [markdown]
# The switch acts only when the learner is faster than the data it is owed. Where the dotted
# line stays above both curves (a learner that never got ahead), it never acted; where the
# unthrottled curve climbs above the dotted line, that system ran a different algorithm (more
# updates per env step) than the one it is compared with.
#
# ## 3 · The diagnostic
#
# Count updates and compare with what the ratio allows. The `Monitor` does this on a running
# `System` and names `throttle` when the learner has done more updates than it was owed (a
# short inline run at a ratio of 0.05):

# %%
monitor = notebook.monitored_run(notebook.demo_config(broken=("throttle",), mode="inline"))
print(monitor.report())

# %%
# NBVAL_CHECK_OUTPUT
print("issues the monitor named:", monitor.issues)

# %% [markdown]
# ## 4 · The verdict
#
# Computed from the stored runs in `data/` (how to read it:
# [20 · How to read a verdict](20_how_to_read_a_verdict.ipynb)). The verdict asks whether the
# fix raises the return. At a deliberately low ratio more updates can learn faster, so an
# unthrottled learner may even end higher; leaving it free is still a mistake, because any
# comparison that includes it, whether multiprocess against sequential or fixed against
# broken, then measures the ratio rather than the thing you meant to compare.

# %%
print(notebook.verdict("throttle", root=DATA))

# %% [markdown]
# ## 5 · Try it
# Fix on and fix off side by side, one seed each, ratio 0.05, lockstep rounds computed inline
# (under 15 s on 2 cores): on the left the learner's update count, on the right the learning curves.

# %%
toggle = notebook.FixToggle(
    "throttle", diagnostic="learner.update", ylabel="learner updates (cumulative)",
    condition="lockstep",
    see="with the fix on the learner does the 0.05 updates per env step it is owed; with it "
        "off it updates in every round of 10 env steps, twice as many (the red line climbs "
        "twice as steeply), and so runs a different algorithm.",
    steps=4_000, overrides={"learning_starts": 200, "log_interval": 5})
_ = toggle.run()
toggle
