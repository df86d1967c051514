# %% [markdown]
# # 04 · Missing train mode
#
# **The claim.** The plan's review (its "Learning Issues Evaluation Report") lists the model's
# training mode among the issues the plan has fixed: `train_step` calls `train()` on both the
# local and the target network before computing the loss.
#
# The line is right. This notebook measures what it protects against: what `train()` and
# `eval()` change at all, how a learner ends up training in eval mode although `train_step`
# "sets" the mode, when that matters for learning, and the trap batch norm sets the other way
# round. Run it top to bottom (Restart & Run All); every number printed here is computed by the
# cells above it.

# %%
%matplotlib inline
import torch

from mplearn.diagnose import checks
from mplearn.issues import train_mode as mode_traps
from mplearn.lab import notebook
from mplearn.catalogue import issue
from mplearn.mechanisms import run_check

torch.set_num_threads(1)  # tiny tensors: one thread is fastest, and spares the other core
print(issue("train_mode").mechanism)

# %% [markdown]
# ## 1 · The mechanism, in tiny exact experiments
#
# `Module.train(mode)` sets a flag on every submodule, and only layers that read the flag
# behave differently: dropout (off in eval), batch norm (batch statistics and running-average
# updates in train mode, the running averages in eval) and noisy layers. The kit's IQN network,
# same weights, same input, in train mode and in eval mode:

# %%
# NBVAL_CHECK_OUTPUT
for noisy in (False, True):
    print(f"noisy={noisy}: max |train-mode output - eval-mode output| = "
          f"{mode_traps.kit_network_mode_difference(noisy):.4f}")

# %% [markdown]
# With the default layers (a plain MLP) the mode changes nothing at all; only the noisy version
# depends on it.
#
# How a learner ends up in eval mode: the plan's origin chooses actions with a helper that calls
# `eval()`, computes Q, then calls `train()` again. Any early return or exception between the
# two leaves the network in eval mode, and where the same network is then trained (the origin's
# single-process version does both with one object) it trains in eval mode from then on, with
# no error. Across processes the mode is `module.training`, a plain attribute: like the epsilon
# attribute of notebook 05 it travels only when a process starts, so a model put in eval mode
# in the parent before the learner process starts reaches the learner in eval mode. Only a
# `train()` call in `train_step` makes the mode certain, which is the review's point.
#
# **Noisy layers.** `NoisyLinear` computes `(mu + sigma * epsilon) x` in train mode and
# `mu x` in eval mode. In eval mode the noise scales `sigma` are not in the computation, so they
# get no gradient, and the loss is that of the noise-free network. The `train_mode` switch
# leaves the kit's learner in eval mode; its check runs one update of a noisy network and
# measures the gradient that reaches the sigma parameters:

# %%
# NBVAL_CHECK_OUTPUT
print(run_check("train_mode"))

# %% [markdown]
# The actor keeps its own copy in train mode (it explores with the noise), so in the broken
# system the noise the actor explores with stays at its initial scale for the whole run,
# while a learner in train mode can learn to turn it down, or up.
#
# **Batch norm: the trap the other way round.** An actor must act in eval mode with batch norm.
# Left in train mode, it fails on a single observation, and with several agents in one batch
# each agent's output depends on the other agents' observations (the batch statistics):

# %%
# NBVAL_CHECK_OUTPUT
print("act in train mode on 1 observation:", mode_traps.act_with_batch_of_one())
change = mode_traps.coupled_actions()
print("change of agent 0's output when only agent 1's observation moves:")
print(f"  train mode {change['train']:.4f}, eval mode {change['eval']:.4f}")

# %% [markdown]
# And a learner left in eval mode never updates the running statistics: batch norm then
# normalises with their initial values, mean 0 and variance 1, that is, not at all. The same
# regression (inputs around 50 +- 20), the same initial weights and mini-batches, 200 Adam steps:

# %%
# NBVAL_CHECK_OUTPUT
for run in mode_traps.train_in_eval_mode(steps=200):
    print(run)

# %% [markdown]
# In eval mode the layer passes the raw scale through (a first loss about 240 times larger) and
# its statistics stay untouched after 200 batches; training then has to absorb the scale into
# the weights, and ends with a loss about three times higher.
#
# ## 2 · The effect on learning
#
# The kit's default network has no mode-dependent layer, so the switch can matter only with
# noisy layers. The scenario therefore explores by noise alone (`noisy=True`, epsilon 0): where
# the noise is the only exploration, frozen noise scales are the only difference. A short live
# run on CartPole-v1, two paired seeds (same environment seeds and initial weights for fixed
# and broken), inline mode (exact for a seed):

# %%
# NBVAL_CHECK_OUTPUT
run = notebook.live("train_mode", steps=2_000, seeds=2, condition="CartPole")
print(run.table())
print("noise scales of the online network (shared model), first and last:")
print(mode_traps.sigma_rows(mode_traps.live_sigmas(run)))

