# %% [markdown]
# # 11 · The replay buffer pickled by value
#
# **The claim.** The plan's review does not mention this issue. It comes from systems like the
# plan's, where the replay buffer lives in shared memory and another process writes into it.
# The catalogue entry, in our words:

# %%
from mplearn import checks
from mplearn.issues import replay_by_name as issue
from mplearn.lab import notebook, plots

DATA = "../data"
print("The claim:", issue.ENTRY.claim or "none: the review does not mention this issue")
print("\nThe mechanism:", issue.ENTRY.mechanism)

# %% [markdown]
# Run the notebook top to bottom (Restart & Run All); every number printed here is computed by
# the cells above it. How to read the verdict at the end:
# [20 · How to read a verdict](20_how_to_read_a_verdict.ipynb).
#
# ## 1 · The mechanism, with real processes
#
# A replay buffer built on `multiprocessing.shared_memory` holds numpy arrays that are *views*
# of a shared segment. Under the spawn start method (the default on macOS and Windows, and the
# only one mplearn uses) every `Process` argument is pickled. Pickle knows nothing about shared
# memory: it copies the arrays' bytes. The child then writes into its own private copy. The
# size counter, an `mp.Value`, *is* shared, so the reader believes the rows exist and samples
# memory nobody wrote: zeros. The fix pickles the segment's name and re-attaches to it in
# `__setstate__`.
#
# The experiment: one spawned child writes rows 0..49 (the observation of row *i* is *i*) into
# two buffers, one of each kind; then this process samples 32 rows from each.

# %%
# NBVAL_CHECK_OUTPUT
replay = issue.replay_pickled()
print(replay)

# %% [markdown]
# Both counters say 50 rows; only the buffer re-attached by name holds them. The other one
# answers with zeros, and nothing raises. The issue's check runs the same experiment:

# %%
# NBVAL_CHECK_OUTPUT
print(issue.check())

# %% [markdown]
# The same buffer works under the fork start method, where the child inherits the memory
# mapping and nothing is pickled, which is how this bug can pass every test on Linux and
# appear on macOS or Windows.
#
# ## 2 · The effect on learning
#
# The bug needs real processes (the actor writes in its process, the learner samples in
# another), so the scenario runs in lockstep mode, and so does the short live run: CartPole-v1,
# one seed, fixed and broken (a few seconds go to starting processes).

# %%
run = notebook.live("replay_by_name", steps=2_000, seeds=1)
print(run.table())

# %%
run.figure()

# %% [markdown]
# The full-length results (25,000 env steps, 20 paired seeds, lockstep), computed once by
# `python -m mplearn reproduce replay_by_name` and stored in `data/`:

# %%
results = notebook.experiments.load("replay_by_name", root=DATA)
print(results.table())
results.figure()

# %% [markdown]
# The learner records the mean |observation| of the batches it trains on and its loss: a
# learner that trains on zeros fits them perfectly.

# %%
plots.two_diagnostics_figure(
    results.diagnostics["learner.batch_abs_obs"], results.diagnostics["learner.loss"],
    ylabels=("mean |obs| in the batch", "training loss"),
    titles=("what the learner trains on", "how well it fits it"),
    suptitle="The replay pickled by value: the learner's batches (25,000 env steps)")

# %% [markdown]
# ## 3 · The diagnostic
#
# A sampled batch in which every observation is exactly zero is a strong sign (a real
# environment rarely emits all-zero states). `checks.replay_batch` looks at a batch from any
# replay, yours included:

# %%
# NBVAL_CHECK_OUTPUT
for variant, batch in replay.batches.items():
    print(f"{variant}: {checks.replay_batch(batch)[0]}")

# %% [markdown]
# In a running `System` (lockstep: real processes), the monitor watches the learner's
# `batch_abs_obs` record and names the issue when it is exactly zero:

# %%
monitor = notebook.monitored_run(notebook.demo_config(broken=("replay_by_name",)))
print(monitor.report())

# %%
# NBVAL_CHECK_OUTPUT
print("issues the monitor named:", monitor.issues)

# %% [markdown]
# ## 4 · The verdict
#
# Computed from the stored runs in `data/` (how to read it:
# [20 · How to read a verdict](20_how_to_read_a_verdict.ipynb)). Nothing crashes in a broken
# run: the learner trains on zeros and its loss looks perfect, so only the batch diagnostic
# above or the return gives it away.

# %%
print(notebook.verdict("replay_by_name", root=DATA))

# %% [markdown]
# ## 5 · Try it
# Fix on and fix off side by side, one seed each, lockstep (real processes: the buffer must
# cross a process boundary for the bug to act; under 15 s on 2 cores): on the left the mean |observation|
# of the learner's batches, on the right the learning curves.

# %%
toggle = notebook.FixToggle(
    "replay_by_name", diagnostic="learner.batch_abs_obs", ylabel="mean |obs| in the batch",
    see="with the fix off every batch the learner samples is zeros (the red line sits at 0) "
        "and the return stays at the random policy's; with it on the batches hold the real "
        "observations and the return starts to rise.",
    steps=2_500, mode=None, overrides={"learning_starts": 200, "log_interval": 20})
_ = toggle.run()
toggle
