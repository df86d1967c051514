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
# cells above it. How to read the verdict at the end:
# [20 · How to read a verdict](20_how_to_read_a_verdict.ipynb).

# %%
import torch

from mplearn import checks
from mplearn.issues import train_mode as issue
from mplearn.lab import notebook

torch.set_num_threads(1)  # tiny tensors: one thread is fastest, and spares the other core
print("The claim:", issue.ENTRY.claim)
print("\nThe mechanism:", issue.ENTRY.mechanism)

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
          f"{issue.kit_network_mode_difference(noisy):.4f}")

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
print(issue.check())

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
print("act in train mode on 1 observation:", issue.act_with_batch_of_one())
change = issue.coupled_actions()
print("change of agent 0's output when only agent 1's observation moves:")
print(f"  train mode {change['train']:.4f}, eval mode {change['eval']:.4f}")

# %% [markdown]
# And a learner left in eval mode never updates the running statistics: batch norm then
# normalises with their initial values, mean 0 and variance 1, that is, not at all. The same
# regression (inputs around 50 +- 20), the same initial weights and mini-batches, 200 Adam steps:

# %%
# NBVAL_CHECK_OUTPUT
for run in issue.train_in_eval_mode(steps=200):
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
run = notebook.live("train_mode", steps=2_000, seeds=2, condition="CartPole", mode="inline")
print(run.table())
print("noise scales of the online network (shared model), first and last:")
print(issue.sigma_rows(issue.live_sigmas(run)))

# %%
_ = run.figure()
_

# %% [markdown]
# After 2,000 env steps neither variant has learned much (the final returns above). The noise
# scales already tell them apart: the broken learner has not moved a single sigma (its largest
# change is 0, its mean stays at the initial value), so the actor explores with the initial
# noise for ever, while the fixed learner has changed them and lowered their mean: it is
# learning to explore less.
#
# The full-length results (25,000 env steps, paired seeds), computed by `python -m mplearn
# reproduce train_mode` and stored in `data/`. The scenario declares two conditions: CartPole-v1,
# and the DeepSea chain of size 12 (a hard-exploration problem: the treasure at the end pays 1,
# each step towards it costs a little, so a greedy agent learns to avoid it; random actions find
# it once in 2^12 = 4,096 episodes). The table says how many pairs each condition has so far; a
# condition with none is declared but not yet run.

# %%
results = notebook.experiments.load("train_mode", root="../data")
print(results.table())
print("noise scales of the online network at the start and the end of the runs:")
print(issue.sigma_rows(results.extras["sigma"], per_seed=False))

# %%
_ = results.figure("CartPole")
_

# %% [markdown]
# Over 25,000 env steps the broken learners never moved a sigma (the largest change printed
# above is 0 in every run), while the fixed ones lowered the mean noise scale, on CartPole more
# than on DeepSea. Compare that with the returns in the tables: with noise as the only
# exploration, CartPole runs vary a lot from seed to seed, so read the interval, not the two
# IQMs. (An earlier session ran DeepSea 8: both arms found the treasure, so the initial noise
# scale, 0.5 / sqrt(inputs) as in the paper, was exploration enough there; hence a chain of 12.)
#
# On DeepSea a run's final return is close to 1 when its greedy policy has learned the way to
# the treasure and close to 0 when it has not, so count the runs that got there:

# %%
for variant, values in results.values.items():
    if "DeepSea" in variant:
        print(f"{variant}: {int((values > 0.5).sum())} of {len(values)} runs end at the "
              f"treasure (final return > 0.5)")
_ = results.figure("DeepSea 12")
_

# %% [markdown]
# Read the counts with the sigma table above. The fixed learner does what NoisyNet's learner
# is built to do: it lowers the noise where the noise does not pay, and on a chain where
# nothing pays until the end, it lowers it before its actor has found the treasure, so most of
# its runs settle on the safe policy of never going there. The broken learner cannot move
# sigma, so its actor keeps the initial noise for the whole run: a constant exploration
# schedule, and on this chain a better one. The verdict below says what that does to the
# metric. It is about this condition: the bug did not make the learning better, it froze the
# exploration at a level that happened to suit this task. It still trains the network on its
# means only, which the mechanism section shows.
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
#
# Computed from the stored runs in `data/` (how to read it:
# [20 · How to read a verdict](20_how_to_read_a_verdict.ipynb)). Whatever it says about the
# return, the sections above say what it rests on: the review is right that `train_step` must
# set the mode; a learner left in eval mode trains its noisy layers without noise and never
# moves their scales, silently; with the kit's default network (no mode-dependent layer) the
# mode changes nothing; and batch norm is where the mode matters most, in both directions (the
# learner needs train mode, the actor eval mode).

# %%
print(notebook.verdict("train_mode", root="../data"))

# %% [markdown]
# ## 5 · Try it
# Fix on and fix off side by side, one seed each, CartPole-v1, exploration by noise alone,
# inline (under 15 s on 2 cores): on the left the fraction of the learner's updates made in train mode,
# on the right the learning curves.

# %%
toggle = notebook.FixToggle(
    "train_mode", diagnostic="learner.train_mode",
    ylabel="fraction of updates in train mode", condition="CartPole",
    see="with the fix off every update runs in eval mode (0): the noisy layers train without "
        "noise and their scales never move (the sigma lines of section 2); the returns need "
        "longer than this to part, if they do.",
    steps=2_500, overrides={"learning_starts": 200, "log_interval": 20})
_ = toggle.run()
toggle
