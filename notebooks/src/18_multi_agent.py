# %% [markdown]
# # 13 · Several agents, one world: the treasure hunt
#
# The plan was written for a multi-agent world: the sorrel project's treasure hunt, where
# agents walk a walled grid and collect gems. Each agent has its own model
# (`shared_models[agent_id]`) and its own learner process; **one actor process steps every
# agent**. Until now every notebook used independent copies of an environment, one per agent.
# Here the agents share one world: they take turns, they block each other, and a gem one of
# them collects is gone for the others.
#
# This notebook shows the world, runs three agents with their three learners in real
# processes (lockstep, so a seed gives the same numbers run after run on one machine and torch
# build), plots each agent's
# learning curve, and asks the `Monitor` what it saw.

# %%
%matplotlib inline
import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import FuncFormatter

from mplearn import Config
from mplearn.lab import notebook, plots, stats
from mplearn.envs import TREASURE_HUNT
from mplearn.envs.treasure import CHANNELS, GEM, TreasureWorld

# %% [markdown]
# ## 1 · The world
#
# An 11 x 11 grid with a wall around it. Each agent, in turn, moves up, down, left or right:
# onto a gem, +10 (the gem is collected); into a wall or another agent, -1 and it stays put;
# otherwise 0. After every round each empty cell grows a gem with probability 0.01. An
# episode is 100 rounds, then the world starts afresh; that end is a time limit (truncated),
# not a terminal state. Every agent sees only a 5 x 5 window around itself, each cell one-hot
# over (empty, wall, gem, agent): a vector of 100 numbers.
#
# In the pictures below walls are grey, gems yellow, each agent a numbered disc, and the
# dashed square around it is what it sees.

# %%
world = TreasureWorld(n_agents=3, seed=0)
print(f"grid {world.height} x {world.width}, observation {world.spec.obs_shape}, "
      f"{world.spec.n_actions} actions; channels {CHANNELS}")
print("gems on the board at the start:", int((world.inner == GEM).sum()))

# %%
COLORS = ["white", "0.35", plots.OKABE_ITO["yellow"], "white"]  # empty, wall, gem, agent cell
AGENT_COLORS = [plots.OKABE_ITO[c] for c in ("blue", "vermillion", "bluish_green")]


def draw(ax, world: TreasureWorld, title: str) -> None:
    """The grid, gems in yellow, each agent a numbered disc with its 5 x 5 view outlined."""
    ax.imshow(world.inner, cmap=ListedColormap(COLORS), vmin=0, vmax=3)
    r = world.r
    for i in range(world.n_agents):
        y, x = world.cell(i)
        ax.scatter(x, y, s=260, color=AGENT_COLORS[i], zorder=3)
        ax.text(x, y, str(i), ha="center", va="center", color="white", fontweight="bold")
        ax.add_patch(Rectangle((x - r - 0.5, y - r - 0.5), 2 * r + 1, 2 * r + 1, fill=False,
                               edgecolor=AGENT_COLORS[i], linewidth=1.5, linestyle="--"))
    ax.set(title=title, xticks=range(world.width), yticks=range(world.height),
           xlabel="column", ylabel="row", xlim=(-0.5, world.width - 0.5),
           ylim=(world.height - 0.5, -0.5))
    ax.tick_params(labelsize="x-small")


fig = Figure(figsize=(10, 4.2), layout="constrained")
left, right = fig.subplots(1, 2)
draw(left, world, "the start of an episode (seed 0)")
rng = np.random.default_rng(0)
for _ in range(50 * world.n_agents):  # 50 rounds of random moves
    world.step(world.turn, int(rng.integers(world.spec.n_actions)))
draw(right, world, f"after 50 rounds of random moves (returns {world.returns})")
_ = fig
_

# %% [markdown]
# What agent 0 sees: its observation, decoded back into the 5 x 5 window (itself in the
# centre; anything outside the grid reads as wall).

# %%
view = world.observe(0).reshape(2 * world.r + 1, 2 * world.r + 1, len(CHANNELS)).argmax(-1)
print("\n".join(" ".join(".#G@"[c] for c in row) for row in view))
print("legend: . empty, # wall, G gem, @ agent")

# %% [markdown]
# **A baseline.** What does a random policy score? Three agents acting uniformly at random
# for 20 episodes each:

# %%
# NBVAL_CHECK_OUTPUT
baseline_world = TreasureWorld(n_agents=3, seed=1)
rng = np.random.default_rng(1)
random_returns = [[] for _ in range(3)]
while min(len(r) for r in random_returns) < 20:
    agent = baseline_world.turn
    step = baseline_world.step(agent, int(rng.integers(4)))
    if step.episode_return is not None:
        random_returns[agent].append(step.episode_return)
