# %% [markdown]
# # 01 · The system
#
# The plan trains one IQN agent per `agent_id`. For each agent there is a **shared model** (the
# online network `qnetwork_local`, the target network `qnetwork_target` and an Adam optimizer)
# whose tensors live in shared memory, a **replay buffer**, and a **learner process**. One
# **actor process** steps every agent's environment.
#
# ```
#                 ┌──────────────────────── parent (this notebook) ───────────────────────┐
#                 │  System: starts, watches (records, errors), stops; Monitor            │
#                 └──────▲───────────────────────────▲───────────────────────────▲─────────┘
#                        │ records                   │ records                   │ records
#   ┌────────────────────┴──┐   rows (obs, a, R, s',  │                           │
#   │ actor process         │   done, version, eps)  ┌┴──────────────────────┐  ┌─┴───────────┐
#   │ envs of every agent   │ ─────────────────────▶ │ replay buffer (shm)   │─▶│ learner 0   │
#   │ local copy of each    │                        └───────────────────────┘  │ train_step, │
#   │ online network        │ ◀── pull (versioned) ── shared model 0 (shm) ◀────│ publish     │
#   └───────────────────────┘    epsilon (mp.Value) ◀─────────────────────────── └────────────┘
# ```
#
# What crosses a process boundary carries a version: weights (a sequence number the learner
# bumps around each publish), transitions (the weight version and epsilon they were collected
# with). The actor pulls weights only when their version changed, and never keeps a copy that a
# publish overlapped.
#
# The same actor and learner code runs in three **modes**:
# - `inline`: one process, alternating: the baseline, and the debugger's friend;
# - `lockstep`: real processes that advance in rounds: bit-for-bit the same numbers as inline
#   for a seed, so notebooks can check them exactly;
# - `async`: free-running, for speed; only here can timing bugs (torn reads, races) show.
#
# The **update-to-data ratio** (`updates_per_step`) is enforced in every mode, so the three
# modes train on the same schedule and can be compared.

# %%
from mplearn import Config, train

config = Config(env_id="CartPole-v1", mode="lockstep", total_env_steps=4_000, seed=0,
                device="cpu")
print({k: v for k, v in config.to_dict().items() if k != "fixes"})

# %% [markdown]
# ## One run, lockstep: the same numbers run after run
# A seed reproduces exactly on one machine and torch build (another CPU or torch version may
# round differently, and the runs then drift apart). 4,000 env steps of CartPole-v1 with the default configuration, one agent. The default
# solves CartPole (a mean return of 475 over 20 episodes) in about 33,000 env steps (README);
# here we only watch the start.

# %%
# NBVAL_CHECK_OUTPUT
result = train(config)
s = result.summary
print("final return (last 20 episodes):", [round(x, 1) for x in s["final_return"]])
print("episodes:", s["episodes"], " updates:", s["updates"],
      " target updates:", s["target_updates"])

# %%
print(result.table())  # wall-clock figures: they vary from machine to machine

# %%
from mplearn.lab import notebook

_ = notebook.run_figure(result, "CartPole-v1, lockstep, seed 0")
_

# %% [markdown]
# Policy lag is how many learner updates the weights the actor acted with were behind the
# learner's. In lockstep it is zero here: on the CPU the learner trains the shared model in
# place, and each round the actor pulls after the learner finished its updates. In async mode
# the learner updates while the actor acts, so the lag grows with the time between pulls and
# with how fast each process runs: the dashboard below shows it.

# %% [markdown]
# ## The dashboard
# Untick a fix to switch its learning issue on, pick a mode and a few knobs, press **run**.
# The curve and the policy lag update while the system runs, and the monitor reports the
# issues it recognises when the run ends. (Run here once, headless: 3,000 steps, async, two
# agents, every fix on.)

# %%
dashboard = notebook.Dashboard(Config(total_env_steps=3_000, n_agents=2, mode="async",
                                      device="cpu"))
_ = dashboard.run()
dashboard

# %%
print("monitor:", dashboard.monitor.report())
_ = notebook.run_figure(dashboard.result, "CartPole-v1, async, 2 agents")
_
