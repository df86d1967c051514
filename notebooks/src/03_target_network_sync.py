# %% [markdown]
# # 03 · Target network not synced on publish
#
# **The claim.** The plan's review (its "Learning Issues Evaluation Report") rates this issue
# "medium" and names it among the fixes the plan needs: when the learner on an accelerator
# publishes its train copy into the CPU shared model, it zips `shared_model.parameters()` with
# `train_model.cpu().parameters()`, which, the review says, copies only the local network and
# leaves the shared target network stale. Its fix zips each network separately and moves the
# trainer back to the device after every publish.
#
# Three questions: what does that zip really copy; who reads the shared target, and what does a
# stale one do to them; and what does the review's own fix cost. Run the notebook top to bottom
# (Restart & Run All); every number printed here is computed by the cells above it. How to
# read the verdict at the end: [20 · How to read a verdict](20_how_to_read_a_verdict.ipynb).

# %%
import torch

from mplearn import checks
from mplearn.issues import optimizer_binding
from mplearn.issues import target_sync as issue
from mplearn.lab import notebook, plots

torch.set_num_threads(1)  # tiny tensors: one thread is fastest, and spares the other core
print("The claim:", issue.ENTRY.claim)
print("\nThe mechanism:", issue.ENTRY.mechanism)

# %% [markdown]
# ## 1 · The mechanism, in tiny exact experiments
#
# **What the zip copies.** The plan's model is a wrapper that holds `qnetwork_local` and
# `qnetwork_target`. The review's own line calls `shared_model.parameters()`, and the plan calls
# `share_memory()` on the model: both are methods of `nn.Module`, and for an `nn.Module`,
# `parameters()` yields the parameters of every submodule, so of *both* networks, in the same
# order on the shared model and on the trainer. Below, a trainer whose target differs from its
# local network is published into a shared model (the kit's wrapper, `IQNAgent`) three ways,
# and we count the tensors that still differ afterwards. The networks have `NoisyLinear`
# layers, as the plan's origin did, whose noise samples are buffers.

# %%
# NBVAL_CHECK_OUTPUT
print(issue.zip_publish(noisy=True))

# %% [markdown]
# So the review is wrong about its own line: the zip over the wrapper copies both networks'
# parameters. What no `parameters()` zip copies is the buffers. For noisy layers that is
# harmless (the noise is resampled before every use); for batch-norm running statistics it
# would not be, since an actor in eval mode normalises with them. The stale target of the
# review's story appears when only `qnetwork_local.parameters()` is zipped, which is what the
# kit's `target_sync` switch does when it is off. Its check trains a copy for two target updates
# and publishes:

# %%
# NBVAL_CHECK_OUTPUT
print(issue.check())

# %% [markdown]
# **What the review's fix costs.** Its publish calls `train_model.cpu()` and, after the copy,
# `train_model = train_model.to(device)`. `Module.cpu()` is not a copy: like `.to()` and
# `.double()` it converts every parameter of the module itself and returns that same module.
# On this machine `.cpu()` has nothing to move, so we watch `.to(torch.float64)` take the same
# path (`Module._apply`):

# %%
# NBVAL_CHECK_OUTPUT
print(issue.apply_is_in_place())

# %% [markdown]
# So every publish moves both networks off the device and back: two full transfers where one
# device-to-host copy of the state into shared memory would do (the kit's publisher copies each
# tensor of `state_dict()` into the shared model and leaves the trainer where it is). The
# Parameter objects survive the trip, so the optimizer stays bound to them, but its moments do
# not travel with them. A publish that forgets the move back leaves parameters and moments
# apart, and the next step fails, as in notebook 02 (variant C):

# %%
# NBVAL_CHECK_OUTPUT
print("next optimizer step after moving the module:", optimizer_binding.move_after_state("float64"))

# %% [markdown]
# ## 2 · The effect on learning
#
# **Who reads the shared target?** Not the actor: it copies `shared_model.qnetwork_local`
# only. The learner that trains on a copy keeps its own target. So in a run that never restarts,
# a stale shared target changes nothing at all. It matters to whatever starts from the shared
# model: an evaluator, a checkpoint, and a learner that restarts (after a crash, or a resumed
# run) and takes both networks from the shared model.
#
# A short live restart: CartPole-v1, the copy path, trained for 1,200 env steps, then a new
# system (actor, learner, replay) starts from the shared models and runs 400 more env steps
# with epsilon 0.01, as a resumed run would. `learning_starts` is 200 in both phases, so the new
# learner trains for the last 200 env steps (200 updates). Two paired seeds, inline mode (exact
# for a seed).
# The table gives, at the restart, how far the shared target is from the shared local network,
# and the mean Q of the sampled actions just before the restart and at its lowest after.

# %%
# NBVAL_CHECK_OUTPUT
r = issue.restart("hard copy /100", seeds=2, steps=1_600, at=1_200)
print(r.table())

# %%
plots.two_diagnostics_figure(
    r.series("mean_q"), r.series("loss"), ylabels=("mean Q of the batch's actions",
                                                   "quantile Huber loss"),
    titles=("mean Q", "training loss"),
    suptitle="Target network not synced: a short live restart (dotted line)", at=r.at,
    logy=(False, True))

