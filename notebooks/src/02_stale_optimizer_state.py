# %% [markdown]
# # 02 · Stale optimizer state
#
# **The claim.** The plan's review (its "Learning Issues Evaluation Report") says that when
# weights are copied into a model after its optimizer was created, the optimizer is left with
# momentum for the old random weights, so the optimizer must be recreated after every copy.
# The catalogue entry, in our words:

# %%
from mplearn import checks
from mplearn.issues import optimizer_binding as issue
from mplearn.lab import notebook, plots

print("The claim:", issue.ENTRY.claim)
print("\nThe mechanism:", issue.ENTRY.mechanism)

# %% [markdown]
# This notebook measures four cases: the review's own case, and three ways an optimizer really
# does go stale. Run it top to bottom (Restart & Run All); every number printed here is
# computed by the cells above it. How to read the verdict at the end:
# [20 · How to read a verdict](20_how_to_read_a_verdict.ipynb).

# %% [markdown]
# ## 1 · The mechanism, in tiny exact experiments
#
# **The review's case.** Build a model and its Adam optimizer, *then* copy weights from a
# source into the model; train 50 steps. Against: copy first, then create the optimizer.
# Adam creates its moments lazily at the first `step()`, and `load_state_dict` copies values
# into the very Parameter objects the optimizer already holds, so the two runs should agree
# to the last bit.

# %%
# NBVAL_CHECK_OUTPUT
print("max |weight difference| after 50 steps, optimizer kept vs recreated:",
      issue.recreate_after_copy())

# %% [markdown]
# **Variant A: the optimizer is bound to other parameters.** This is what the plan's
# accelerator path risks: the learner builds a train copy (a new module plus
# `load_state_dict`) and keeps the *shared* model's optimizer. Gradients land on the copy's
# parameters; the optimizer steps the shared ones, whose `.grad` is `None`, so Adam skips
# them. This is the `optimizer_binding` switch; its check trains 10 updates each way.

# %%
# NBVAL_CHECK_OUTPUT
print(issue.check())

# %% [markdown]
# **Variant B: moments kept across a weight replacement** (a resume from a checkpoint of
# another run, while keeping the optimizer). The first update follows the *old* run's
# moments, not the new gradients. How much does it matter?

# %%
# NBVAL_CHECK_OUTPUT
b = issue.moments_across_replacement()
print(f"cosine(first update with kept moments, first update fresh): {b.first_step_cosine:.3f}")
for step in (1, 5, 20, 50, 99):
    print(f"loss gap (kept - fresh) after {step:>2} updates: {b.gap(step):+.4f}")

# %%
from matplotlib.figure import Figure

fig = Figure(figsize=(7, 3), layout="constrained")
ax = fig.subplots()
ax.plot(b.fresh, label="optimizer recreated", color=plots.VARIANT_COLORS[plots.FIXED])
ax.plot(b.kept, label="moments kept", color=plots.VARIANT_COLORS[plots.BROKEN], linestyle="--")
ax.set(xlabel="updates after the weight replacement", ylabel="training loss (MSE)",
       yscale="log", title="Variant B: moments kept across a weight replacement")
ax.legend()
fig

# %% [markdown]
# Read the gap in the printed lines, not a rule of thumb: the kept moments send the first
# update in another direction (the cosine above), and the two loss curves do not meet again
# after a few updates. The gap changes sign and is larger after 20 and 50 updates than after
# the first; only towards the end of the 100 updates do the curves come close. Neither run
# diverges: the kept moments change the path, they do not break training.

# %% [markdown]
# **Variant C: the module moved after the optimizer has state.** `Module.to()` moves the
# parameters but not Adam's moments. On CUDA the next `step()` fails with a device error; the
# same happens on the CPU with a dtype, which we can show on any machine:

# %%
# NBVAL_CHECK_OUTPUT
print("second step after .double():", issue.move_after_state("float64"))

# %% [markdown]
# ## 2 · The effect on learning
#
# A short live run first: CartPole-v1, the learner on the copy path (the plan's accelerator
# path, where variant A lives), two paired seeds (same environment seeds and initial weights
# for fixed and broken). Inline mode computes exactly what lockstep does for a seed, so these
# numbers repeat on this machine each time the cell runs (a seed reproduces on one machine and
# torch build; another CPU or torch version may round differently).

# %%
# NBVAL_CHECK_OUTPUT
run = notebook.live("optimizer_binding", steps=2_000, seeds=2, mode="inline")
print(run.table())

# %%
_ = run.figure()
_

# %% [markdown]
# The full-length results (25,000 env steps, 20 paired seeds), computed once by
# `python -m mplearn reproduce optimizer_binding` and stored in `data/`:

# %%
results = notebook.experiments.load("optimizer_binding", root="../data")
print(results.table())
_ = results.figure()
_

# %% [markdown]
# ## 3 · The diagnostic
#
# In your own code: check that the optimizer holds the parameters of the model you train,
# and that the weights move after an update.

# %%
# NBVAL_CHECK_OUTPUT
import copy

import torch
from torch import nn

torch.manual_seed(0)
shared = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
shared_optimizer = torch.optim.Adam(shared.parameters())
train_copy = copy.deepcopy(shared)  # the learner's copy ...
optimizer = shared_optimizer  # ... which kept the shared model's optimizer
print(checks.optimizer_bound_to(optimizer, train_copy))
watch = checks.WeightChange(train_copy)
loss = train_copy(torch.randn(8, 4)).pow(2).mean()
optimizer.zero_grad()
loss.backward()
optimizer.step()
print(watch.check())

# %% [markdown]
# In a running `System`, the monitor sees the shared weights stand still while the learner
# updates, and names the issue:

# %%
monitor = notebook.monitored_run(notebook.demo_config(broken=("optimizer_binding",)))
print(monitor.report())

# %%
# NBVAL_CHECK_OUTPUT
print("issues the monitor named:", monitor.issues)

# %% [markdown]
# ## 4 · The verdict
#
# Computed from the stored runs in `data/` (how to read it:
# [20 · How to read a verdict](20_how_to_read_a_verdict.ipynb)). It judges variant A, the
# switch; the other cases were settled in section 1: the review's case changes nothing, bit
# for bit; variant B changes the path of the loss for a while (the printed gaps); variant C
# raises at the next step, so it cannot go unnoticed.

# %%
print(notebook.verdict("optimizer_binding", root="../data"))

# %% [markdown]
# ## 5 · Try it
# Fix on and fix off side by side, one seed each, inline (under 15 s on 2 cores): on the left how far the
# learner's weights move between two records, on the right the learning curves.

# %%
toggle = notebook.FixToggle(
    "optimizer_binding", diagnostic="learner.weight_change",
    ylabel="|weight change| between records",
    see="with the fix off the learner's weights never move (the red line stays at 0) and the "
        "return stays at the random policy's; with it on they move and the return rises.",
    steps=2_500, overrides={"learning_starts": 200, "log_interval": 20})
_ = toggle.run()
toggle