for agent, returns in enumerate(random_returns):
    print(f"agent {agent}: random policy, mean return {np.mean(returns):.1f} "
          f"(std {np.std(returns):.1f}) over {len(returns)} episodes")

# %% [markdown]
# ## 2 · Three agents, three learners, real processes
#
# One actor process steps the three agents in turn; three learner processes train one model
# each. Lockstep mode: the processes meet at a barrier twice per round of 20 env steps, so
# the run does exactly what the one-process version does (on this machine and torch build:
# another may round differently). The run is short
# (2,000 env steps per agent, 20 episodes) and the configuration is tuned for it: half an
# update per env step, batch 32, learning rate 3e-3, epsilon from 1 to 0.01 over 500 updates,
# a hard target copy every 50 updates. The whole system runs under the `Monitor`.

# %%
config = Config(env_id=TREASURE_HUNT, n_agents=3, mode="lockstep", device="cpu",
                total_env_steps=2_000, seed=0, learning_starts=200, updates_per_step=0.5,
                batch_size=32, learning_rate=3e-3, epsilon_decay_updates=500,
                target_update_period=50, sync_interval=20,
                log_interval=20)  # frequent records: the monitor compares the latest ones
monitor = notebook.monitored_run(config)
result = monitor.system.result()
print(result.table())  # wall-clock figures vary

# %%
# NBVAL_CHECK_OUTPUT
for agent in range(config.n_agents):
    steps, returns = result.returns(agent)
    print(f"agent {agent}: {len(returns)} episodes; mean return of the first 5 "
          f"{returns[:5].mean():.1f}, of the last 5 {returns[-5:].mean():.1f}")

# %% [markdown]
# ## 3 · Per-agent learning curves
#
# Each agent's episode returns (dots) and their running mean over 5 episodes (line), against
# the random policy's mean (grey band: the three agents' means).

# %%
fig = Figure(figsize=(9, 3.6), layout="constrained")
ax = fig.subplots()
ax.axhspan(min(np.mean(r) for r in random_returns), max(np.mean(r) for r in random_returns),
           color="0.85", label="random policy (mean per agent)")
for agent in range(config.n_agents):
    steps, returns = result.returns(agent)
    ax.scatter(steps, returns, s=10, color=AGENT_COLORS[agent], alpha=0.5)
    ax.plot(steps, stats.running_mean(returns, 5), color=AGENT_COLORS[agent], linewidth=2,
            label=f"agent {agent}")
ax.xaxis.set_major_formatter(FuncFormatter(plots.format_steps))
ax.set(xlabel=plots.STEPS_LABEL, ylabel="episode return (running mean of 5)",
       title="Three agents in one world, each with its own learner (lockstep, seed 0)")
ax.legend(frameon=False, fontsize="small", loc="upper left")
_ = fig
_

# %% [markdown]
# **What the curves show.** A random policy scores about 100 to 110 per episode. After 2,000
# env steps (900 updates per learner), agent 1 has learned to collect gems: its last five
# episodes average 226.6 against 99.6 for its first five. Agent 0 climbed towards 200 and fell
# back (112.2 over its last five), and agent 2 is barely above random (129.4). The three
# learners run the same code with the same settings; they differ in their initial weights,
# their random streams and where they stand in the shared world, and after so short a run
# that is enough to put them far apart. Any claim about "the agents" of a multi-agent run
# needs every agent's curve, and several seeds.

# %% [markdown]
# ## 4 · What the monitor says
#
# The monitor checked, every few polls, each agent's invariants: weights that move while the
# learner updates, the target, publishes and epsilon against their schedules, updates against
# the ratio, the learner's mode and gradient norm, time-limit rows in the replay, and whether
# the agents' first actions are copies of each other.

# %%
print(monitor.report())

# %%
# NBVAL_CHECK_OUTPUT
print("issues the monitor named:", monitor.issues)

# %% [markdown]
# Nothing to report: with every fix on, no invariant was violated for any of the three
# agents. The monitor compares the latest records of the actor and of each learner (epsilon,
# for one), which is why this run records every 20 updates: with records far apart, a fast
# epsilon schedule makes the two values differ for a while even when nothing is wrong.

# %% [markdown]
# ## 5 · Try it
#
# Change `n_agents`, the world (`env_kwargs=dict(height=9, width=9, gem_spawn_prob=0.02)`),
# or break a switch (e.g. `fixes=Fixes().without("worker_seeding")`, after
# `from mplearn import Fixes`) and rerun the cells of sections 2 to 4: which issue does the
# monitor name?
