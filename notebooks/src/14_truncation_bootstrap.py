# %% [markdown]
# # 14 · Terminated vs truncated
#
# **The claim.** The plan's review does not mention this issue. It comes from how Gymnasium
# reports the end of an episode, and from code that merges the two ways an episode can end.
# The catalogue entry, in our words:

# %%
from pathlib import Path

from mplearn.issues import truncation_bootstrap as issue
from mplearn.lab import notebook, plots, runstore

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
# Gymnasium reports two different endings: `terminated` (the task is over, e.g. the pole fell:
# the value of what follows is 0) and `truncated` (a time limit: CartPole-v1 stops at 500
# steps although the pole is still up). A truncated state is not absorbing, so its target must
# still bootstrap, `r + gamma * Z(s')`. Code that stores `done = terminated or truncated` cuts
# the bootstrap at every time limit. The experiment: an environment that never terminates and
# is truncated every 5 steps, run through the real actor:

# %%
# NBVAL_CHECK_OUTPUT
print(issue.check())

# %% [markdown]
# ## 2 · The effect on learning
#
# It can only matter once episodes reach the time limit, which in CartPole means once the agent
# is good. A short live run (CartPole-v1, inline, two paired seeds): no episode gets near 500
# steps in 2,000 env steps, so fixed and broken are the same runs, to the last digit:

# %%
# NBVAL_CHECK_OUTPUT
run = notebook.live("truncation_bootstrap", steps=2_000, seeds=2, mode="inline")
print(run.table())

# %% [markdown]
# The full-length results (25,000 env steps, 20 paired seeds, inline), computed once by
# `python -m mplearn reproduce truncation_bootstrap` and stored in `data/`, then the learner's
# mean Q and loss, where a cut bootstrap would show as lower values:

# %%
results = notebook.experiments.load("truncation_bootstrap", root=DATA)
print(results.table())
results.figure()

# %%
plots.two_diagnostics_figure(
    results.diagnostics["learner.mean_q"], results.diagnostics["learner.loss"],
    ylabels=("mean Q of the batch", "training loss"),
    titles=("the learner's value estimates", "its loss"),
    suptitle="Terminated vs truncated: the learners (25,000 env steps)", logy=(False, True))

# %% [markdown]
# How much did the switch change? Fixed and broken runs of a seed are exact twins (inline
# mode, one machine) until the first episode reaches the time limit. Per stored pair of the
# 100-step condition: the time-limit episodes, and how long the twins stayed identical:

# %%
runs = {(r["variant"], r["seed"]): r for r in results.manifest["runs"]
        if r["status"] != "missing" and r["variant"].endswith("limit 100")}
for seed in sorted({seed for _, seed in runs}):
    if {("fixed, limit 100", seed), ("broken, limit 100", seed)} - set(runs):
        continue
    fixed, broken = (list(zip(*runstore.read(Path(DATA) / "truncation_bootstrap" / runs[(
        f"{v}, limit 100", seed)]["file"])["episodes"][0])) for v in ("fixed", "broken"))
    limit = [step for step, ret in fixed if ret >= 100]
    same = next((i for i, pair in enumerate(zip(fixed, broken, strict=False))
                 if len(set(pair)) > 1), min(len(fixed), len(broken)))
    print(f"seed {seed}: {len(limit)} of {len(fixed)} episodes reached 100 steps"
          + (f", the first ending at env step {limit[0]}" if limit else "")
          + f"; identical episodes up to env step {fixed[max(same, 1) - 1][0]}")

# %% [markdown]
# The switch changes only the rows stored at a time limit: each episode that reaches it
# stores its last `n_step` rows as terminal. With CartPole's 500-step limit that happens late
# and rarely in a 25k-step run; with a 100-step limit most late episodes end there, so the
# manipulation check counts hundreds of such rows per broken run. The final return, though,
# sits at the 100-step ceiling in both arms, so this metric cannot show a difference there:
# read the verdict below with that in mind (a value-based metric is the next thing to measure).
#
# ## 3 · The diagnostic
#
# The actor counts the rows it stored as terminal at a time limit (`truncated_as_terminal` in
# its records), and the monitor names the issue when rows in the replay are both truncated and
# terminal. A short run on MountainCar-v0, whose time limit of 200 steps comes quickly (inline:
# the check reads the replay, the same in every mode):

# %%
monitor = notebook.monitored_run(notebook.demo_config(broken=("truncation_bootstrap",),
                                                      mode="inline"))
print(monitor.report())

# %%
# NBVAL_CHECK_OUTPUT
print("issues the monitor named:", monitor.issues)

# %% [markdown]
# ## 4 · The verdict
#
# Computed from the stored runs in `data/` (how to read it:
# [20 · How to read a verdict](20_how_to_read_a_verdict.ipynb)). In CartPole the switch acts on
# a handful of rows per run (section 2), so read the verdict as "at this length, in this
# task". Storing `terminated` rather than `terminated or truncated` costs nothing.

# %%
print(notebook.verdict("truncation_bootstrap", root=DATA))

# %% [markdown]
# ## 5 · Try it
# Fix on and fix off side by side, one seed each, on MountainCar-v0 (every episode ends at its
# 200-step time limit until the agent reaches the flag), inline (under 15 s on 2 cores): on the left the
# rows the actor stored as terminal at a time limit, on the right the learning curves.

# %%
toggle = notebook.FixToggle(
    "truncation_bootstrap", diagnostic="actor.truncated_as_terminal",
    ylabel="rows stored as terminal at a time limit",
    see="with the fix off every time-limit ending is stored as terminal (the red count climbs "
        "at every 200-step time limit); with it on none is. Both agents stay at -200 in "
        "a run this short: the damage is to the values, not yet to the return.",
    steps=2_500, overrides={"env_id": "MountainCar-v0", "learning_starts": 200,
                            "log_interval": 20})
_ = toggle.run()
toggle