# %%
_ = run.figure()
_

# %% [markdown]
# After 2,000 env steps neither variant has learned much (final returns 18 to 32 in both).
# The noise scales already tell them apart: the broken learner has not moved a single sigma
# (largest change 0.0000; their mean stays at the initial 0.0625), so the actor explores with
# the initial noise for ever, while the fixed learner has changed them (by up to about 0.15)
# and lowered their mean to about 0.05: it is learning to explore less.
#
# The full-length results (25,000 env steps, 5 paired seeds), on CartPole-v1 and on the DeepSea
# chain of size 8 (a hard-exploration problem: the treasure at the end pays 1, and each step
# towards it costs a little, so a greedy agent learns to avoid it; random actions find it once
# in 2^8 = 256 episodes), computed once by `python -m mplearn reproduce train_mode` and stored
# in `data/`:

# %%
results = notebook.experiments.load("train_mode", root="../data")
print(results.table())
print("noise scales of the online network at the start and the end of the runs:")
print(mode_traps.sigma_rows(results.extras["sigma"], per_seed=False))

# %%
_ = results.figure("CartPole")
_

# %%
_ = results.figure("DeepSea 8")
_

# %%
# The return 0.99 means the treasure on every episode: when did each run get there?
print(mode_traps.steps_to_reach(results, 0.9, condition="DeepSea 8"))

# %% [markdown]
# Over 25,000 env steps the broken learners never moved a sigma (largest change 0.0000 in all
# 10 runs), while the fixed ones halved the mean noise scale on CartPole (from 0.0625 to 0.031
# to 0.035) and lowered it on DeepSea (to 0.050 to 0.055). And yet the returns do not differ.
# On CartPole the broken runs ended with IQM 205.7 against 133.7 for the fixed ones, a paired
# difference of -42.7 with a 95% interval of [-192.3, 83.7] that includes 0 (wide: with noise
# as the only exploration, CartPole runs vary a lot from seed to seed). On DeepSea 8 every run,
# fixed or broken, found the treasure and ended at the optimal return, 0.99; the fixed runs got
# there within 1,750 to 3,000 env steps, the broken ones within 1,750 to 7,250, but seed by
# seed two broken runs were later, one earlier and two as fast: no consistent difference in
# speed either. The initial noise scale (0.5 / sqrt(inputs), as in the paper) is exploration
# enough for a chain of 8, and learning the scales did not help.
#
# ## 3 · The diagnostic
#
# In your own code: report the mode of every mode-dependent module at the start of the
# training step, and after `backward()` check that the noise scales got a gradient. Here an
# acting helper with an early return leaves a noisy network in eval mode:

# %%
# NBVAL_CHECK_OUTPUT
import torch
from torch import nn

from mplearn.core.networks import NoisyLinear

torch.manual_seed(0)
net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), NoisyLinear(16, 2))


def act(net, obs):
    net.eval()
    with torch.no_grad():
        q = net(obs)
    if q[0, 0] > q[0, 1]:
        return 0  # early return: the train() below never runs
    net.train()
    return 1


print("action:", act(net, torch.randn(1, 4)), "(returned early)")
print(checks.module_modes(net, expected="train"))
loss = net(torch.randn(8, 4)).pow(2).mean()
loss.backward()
print(checks.noisy_sigma_gradients(net))

# %% [markdown]
# In a running `System`, the learner records the mode it trained in, and the monitor names the
# issue:

# %%
monitor = notebook.monitored_run(notebook.demo_config(broken=("train_mode",)))
print(monitor.report())

# %%
# NBVAL_CHECK_OUTPUT
print("issues the monitor named:", monitor.issues)

# %% [markdown]
# ## 4 · The verdict

# %%
print(notebook.verdict("train_mode", root="../data"))

# %% [markdown]
# **No effect measured, here.** The review is right that `train_step` must set the mode, and
# the failure it guards against is real and silent: a learner left in eval mode trains its
# noisy layers without noise and never moves their scales (sections 1 and 2), and no error
# says so. In the settings measured the frozen scales cost nothing: CartPole -42.7 [-192.3,
# 83.7], DeepSea 8 exactly 0 (every run optimal). So the issue is conditional twice over: on
# mode-dependent layers (with the kit's default network the mode changes nothing, section 1),
# and, for noisy layers, on an exploration problem that the initial noise does not solve, which
# a chain of 8 is not. Batch norm is where the mode matters most, and in both directions: the
# learner needs train mode, the actor needs eval mode (section 1).
#
# ## 5 · Try it
# Toggle the fix and rerun the short experiment (one seed, CartPole-v1, exploration by noise
# alone).

# %%
toggle = notebook.FixToggle("train_mode", steps=1_500)
_ = toggle.run()
toggle
