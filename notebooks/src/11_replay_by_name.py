# %% [markdown]
# # 11 · Shared-memory pitfalls
#
# The plan's review does not mention the five issues in this notebook. They come from the
# plan's origin and from systems like it, and they all sit where processes share something:
# memory (the replay buffer, the weights), randomness, or the meaning of a stored flag.
#
# | switch | what goes wrong |
# | --- | --- |
# | `replay_by_name` | the replay buffer reaches a spawned process *by value* |
# | `versioned_publish` | the actor copies weights while the learner is writing them (a torn read) |
# | `write_before_publish` | the replay counts a row before writing it (a race) |
# | `worker_seeding` | every worker seeded alike: identical "random" exploration |
# | `truncation_bootstrap` | a time limit stored as a terminal state |
#
# Each section has the same four steps: the mechanism in a tiny experiment with the fix on and
# off, the effect on learning from the full-length runs stored in `data/`, the diagnostic that
# catches it, and the verdict. Run it top to bottom; every number quoted in the prose is
# printed by a cell above it.

# %%
%matplotlib inline
import json
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from mplearn.diagnose import checks
from mplearn.lab import notebook, plots
from mplearn.issues import shared_memory as pitfalls
from mplearn.mechanisms import run_check

DATA = "../data"


def diagnostics(results, panels: dict[str, str], title: str) -> Figure:
    """Diagnostics of an issue's stored runs over env steps, fixed against broken: one panel
    per record field (``panels`` maps it to its axis label)."""
    fig = Figure(figsize=(5 * len(panels), 3.2), layout="constrained")
    for ax, (key, ylabel) in zip(fig.subplots(1, len(panels), squeeze=False)[0],
                                 panels.items(), strict=True):
        plots.diagnostic_over_time(ax, results.diagnostics[key], ylabel)
    fig.suptitle(title)
    return fig


# %% [markdown]
# ## 1 · The replay buffer pickled by value (`replay_by_name`)
#
# **The mechanism.** A replay buffer built on `multiprocessing.shared_memory` holds numpy arrays
# that are *views* of a shared segment. Under the spawn start method (the default on macOS and
# Windows, and the only one mplearn uses) every `Process` argument is pickled. Pickle knows
# nothing about shared memory: it copies the arrays' bytes. The child then writes into its own
# private copy. The size counter, an `mp.Value`, *is* shared, so the reader believes the rows
# exist and samples memory nobody wrote: zeros. The fix pickles the segment's name and
# re-attaches to it in `__setstate__`.
#
# The experiment: one spawned child writes rows 0..49 (the observation of row *i* is *i*) into
# two buffers, one of each kind; then this process samples 32 rows from each.

# %%
# NBVAL_CHECK_OUTPUT
replay = pitfalls.replay_pickled()
print(replay)

# %% [markdown]
# Both counters say 50 rows; only the buffer re-attached by name holds them. The other one
# answers with zeros, and nothing raises.
#
# **The diagnostic.** A sampled batch in which every observation is exactly zero is a strong
# sign (a real environment rarely emits all-zero states). `checks.replay_batch` looks at a batch
# from any replay, yours included:

# %%
# NBVAL_CHECK_OUTPUT
for variant, batch in replay.batches.items():
    print(f"{variant}: {checks.replay_batch(batch)[0]}")

# %% [markdown]
# **The effect on learning.** The full-length runs (lockstep: real processes; the learner and
# actor live in different processes, so the learner samples its own by-value copy):

# %%
replay_results = notebook.experiments.load("replay_by_name", root=DATA)
print(replay_results.table())
_ = replay_results.figure()
_

# %% [markdown]
# The learner records the mean |observation| of the batches it trains on (the `Monitor`
# watches this record and names `replay_by_name` when it is exactly zero) and its loss:

# %%
_ = diagnostics(replay_results, {"learner.batch_abs_obs": "mean |obs| in the batch",
                                 "learner.loss": "training loss"},
                "What the learner trains on, and how well it fits it")
_

# %%
print(notebook.verdict("replay_by_name", root=DATA))

