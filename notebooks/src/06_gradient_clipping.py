# %% [markdown]
# # 06 · Gradient clipping
#
# **The claim.** The plan's review (its "Learning Issues Evaluation Report") lists gradient
# clipping among the issues the plan has fixed: `train_step` calls
# `clip_grad_norm_(..., max_norm=1.0)` between `backward()` and the optimizer step. The plan's
# origin, in its final learner, had that line commented out.
#
# So the question is not whether the line is there, but what it does: how often the gradient
# is above the limit at all, what the IQN loss bounds and what it does not, and what removing
# the clip does to learning, at the default learning rate and at a ten times higher one. Run
# the notebook top to bottom (Restart & Run All); every number printed here is computed by the
# cells above it. How to read the verdict at the end:
# [20 · How to read a verdict](20_how_to_read_a_verdict.ipynb).

# %%
import torch
from matplotlib.figure import Figure

from mplearn import checks
from mplearn.issues import grad_clip as issue
from mplearn.lab import notebook, plots

torch.set_num_threads(1)  # tiny tensors: one thread is fastest, and spares the other core
print("The claim:", issue.ENTRY.claim)
print("\nThe mechanism:", issue.ENTRY.mechanism)

# %% [markdown]
# ## 1 · The mechanism, in tiny exact experiments
#
# `clip_grad_norm_(parameters, max_norm)` computes the norm of all gradients together and, when
# it is above `max_norm`, scales every gradient by `max_norm / norm`. The `grad_clip` switch
# removes that scaling from the kit's learner (it still measures the norm). Its check runs one
# update with a limit of 0.1 and measures the norm of the gradient the optimizer stepped with:

# %%
# NBVAL_CHECK_OUTPUT
print(issue.check())

# %% [markdown]
# **What the IQN loss bounds.** The quantile Huber loss (kappa = 1) is quadratic in the
# TD error u only for |u| <= 1 and linear beyond, so the gradient of each (quantile, target)
# pair is at most `|tau - 1{u < 0}|`, never more than 1, however large the error. With the
# squared error in its place the gradient grows with the error. Below: the kit's IQN network
# (CartPole shapes), one batch of 64 observations, and targets drawn at growing scales (the
# scale of returns, hence of rewards). Per loss, the largest gradient of one quantile and the
# gradient norm over all parameters, which is what `clip_grad_norm_` compares with 1.0:

# %%
# NBVAL_CHECK_OUTPUT
print(issue.per_element_gradients())

# %% [markdown]
# Read the two losses' rows above: with the quantile Huber loss, a target scale 1,000 times
# larger barely moves the gradient norm of this freshly initialised network; with the squared
# error it grows about linearly with the scale. This is measured at initialisation only: it
# says that the loss itself bounds the gradient of each quantile whatever the rewards, not
# that the gradient norm stays put during training (the live and stored runs below record it).
# The network does: as training grows its weights and activations, the gradient grows with
# them, and the live run below measures how often it ends up above 1.0.
#
# **What a clip does to Adam.** Adam divides each step by a running root mean square of
# the gradients, so a gradient multiplied by a constant gives the same step. A clip that
# scaled *every* gradient by the same factor would change nothing; a clip changes Adam's steps
# only through how much it shrinks some steps against others. Fifty steps on a small
# regression, with every gradient multiplied by 0.1 or left as is:

# %%
# NBVAL_CHECK_OUTPUT
for name, (difference, moved) in issue.adam_step_scale(factor=0.1).items():
    print(f"{name:<4}: weights moved up to {moved:.4f}; gradients x 0.1 changed them by up to "
          f"{difference:.2g}")

# %% [markdown]
# With SGD the scaled run ends far from the unscaled one; with Adam the difference is a tiny
# fraction of how far the weights moved (compare the two numbers on each line).
#
# ## 2 · The effect on learning
#
# A short live run: CartPole-v1 at the default learning rate (1e-3), two paired seeds (same
# environment seeds and initial weights for fixed and broken), inline mode (exact for a seed):

# %%
# NBVAL_CHECK_OUTPUT
run = notebook.live("grad_clip", steps=2_000, seeds=2, condition="lr 1e-3", mode="inline")
print(run.table())
print("per seed: mean pre-clip gradient norm, fraction of updates with a norm above 1.0")
for variant, recs in run.records.items():
    print(f"  {variant:<7}", ", ".join(f"{issue.run_mean(r, 'grad_norm'):.2f} "
                                       f"({issue.run_mean(r, 'clip_fraction'):.1%})"
                                       for r in recs))

# %%
_ = run.figure()
_

