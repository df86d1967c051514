# %% [markdown]
# # 13 · The replay race: a row counted before it is written
#
# **The claim.** The plan's review does not mention this issue. It comes from systems like the
# plan's, where an actor process appends to a shared replay while a learner process samples
# from it. The catalogue entry, in our words:

# %%
from mplearn.issues import write_before_publish as issue
from mplearn.lab import experiments, notebook, plots

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
# The actor appends a row and bumps the shared row counter; the learner samples among the rows
# the counter admits. If the counter goes up *before* the row is written, the learner can
# sample a row that is still being written: zeros before the buffer first wraps around, an old
# transition after.
#
# The experiment: one writer process appends 20,000 rows to two buffers in turn, one that
# writes first and one that counts first; this process keeps reading the newest row each
# counter admits and checks whether it is written yet (timing decides the counts, which vary
# from run to run).

# %%
print(issue.replay_race())

# %% [markdown]
# The issue's check stamps every row and samples while a writer process appends:

# %%
print(issue.check())

# %% [markdown]
# ## 2 · The effect on learning
#
# Only the newest row or two can be unwritten, and a batch of 64 rows drawn from thousands
# rarely contains it: once the buffer holds `learning_starts` rows, at most 64 in that many
# batches can contain the newest row at all, and it is unwritten only while the actor is in
# the middle of writing it. The scenario runs in async mode (the only mode where the actor
# writes while the learner samples). Async runs are not reproducible step for step, so this
# short live run (CartPole-v1, one seed) changes from one execution to the next; the learner
# counts the sampled rows that were not yet written:

# %%
run = notebook.live("write_before_publish", steps=2_000, seeds=1)
print(run.table())
for variant, recs in run.records.items():
    learner = recs[0]["learner"][0]
    print(f"{variant}: rows sampled unwritten {learner['unwritten_sampled'][-1]:.0f} "
          f"in {learner['update'][-1]:.0f} updates")

# %% [markdown]
# The full-length results (25,000 env steps, 20 paired seeds, async), computed once by
# `python -m mplearn reproduce write_before_publish` and stored in `data/`:

# %%
results = notebook.experiments.load("write_before_publish", root=DATA)
print(results.table())
results.figure()

# %%
plots.two_diagnostics_figure(
    results.diagnostics["learner.loss"], results.diagnostics["actor.policy_lag"],
    ylabels=("training loss", "policy lag (updates)"),
    titles=("the learner's loss", "how far behind the acting weights are"),
    suptitle="The replay race in the stored runs (25,000 env steps, async)", logy=(True, False))

# %% [markdown]
# ## 3 · The diagnostic
#
# This race leaves no trace at rest: once the writer has finished, every row is written and no
# check on the buffer can tell which order the writes happened in. Only a concurrent stress
# test like the one in section 1 shows it (`python -m mplearn check write_before_publish`), or
# a stamp in every row that the reader checks, as the learner's `unwritten_sampled` count
# above does.
#
# ## 4 · The verdict
#
# Computed from the stored runs in `data/` (how to read it:
# [20 · How to read a verdict](20_how_to_read_a_verdict.ipynb)). Under stress the newest
# counted row is often unwritten (section 1), but the learner rarely looks at it (section 2).
# Writing before counting costs nothing, so keep it: it is needed for correctness, whatever
# the return says.

# %%
print(notebook.verdict("write_before_publish", root=DATA))

# %% [markdown]
# "Never acted" is itself a measurement. Every row the broken arm's learners sampled in the
# stored runs, and the largest rate of unwritten rows those counts leave possible:

# %%
broken_runs = experiments.stored_records("write_before_publish", DATA, broken=True)
print(issue.sampled_rows(broken_runs))

# %% [markdown]
# Why so rare, most likely (read from the loop's structure, not measured): in the plan's async
# loop the actor and the learner mostly take turns. The
# learner samples at the start of its update, right after the previous one ended, while the
# actor it just woke has not yet counted its next row; the window of a counted-but-unwritten
# row is the few microseconds of one row's write. A pilot with a free-running actor (a ratio of
# 0.05 updates per env step, 3 seeds on the 2-core machine) sampled no unwritten row either.

# %% [markdown]
# ## 5 · Try it
# The race of section 1 again, fix on and fix off side by side (a few seconds: one writer
# process). The slider sets how many rows the writer appends to each buffer.

# %%
def race(rows: int):
    r = issue.replay_race(rows=rows)
    return notebook.fix_bars({v: r.fraction(v) for v in ("fixed", "broken")},
                             "reads that found the newest row unwritten",
                             f"The replay race: {rows:,} rows appended by another process")


tryit = notebook.TryIt(
    race, value=20_000, min=5_000, max=50_000, step=5_000, description="rows appended",
    see="with the fix off (count first, write after) a share of the reads finds the newest "
        "counted row still unwritten (the red bar); writing first (fix on) leaves none. The "
        "share changes from run to run (timing), zero does not.")
_ = tryit.run()
tryit