# %% [markdown]
# Before the restart, fixed and broken are the same run, bit for bit (equal mean Q): the
# switch changes only what is written to the shared target, which nobody reads. After it, the
# broken learner's target is the network as it was initialised, whose quantiles are near 0, so
# its TD targets are about the reward alone: the loss jumps and the learned values collapse
# (the table: mean Q before the restart and its lowest after) within the first 100 updates;
# then the first hard target update copies the damaged online network into the target. The
# fixed learner goes on from where it stopped.
#
# The full-length results (25,000 env steps, 20 paired seeds; restart at 15,000 env steps with
# epsilon 0.01, then 10,000 env steps; the value compared is the mean return of the episodes in
# the shaded window, the first 5,000 env steps after the restart), computed once by
# `python -m mplearn reproduce target_sync` and stored in `data/`:

# %%
results = notebook.experiments.load("target_sync", root="../data")
print(results.table())
for variant, runs in results.extras["target_distance"].items():
    print(f"{variant}: |shared target - shared local| / |shared local| at the restart, per seed:",
          ", ".join(f"{run[0][0]:.2f}" for run in runs))
_ = results.figure()
_

# %% [markdown]
# The mean Q the learners recorded, and their loss, around the restart (dotted line):

# %%
plots.two_diagnostics_figure(
    results.diagnostics["learner.mean_q"], results.diagnostics["learner.loss"],
    ylabels=("mean Q of the batch's actions", "quantile Huber loss"),
    titles=("mean Q", "training loss"),
    suptitle="Target network not synced: the learners around the restart (25,000 env steps)",
    at=results.manifest["scenario"]["restart"]["at"], logy=(False, True))

# %% [markdown]
# At full length the stale shared target is the initial network (the distances printed above,
# against 0 with the fix). As soon as the restarted broken learners train (1,000 env steps
# after the restart, once their new replay holds `learning_starts` transitions), their values
# collapse and they need the rest of the run to grow back to the fixed runs' level; the loss
# spikes at the same moment. The return is another matter: compare the two variants' returns
# in the window after the restart in the table above. The actor uses only which action has
# the larger value, and that choice can survive a collapse of the values themselves.
#
# ## 3 · The diagnostic
#
# In your own code: right after a publish, compare every tensor of the shared model (both
# networks, parameters and buffers) with the trainer's. Here a publish that zips only the
# local networks, then the whole-state publish:

# %%
# NBVAL_CHECK_OUTPUT
import copy

import torch
from torch import nn


class Agent(nn.Module):  # the plan's wrapper: both networks are attributes
    def __init__(self):
        super().__init__()
        self.qnetwork_local = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
        self.qnetwork_target = copy.deepcopy(self.qnetwork_local)


torch.manual_seed(0)
shared, trainer = Agent(), Agent()
with torch.no_grad():
    trainer.qnetwork_target[0].weight.add_(0.1)  # the trainer's target has moved on
    for mine, theirs in zip(shared.qnetwork_local.parameters(),
                            trainer.qnetwork_local.parameters()):
        mine.copy_(theirs)  # the publish that forgets the target
print(checks.target_in_sync(shared, trainer))
shared.load_state_dict(trainer.state_dict())  # the whole state
print(checks.target_in_sync(shared, trainer))

# %% [markdown]
# In a running `System`, the monitor sees the shared target stand still while the learner
# updates its target and publishes, and names the issue:

# %%
monitor = notebook.monitored_run(notebook.demo_config(broken=("target_sync",)))
print(monitor.report())

# %%
# NBVAL_CHECK_OUTPUT
print("issues the monitor named:", monitor.issues)

# %% [markdown]
# ## 4 · The verdict
#
# Computed from the stored runs in `data/` (how to read it:
# [20 · How to read a verdict](20_how_to_read_a_verdict.ipynb)). What the stored runs cannot
# say, the sections above do: the review is wrong about its own line (zipping the wrapper's
# `parameters()` copies both networks); a publish of the local network only leaves the shared
# target stale, which nothing reads in a run that never restarts; a learner that restarts
# from it collapses its values. With a soft target update, and for an evaluator or a
# checkpoint, the effect was not measured here. Publishing the whole `state_dict()` is one
# line and removes the question; the review's own fix (`.cpu()` and back on every publish)
# doubles the transfers, and forgetting the move back crashes the next step.

# %%
print(notebook.verdict("target_sync", root="../data"))

# %% [markdown]
# ## 5 · Try it
# Fix on and fix off side by side, one seed each, inline (under 15 s on 2 cores): the run restarts from
# the shared models at 60% of its env steps (dotted in section 2; here at 1,500 of 2,500),
# with `learning_starts` 200 so that both phases train.

# %%
toggle = notebook.FixToggle(
    "target_sync", diagnostic="learner.mean_q", ylabel="mean Q of the batch's actions",
    see="before the restart the two curves are one; after it, with the fix off, the restarted "
        "learner's mean Q collapses (its target is the initial network), with the fix on it "
        "goes on where it stopped.",
    steps=2_500, overrides={"learning_starts": 200, "log_interval": 20})
_ = toggle.run()
toggle