# %% [markdown]
# Read the lines above: the mean pre-clip gradient norm against the limit 1.0, and the
# fraction of updates above it, in the fixed and the broken runs alike (the broken learner
# measures the norm without clipping). Where nearly every update is above the limit, the clip
# is not a rare safety net: it scales nearly every gradient down by a similar factor. A nearly
# constant factor is what Adam does not see (section 1); what is left of the clip is that it
# shrinks the larger gradients more than the others.
#
# The full-length results (25,000 env steps, 20 paired seeds) at the default learning rate and
# at 1e-2, computed once by `python -m mplearn reproduce grad_clip` and stored in `data/`:

# %%
results = notebook.experiments.load("grad_clip", root="../data")
print(results.table())

# %%
_ = results.figure("lr 1e-3")
_

# %%
_ = results.figure("lr 1e-2")
_

# %% [markdown]
# The learners recorded, every 100 updates, the mean pre-clip gradient norm and the fraction
# of updates whose norm was above 1.0 (in the broken runs: the updates that would have been
# clipped). Their distribution over all records and seeds, and the norm over time:

# %%
print(issue.gradient_summary(results))

# %%
fig = Figure(figsize=(11, 3.5), layout="constrained")
axes = fig.subplots(1, 2, sharey=True)
for ax, condition in zip(axes, ("lr 1e-3", "lr 1e-2"), strict=True):
    norms = results.diagnostics["learner.grad_norm"]
    plots.diagnostic_over_time(ax, {"fixed": norms[f"fixed, {condition}"],
                                    "broken": norms[f"broken, {condition}"]},
                               "pre-clip gradient norm", logy=True, title=condition)
    ax.axhline(1.0, color="0.4", linewidth=1, linestyle=":")
    ax.annotate("clip limit 1.0", (0, 1.0), xytext=(4, 3), textcoords="offset points",
                fontsize="small", color="0.3")
fig.suptitle("Gradient clipping: the pre-clip gradient norm (mean of 100 updates)")
fig

# %% [markdown]
# At full length, compare the pre-clip norms in the summary above with the limit 1.0: a clip
# that bites on nearly every update is not a guard against rare spikes; with Adam it acts as a
# re-weighting of the steps (each gradient scaled to norm 1). Whether that re-weighting helps
# or hurts at each learning rate is what the tables and the verdict below say.
#
# ## 3 · The diagnostic
#
# In your own code: after clipping (and before or after `step()`), the gradient norm must be at
# most the limit; a learner that logs the pre-clip norm (what `clip_grad_norm_` returns) and
# the fraction of clipped steps sees how much the clip does. Here a step without the clip, then
# with it:

# %%
# NBVAL_CHECK_OUTPUT
import torch
from torch import nn

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
loss = model(10 * torch.randn(32, 4)).pow(2).mean()
loss.backward()
print(checks.gradient_clipped(model, max_norm=1.0))
pre_clip = nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
print(f"pre-clip norm {pre_clip:.4g}:", checks.gradient_clipped(model, max_norm=1.0))

# %% [markdown]
# In a running `System`, the learner records the largest gradient norm it stepped with, and
# the monitor names the issue when it is above the limit (the demo sets the limit to 0.01, so
# that the gradients are above it):

# %%
monitor = notebook.monitored_run(notebook.demo_config(broken=("grad_clip",)))
print(monitor.report())

# %%
# NBVAL_CHECK_OUTPUT
print("issues the monitor named:", monitor.issues)

# %% [markdown]
# ## 4 · The verdict
#
# Computed from the stored runs in `data/` (how to read it:
# [20 · How to read a verdict](20_how_to_read_a_verdict.ipynb)). The review marks clipping as
# fixed, and the line is there. With the quantile Huber loss the gradient of every quantile is
# bounded whatever the rewards, and Adam does not see a constant gradient scale (section 1).
# Where a clip can still matter (a loss without that bound, such as the squared error; plain
# SGD; rare gradient spikes with a limit above the usual norm) was not measured here. What to
# keep is the diagnostic: log the pre-clip norm and the fraction clipped, and choose the limit
# from them, not by habit.

# %%
print(notebook.verdict("grad_clip", root="../data"))

# %% [markdown]
# ## 5 · Try it
# Fix on and fix off side by side, one seed each, learning rate 1e-3, inline (under 15 s on 2 cores): on
# the left the largest gradient norm the optimizer stepped with between two records (log
# scale; the clip limit is 1.0), on the right the learning curves.

# %%
toggle = notebook.FixToggle(
    "grad_clip", diagnostic="learner.grad_norm_applied_max",
    ylabel="largest gradient norm stepped with", condition="lr 1e-3", logy=True,
    see="with the fix on the applied norm never exceeds 1.0; with it off it is the raw norm, "
        "several times larger. Over this short run the returns hardly differ: Adam divides "
        "out a near-constant gradient scale.",
    steps=2_500, overrides={"learning_starts": 200, "log_interval": 20})
_ = toggle.run()
toggle