# %% [markdown]
# **The verdict: real**, and total. The learner trained on all-zero batches for the whole run
# (the diagnostic is exactly 0 throughout), so the policy the actor pulled never improved:
# final IQM 18.7 against 384.6 with the fix, fixed - broken 364.8 [342.8, 392.4], and every
# fixed run beat every broken one (P(fixed > broken) = 1.00). Nothing crashed, and the loss
# was zero from start to end: a perfect fit to batches of zeros. The same buffer works under the fork start method, where the child inherits
# the memory mapping and nothing is pickled, which is how this bug can pass every test on
# Linux and appear on macOS or Windows.

# %% [markdown]
# ## 2 · Torn reads (`versioned_publish`)
#
# **The mechanism.** Publishing weights is a copy, tensor by tensor (`load_state_dict` and
# `copy_` are no different), and nothing stops a reader in another process from copying at the
# same time. A reader that starts before the writer has finished gets some tensors of the new
# version and some of the old: a network that no learner ever produced. The fix is a
# *seqlock*: the writer makes a shared counter odd before writing and even after; the reader
# keeps a copy only if it saw the same even value before and after, and retries otherwise.
#
# The experiment: a learner process publishes versions 1, 2, 3, ... (every tensor of version
# *k* filled with the number *k*, so a copy that mixes versions is easy to spot). It is slowed
# down on purpose, with a short pause after each tensor, so that one publish lasts a few
# milliseconds (as a copy from a GPU can) and the race shows on any machine: the fraction
# below describes this set-up, not the running system (the stored runs further down say how
# often it happens there). This process copies 200 times with a plain reader, then 200 times
# with the seqlock reader, a millisecond apart. Timing decides the exact count, which changes
# from run to run; "zero with the fix" does not.

# %%
print(pitfalls.torn_reads())

# %% [markdown]
# (`python -m mplearn check versioned_publish` runs the same race, each reader against its own
# writer process.) How bad is a torn copy? In the running system the versions it mixes are
# close: on the default path (CPU, training in place) every optimizer step is a publish, so a
# torn copy mixes two versions one update apart; on the copy path (`publish_interval` = 10),
# ten. A learner trained for 300 updates, then one or ten more; the torn copy takes half its
# tensors from each version:

# %%
# NBVAL_CHECK_OUTPUT
for apart in (1, 10):
    print(pitfalls.torn_gap(updates_apart=apart))

# %% [markdown]
# A torn copy lies *between* two neighbouring versions, and it acts almost exactly like the
# older one. The full-length runs (async mode, the only mode with concurrent reads):

# %%
torn_results = notebook.experiments.load("versioned_publish", root=DATA)
print(torn_results.table())
_ = torn_results.figure()
_

# %% [markdown]
# The fixed actor counts the copies it threw away because a publish overlapped them: each is a
# torn copy the broken actor would have kept.

# %%
_ = diagnostics(torn_results, {"actor.sync_retries": "copies retried (cumulative)"},
                "Copies the fixed actor retried (the broken actor never checks)")
_

# %%
for row in torn_results.manifest["runs"]:
    if row["variant"] == "fixed":
        actor = json.loads((Path(DATA) / "versioned_publish" / row["file"]).read_text())["actor"]
        print(f"fixed, seed {row['seed']}: {actor[0]['sync_retries'][-1]:.0f} copies retried "
              f"of {actor[0]['syncs'][-1]:.0f}")

# %%
print(notebook.verdict("versioned_publish", root=DATA))

# %% [markdown]
# **The verdict: a real mechanism with no effect measured on learning.** Torn copies do
# happen (section 2's experiment), but in the running system they are rare and mild. In the
# stored runs the fixed actor had to throw away at most a couple of copies per run (printed
# above), so the broken actor, which never checks, would have kept about as many torn ones; and a
# torn copy mixes two versions one update apart, which pick the same action in 99% of states
# or more. The returns agree:
# the paired difference fixed - broken is -15.3 [-35.4, -0.3], P(fixed > broken) 0.40. That
# interval lies just below zero, which the verdict line reports as the broken variant
# learning faster; but async runs are not reproducible step for step, five of them are few,
# and nothing in the mechanism would make torn copies *help*, so we read it as noise, not as
# a benefit. Keep the seqlock anyway: it makes every copy correct by
# construction, and a larger network, a slower publish (from a GPU) or publishes further
# apart would make torn copies more frequent and more different.

