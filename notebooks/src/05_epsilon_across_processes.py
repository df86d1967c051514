# %% [markdown]
# # 05 · Epsilon across processes
#
# **The claim.** The plan's review (its "Learning Issues Evaluation Report") marks epsilon decay
# as fixed: the learner decays epsilon every `epsilon_decay_freq` steps and publishes it "to the
# shared model", from which the actor reads it.
#
# The decay is there; the publication is not. The plan's learner sets epsilon as a plain
# attribute of the shared model, and the actor is another process. This notebook shows, with
# real processes, what crosses from one process to another, and measures what an actor that
# never sees the decay does to learning. Run it top to bottom (Restart & Run All); every number
# printed here is computed by the cells above it. How to read the verdict at the end:
# [20 · How to read a verdict](20_how_to_read_a_verdict.ipynb).

# %%
import torch

from mplearn import checks
from mplearn.issues import shared_epsilon as issue
from mplearn.lab import notebook, plots

torch.set_num_threads(1)  # tiny tensors: one thread is fastest, and spares the other core
print("The claim:", issue.ENTRY.claim)
print("\nThe mechanism:", issue.ENTRY.mechanism)

# %% [markdown]
# ## 1 · The mechanism, with real processes
#
# `share_memory()` moves the *tensor storages* of a module into shared memory. The module
# object itself reaches a spawned child by pickling, once, when the child starts: tensors are
# pickled as handles to the shared storages, everything else (a Python float set as an
# attribute) as a value. After that the two processes have two different module objects over
# the same storages.
#
# The experiment: a spawned child process receives the shared model, on which epsilon is 1.0
# three ways (a float attribute, as in the plan, and two 0-dim tensors in shared memory), and an
# `mp.Value` holding 1.0. It reads them all and waits. The parent then "publishes" 0.01 into
# each: it sets the float attribute, fills one tensor in place, replaces the other with a new
# tensor, sets the value, and writes 0.01 into one weight of the shared model in place, as a
# weight publish does. Then the child reads again:

# %%
# NBVAL_CHECK_OUTPUT
print(issue.what_the_child_sees())

# %% [markdown]
# What reaches the child is what was written *into* shared memory: the weight, the tensor
# filled in place, the `mp.Value`. An assignment to an attribute rebinds a name in the parent's
# object only, whether the new value is a float or a new tensor: the child's `model.epsilon` is
# the 1.0 it unpickled at its start, and stays so. This is why the plan's actor explores at its
# initial epsilon for the whole run, while the learner's schedule decays as intended. The fix
# is a value in shared memory, written in place: an `mp.Value` (the kit's choice) or a shared
# tensor updated with `fill_`. The origin's later versions moved the decay into the actor,
# which removes the question.
#
# In the kit the actor always reads epsilon from an `mp.Value`; with the `shared_epsilon`
# switch off the learner writes the attribute instead, so the actor never sees the decay, in
# any mode. The switch thus reproduces the symptom of the plan's bug, and the experiment above
# is why the plan's code has that symptom.
#
# ## 2 · The effect on learning
#
# The scenario runs in lockstep mode: an actor process and a learner process that meet at a
# barrier twice per round of 10 env steps, real processes and still exactly reproducible for a
# seed. Inline mode (actor and learner taking turns in this process) computes the same numbers
# for a seed without the cost of starting processes, so the short live run below is inline:
# CartPole-v1, two paired seeds. 1,500 env steps are only 500 updates, so the learner's epsilon
# has decayed from 1.0 to 0.90 by the end (the schedule reaches 0.01 after 5,000 updates): too
# early for a difference in return, but the epsilon each side used is already apart.

# %%
# NBVAL_CHECK_OUTPUT
run = notebook.live("shared_epsilon", steps=1_500, seeds=2, mode="inline")
print(run.table())
for variant, recs in run.records.items():
    print(f"{variant}: epsilon at the end, actor {recs[0]['actor'][0]['epsilon'][-1]:.3f}, "
          f"learner {recs[0]['learner'][0]['epsilon'][-1]:.3f}")

