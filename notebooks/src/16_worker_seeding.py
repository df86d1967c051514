# %% [markdown]
# # 16 · Identical randomness across workers
#
# **The claim.** The plan's review does not mention this issue. It comes from systems like the
# plan's that start several workers and seed each of them. The catalogue entry, in our words:

# %%
import numpy as np

from mplearn.issues import worker_seeding as issue
from mplearn.lab import notebook, plots

DATA = "../data"
print("The claim:", issue.ENTRY.claim or "none: the review does not mention this issue")
print("\nThe mechanism:", issue.ENTRY.mechanism)

# %% [markdown]
# Run the notebook top to bottom (Restart & Run All); every number printed here is computed by
# the cells above it. How to read the verdict at the end:
# [20 · How to read a verdict](20_how_to_read_a_verdict.ipynb).
#
# ## 1 · The mechanism, in tiny exact experiments
#
# Two random streams seeded alike draw the same numbers, and that is all it takes:

# %%
# NBVAL_CHECK_OUTPUT
for label, seeds in (("both seeded 0", [0, 0]),
                     ("seeds from SeedSequence(0).spawn(2)", np.random.SeedSequence(0).spawn(2))):
    print(f"two workers, {label}:")
    for seed in seeds:
        print("   ", np.random.default_rng(seed).random(3).round(3).tolist())

# %% [markdown]
# Under fork a child inherits its parent's generator state, so children draw the same numbers
# unless each is reseeded; under spawn, code that seeds every worker with "the run's seed" does
# the same thing on purpose. In the system: two agents acting at random (epsilon near 1), the
# fraction of their actions that agree, row by row:

# %%
# NBVAL_CHECK_OUTPUT
print(issue.check())

# %% [markdown]
# Two agents that act independently agree on about half of their actions (CartPole has two);
# seeded alike, on all of them.
#
# ## 2 · The effect on learning
#
# A short live run: two agents on CartPole-v1, each with its own replay and its own copy of
# the environment (seeded differently), one seed, inline; the return is the mean over both
# agents:

# %%
run = notebook.live("worker_seeding", steps=2_000, seeds=1, mode="inline")
print(run.table())

# %% [markdown]
# The full-length results (25,000 env steps, 40 paired seeds, lockstep: real processes, two
# agents; 20 at first, whose interval was inconclusive with about 39 pairs needed, inside the
# cap of 40 the scenario declared before any run, so 20 more were added), computed once by
# `python -m mplearn reproduce worker_seeding` and stored in `data/`, with the fraction of
# equal actions while the agents explored:

# %%
results = notebook.experiments.load("worker_seeding", root=DATA)
print(results.table())
for variant, runs in results.extras["equal_actions"].items():
    explore = [run[0]["explore"] for run in runs if run]
    print(f"{variant}: fraction of equal actions while exploring (epsilon >= 0.5), per seed:",
          [round(x, 2) for x in explore])
results.figure()

# %% [markdown]
# Seeded alike, the two agents make the same choice in most of their exploring steps, against
# about half for independent streams. Each agent here learns from its own replay, in its own
# copy of the environment (seeded differently), so two agents that explore alike still see
# different states; compare the returns in the table. Where identical streams would cost
# something (not measured in this kit): several actors filling one shared replay, which would
# then hold copies of one trajectory.
#
# ## 3 · The diagnostic
#
# The monitor compares the agents' actions row by row in their replays and names the issue
# when they agree far more often than chance (a short run, two agents, inline: the check reads
# the replays, the same in every mode):

# %%
monitor = notebook.monitored_run(notebook.demo_config(broken=("worker_seeding",),
                                                      mode="inline"))
print(monitor.report())

# %%
# NBVAL_CHECK_OUTPUT
print("issues the monitor named:", monitor.issues)

# %% [markdown]
# ## 4 · The verdict
#
# Computed from the stored runs in `data/` (how to read it:
# [20 · How to read a verdict](20_how_to_read_a_verdict.ipynb)). The mechanism is exact
# (section 1); what it does to learning depends on whether the agents share anything else,
# which here they do not.

# %%
print(notebook.verdict("worker_seeding", root=DATA))

# %% [markdown]
# ## 5 · Try it
# Two agents acting at random, fix on and fix off side by side, inline (a few seconds): the
# running fraction of env steps on which their actions were equal. The slider sets the env
# steps.

# %%
def equal(steps: int):
    from matplotlib.figure import Figure

    series = {}
    for variant, fixed in (("fixed", True), ("broken", False)):
        same = issue.equal_actions(fixed, steps)
        series[variant] = [(np.arange(1, len(same) + 1),
                            np.cumsum(same) / np.arange(1, len(same) + 1))]
    fig = Figure(figsize=(7, 3.2), layout="constrained")
    plots.diagnostic_over_time(fig.subplots(), series, "fraction of equal actions so far",
                               title=f"Two agents acting at random, {steps:,} env steps")
    return fig


tryit = notebook.TryIt(
    equal, value=2_000, min=500, max=10_000, step=500, description="env steps",
    see="with the fix on the two agents agree on about half of their actions (chance, with "
        "two actions); with it off on all of them (the red line at 1.0).")
_ = tryit.run()
tryit
