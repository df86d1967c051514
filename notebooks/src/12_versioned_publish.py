# %% [markdown]
# # 12 · Torn reads of the shared weights
#
# **The claim.** The plan's review does not mention this issue. It comes from systems like the
# plan's, where an actor copies weights from shared memory while a learner process writes them.
# The catalogue entry, in our words:

# %%
from pathlib import Path

from mplearn.issues import versioned_publish as issue
from mplearn.lab import notebook, plots, runstore

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
# Publishing weights is a copy, tensor by tensor (`load_state_dict` and `copy_` are no
# different), and nothing stops a reader in another process from copying at the same time. A
# reader that starts before the writer has finished gets some tensors of the new version and
# some of the old: a network that no learner ever produced. The fix is a *seqlock*: the writer
# makes a shared counter odd before writing and even after; the reader keeps a copy only if it
# saw the same even value before and after, and retries otherwise.
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
print(issue.torn_reads())

# %% [markdown]
# The issue's check (`issue.check()`, or `python -m mplearn check versioned_publish`) runs the
# same race, each reader against its own writer process; it takes longer than this cell, so
# the notebook leaves it to the command line.
#
# How bad is a torn copy? In the running system the versions it mixes are close: on the
# default path (CPU, training in place) every optimizer step is a publish, so a torn copy mixes
# two versions one update apart; on the copy path (`publish_interval` = 10), ten. A learner
# trained for 300 updates, then one or ten more; the torn copy takes half its tensors from
# each version:

# %%
# NBVAL_CHECK_OUTPUT
for apart in (1, 10):
    print(issue.torn_gap(updates_apart=apart))

# %% [markdown]
# A torn copy lies *between* two neighbouring versions; the lines above say how often it acts
# like either of them.
#
# ## 2 · The effect on learning
#
# Torn reads need concurrent reads, so the scenario runs in async mode, the only mode with
# them. Async runs are not reproducible step for step (the operating system decides who runs
# when), so the short live run below changes from one execution to the next: CartPole-v1,
# one seed, fixed and broken.

# %%
run = notebook.live("versioned_publish", steps=2_000, seeds=1)
print(run.table())
for variant, recs in run.records.items():
    actor = recs[0]["actor"][0]
    print(f"{variant}: {actor['sync_retries'][-1]:.0f} copies retried, "
          f"{actor['torn_kept'][-1]:.0f} torn copies kept, of {actor['syncs'][-1]:.0f}")

# %% [markdown]
# The full-length results (25,000 env steps, 20 paired seeds, async), computed once by
# `python -m mplearn reproduce versioned_publish` and stored in `data/`:

# %%
results = notebook.experiments.load("versioned_publish", root=DATA)
print(results.table())
results.figure()

# %% [markdown]
# The fixed actor counts the copies it threw away because a publish overlapped them: each is a
# torn copy the broken actor would have kept.

# %%
plots.two_diagnostics_figure(
    results.diagnostics["actor.sync_retries"], results.diagnostics["actor.policy_lag"],
    ylabels=("copies retried (cumulative)", "policy lag (updates)"),
    titles=("copies the fixed actor retried (the broken never checks)",
            "how far behind the acting weights are"),
    suptitle="Torn reads in the stored runs (25,000 env steps, async)")

# %%
for row in results.manifest["runs"]:
    if row["variant"] == "fixed" and row["status"] != "missing":
        actor = runstore.read(Path(DATA) / "versioned_publish" / row["file"])["actor"]
        print(f"fixed, seed {row['seed']}: {actor[0]['sync_retries'][-1]:.0f} copies retried "
              f"of {actor[0]['syncs'][-1]:.0f}")

# %% [markdown]
# ## 3 · The diagnostic
#
# A torn copy leaves no trace in the copy itself unless you can tell versions apart. The
# seqlock reader counts its retries (`sync_retries` in the actor's records); with the fix off
# the actor still reads the counter around each copy and counts the copies a write overlapped
# (`torn_kept`, printed in section 2). The monitor names the issue from the copies themselves:
# an actor that made copies and validated none against the publisher's sequence number. That
# needs no race to be caught, so a short inline run shows it:

# %%
monitor = notebook.monitored_run(notebook.demo_config(broken=("versioned_publish",),
                                                      mode="inline"))
print(monitor.report())

# %%
# NBVAL_CHECK_OUTPUT
print("issues the monitor named:", monitor.issues)

# %% [markdown]
# ## 4 · The verdict
#
# Computed from the stored runs in `data/` (how to read it:
# [20 · How to read a verdict](20_how_to_read_a_verdict.ipynb)). Torn copies do happen
# (section 1), but how often in the running system, and how different the versions they mix
# are, is what the counts and the torn-gap lines above say. Async runs are not reproducible
# step for step and five of them are few: nothing in the mechanism would make torn copies
# *help*, so read a difference in favour of the broken variant as noise. Keep the seqlock
# anyway: it makes every copy correct by construction, and a larger network, a slower publish
# (from a GPU) or publishes further apart would make torn copies more frequent and more
# different.

# %%
print(notebook.verdict("versioned_publish", root=DATA))

# %% [markdown]
# ## 5 · Try it
# The race of section 1 again, fix on and fix off side by side (a few seconds: one writer
# process). The slider sets how many copies each reader makes.

# %%
def torn(reads: int):
    r = issue.torn_reads(reads=reads)
    return notebook.fix_bars({v: r.fraction(v) for v in ("fixed", "broken")},
                             "copies that mix two versions",
                             f"Torn reads: {reads} copies per reader during publishes")


tryit = notebook.TryIt(
    torn, value=200, min=50, max=1_000, step=50, description="copies per reader",
    see="with the fix off a share of the copies mixes two versions (the red bar); with the "
        "seqlock on, none does: it retries instead. The exact share changes from run to run "
        "(timing), zero does not.")
_ = tryit.run()
tryit