# %%
plots.two_diagnostics_figure(
    issue.live_series(run, "actor.epsilon"), issue.live_series(run, "learner.epsilon"),
    ("epsilon", "epsilon"), ("the actor process reads", "the learner decays and publishes"),
    "Epsilon across processes: a short live run (seed 0 and 1)", share=True)

# %%
_ = run.figure()
_

# %% [markdown]
# The full-length results (25,000 env steps, 20 paired seeds, lockstep), computed once by
# `python -m mplearn reproduce shared_epsilon` and stored in `data/`:

# %%
results = notebook.experiments.load("shared_epsilon", root="../data")
print(results.table())
_ = results.figure()
_

# %%
plots.two_diagnostics_figure(
    results.diagnostics["actor.epsilon"], results.diagnostics["learner.epsilon"],
    ("epsilon", "epsilon"), ("the actor process reads", "the learner decays and publishes"),
    "Epsilon across processes: 25,000 env steps", share=True)

# %% [markdown]
# In every broken run the actor acted with epsilon 1.0 from the first env step to the last,
# while the learner's schedule reached 0.01 after 5,000 updates exactly as in the fixed runs
# (the figure above: left the actor, right the learner). An actor that always acts at random
# collects a random policy's data and earns a random policy's return (the table above). The
# learner's own log looks healthy, with its epsilon on schedule; only the epsilon the actor
# used shows the fault.
#
# ## 3 · The diagnostic
#
# In your own code: every value another process must see lives in shared memory. `checks.
# shared_memory(model, before=...)` lists the model's tensors that are not shared and the plain
# number attributes changed since the model was shared (`before`: `checks.plain_attributes`
# taken then; constant hyper-parameters are not flagged):

# %%
# NBVAL_CHECK_OUTPUT
import torch
from torch import nn

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
model.share_memory()
before = checks.plain_attributes(model)
model.epsilon = 0.5  # the learner's "publication"
print(checks.shared_memory(model, before=before))
del model.epsilon
print(checks.shared_memory(model, before=before))

# %% [markdown]
# The kit also stores, with every transition, the epsilon the actor used to collect it, so the
# replay itself shows what the actor did. In a running `System`, the monitor compares the
# epsilon the actor reads with the learner's and names the issue:

# %%
monitor = notebook.monitored_run(notebook.demo_config(broken=("shared_epsilon",)))
print(monitor.report())

# %%
# NBVAL_CHECK_OUTPUT
print("issues the monitor named:", monitor.issues)

# %% [markdown]
# ## 4 · The verdict
#
# Computed from the stored runs in `data/` (how to read it:
# [20 · How to read a verdict](20_how_to_read_a_verdict.ipynb)). The review marked epsilon
# decay as fixed. The decay is there; its publication is not: a plain attribute set on the
# shared model never reaches the actor process (section 1, with real processes). The fix is a
# value in shared memory, written in place (an `mp.Value`, or a shared tensor updated with
# `fill_`), or the decay moved into the actor.

# %%
print(notebook.verdict("shared_epsilon", root="../data"))

# %% [markdown]
# ## 5 · Try it
# Fix on and fix off side by side, one seed each, inline (under 15 s on 2 cores), with a schedule that
# reaches its end after 1,000 updates so that the decay shows within the run: on the left the
# epsilon the actor reads, on the right the learning curves.

# %%
toggle = notebook.FixToggle(
    "shared_epsilon", diagnostic="actor.epsilon", ylabel="epsilon the actor reads",
    see="with the fix off the actor reads 1.0 for the whole run (the learner's decay never "
        "reaches it) and its return stays at the random policy's; with the fix on epsilon "
        "falls to 0.01 and the return starts to rise.",
    steps=2_500, overrides={"learning_starts": 200, "epsilon_decay_updates": 1_000,
                            "log_interval": 20})
_ = toggle.run()
toggle