# %% [markdown]
# ## 3 · The replay race (`write_before_publish`)
#
# **The mechanism.** The actor appends a row and bumps the shared row counter; the learner
# samples among the rows the counter admits. If the counter goes up *before* the row is
# written, the learner can sample a row that is still being written: zeros before the buffer
# first wraps around, an old transition after.
#
# The experiment: one writer process appends 20,000 rows to two buffers in turn, one that
# writes first and one that counts first; this process keeps reading the newest row each
# counter admits and checks whether it is written yet (timing again: the numbers vary).

# %%
print(pitfalls.replay_race())

# %% [markdown]
# Only the newest row or two can be unwritten, and a batch of 64 rows drawn from tens of
# thousands rarely contains it; the full-length runs (async):

# %%
race_results = notebook.experiments.load("write_before_publish", root=DATA)
print(race_results.table())
_ = race_results.figure()
_

# %%
print(notebook.verdict("write_before_publish", root=DATA))

# %% [markdown]
# **The verdict: a real race with no effect measured on learning.** Under stress the newest
# counted row is often unwritten (the experiment above), but the learner rarely looks at it: a
# batch draws 64 rows uniformly from every row written, so once the buffer holds 1,000 rows
# (`learning_starts`) at most 64 / 1,000 = 6.4% of batches contain the newest row at all, and
# it is unwritten only while the actor is in the middle of writing it. The returns agree:
# fixed - broken 19.9 [-16.9, 66.8], P(fixed > broken) 0.64. Writing before counting costs
# nothing, so keep it: it is needed for correctness, even though it made no measurable
# difference to learning here.
#
# **The diagnostic.** This race leaves no trace at rest: once the writer has finished, every
# row is written and no check on the buffer can tell which order the writes happened in. Only a
# concurrent stress test like the one above shows it (`python -m mplearn check
# write_before_publish`).

# %% [markdown]
# ## 4 · Identical randomness across workers (`worker_seeding`)
#
# **The mechanism.** Two random streams seeded alike draw the same numbers, and that is all it
# takes:

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
print(run_check("worker_seeding"))

# %% [markdown]
# Two agents that act independently agree on about half of their actions (CartPole has two);
# seeded alike, on all of them. The full-length runs (lockstep, two agents; the return is the
# mean over both):

# %%
seeding_results = notebook.experiments.load("worker_seeding", root=DATA)
print(seeding_results.table())
for variant, runs in seeding_results.extras["equal_actions"].items():
    explore = [run[0]["explore"] for run in runs if run]
    print(f"{variant}: fraction of equal actions while exploring (epsilon >= 0.5), per seed:",
          [round(x, 2) for x in explore])
_ = seeding_results.figure()
_

# %%
print(notebook.verdict("worker_seeding", root=DATA))

# %% [markdown]
# **The verdict: a real mechanism with no effect measured here.** Seeded alike, the two
# agents made the same choice in 93% to 96% of their exploring steps (per seed, above),
# against about 50% for independent streams, yet they did not learn worse: fixed - broken
# -23.2 [-60.5, 12.4], P(fixed > broken) 0.28. Each agent here learns from its own replay, in
# its own copy of the environment (seeded differently), so two agents that explore alike still
# see different states. Where identical streams would cost something (not measured in this
# kit): several actors filling one shared replay, which would then hold copies of one
# trajectory.

# %% [markdown]
# ## 5 · Terminated vs truncated (`truncation_bootstrap`)
#
# **The mechanism.** Gymnasium reports two different endings: `terminated` (the task is over,
# e.g. the pole fell: the value of what follows is 0) and `truncated` (a time limit: CartPole-v1
# stops at 500 steps although the pole is still up). A truncated state is not absorbing, so its
# target must still bootstrap, `r + gamma * Z(s')`. Code that stores
# `done = terminated or truncated` cuts the bootstrap at every time limit. The experiment: an
# environment that never terminates and is truncated every 5 steps, run through the real actor:

# %%
# NBVAL_CHECK_OUTPUT
print(run_check("truncation_bootstrap"))

# %% [markdown]
# It can only matter once episodes reach the time limit, which in CartPole means once the agent
# is good. The stored runs, then the learner's mean Q and loss, where a cut bootstrap would
# show as lower values:

# %%
truncation_results = notebook.experiments.load("truncation_bootstrap", root=DATA)
print(truncation_results.table())
_ = truncation_results.figure()
_

# %%
_ = diagnostics(truncation_results, {"learner.mean_q": "mean Q of the batch",
                                     "learner.loss": "training loss"},
                "The learner's value estimates and loss")
_

# %% [markdown]
# How much did the switch change? Fixed and broken runs of a seed are exact twins (inline
# mode) until the first episode reaches the time limit. Per seed: the time-limit episodes, and
# how long the twins stayed identical:

# %%
# NBVAL_CHECK_OUTPUT
episodes = {(r["variant"], r["seed"]): list(zip(*json.loads(
    (Path(DATA) / "truncation_bootstrap" / r["file"]).read_text())["episodes"][0]))
    for r in truncation_results.manifest["runs"]}  # (env step at the end, return) per episode
for seed in sorted({seed for _, seed in episodes}):
    fixed, broken = episodes[("fixed", seed)], episodes[("broken", seed)]
    limit = [step for step, ret in fixed if ret >= 500]
    same = next(i for i, pair in enumerate(zip(fixed, broken, strict=False)) if len(set(pair)) > 1)
    print(f"seed {seed}: {len(limit)} of {len(fixed)} episodes reached 500 steps, the first "
          f"ending at env step {limit[0]}; identical episodes up to env step {fixed[same - 1][0]}")

# %%
print(notebook.verdict("truncation_bootstrap", root=DATA))

# %% [markdown]
# **The verdict: no harm measured at this length.** The value estimates and losses of fixed and
# broken overlap (above). The switch changes only the stored rows at
# a time limit, and in 25,000 env steps of CartPole only 3 to 8 episodes per run get there,
# the first after 6,458 to 20,992 env steps. Each stores its last 3 rows (the 3-step returns)
# as terminal: at most 24 rows of 25,000. Until then the twins are identical; after it they drift apart as any two
# different runs do, and the broken ones happened to end a little higher (fixed - broken
# -9.5 [-17.0, -1.8], which the verdict line reports as the broken variant learning faster).
# Two dozen changed rows are an unlikely cause of a systematic advantage, and five seeds
# cannot tell this drift from one. The bias is real, but it scales with the share of rows at a time limit: it would matter
# in a task where most episodes end by truncation, or with short time limits (not measured
# here). Storing `terminated` rather than `terminated or truncated` costs nothing.

# %% [markdown]
# ## 6 · The monitor, on one run with three switches off
#
# The `Monitor` watches a running `System` and names what it sees. Here one short run has
# `worker_seeding`, `truncation_bootstrap` and `versioned_publish` broken at once (two agents,
# MountainCar-v0, whose time limit of 200 steps comes quickly). It runs inline, in this
# process: starting processes costs seconds, and these three invariants read the same records
# and shared memory in every mode. (`replay_by_name` needs real processes to act; its
# monitor invariant is the all-zero batch plotted in section 1.)

# %%
monitor = notebook.monitored_run(notebook.demo_config(
    broken=("worker_seeding", "truncation_bootstrap", "versioned_publish"), mode="inline"))
print(monitor.report())

# %%
# NBVAL_CHECK_OUTPUT
print("issues the monitor named:", monitor.issues)

# %% [markdown]
# ## 7 · Try it
# Toggle the `worker_seeding` fix and rerun a short experiment (one seed, lockstep: two agents
# in real processes, so it takes a few seconds to start). With the fix off, the two agents'
# curves come from identical exploration.

# %%
toggle = notebook.FixToggle("worker_seeding", steps=1_000)
toggle
