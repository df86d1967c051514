# %% [markdown]
# # 07 · Device and dtype of the batch
#
# **The claim.** The plan's review (its "Learning Issues Evaluation Report") lists the device
# mismatch among the issues the plan already fixed: every batch array becomes a tensor through
# `torch.from_numpy(...).float().to(device)`.
#
# That line is correct, and this notebook does not dispute it. It measures what the line
# prevents: what happens when a learner builds its batch with `torch.from_numpy` alone, when
# that goes wrong (and when it does not), and what a learner process that dies of it looks
# like from the parent. Run it top to bottom (Restart & Run All); every number printed here is
# computed by the cells above it, except the GPU figures, which are read from a recorded run.
# How to read the verdict at the end: [20 · How to read a verdict](20_how_to_read_a_verdict.ipynb).

# %%
import json
from pathlib import Path

import torch

from mplearn import System, WorkerError, checks
from mplearn.issues import batch_to_device as issue
from mplearn.lab import notebook

torch.set_num_threads(1)  # tiny tensors: one thread is fastest, and spares the other core
print("The claim:", issue.ENTRY.claim)
print("\nThe mechanism:", issue.ENTRY.mechanism)

# %% [markdown]
# ## 1 · The mechanism, in tiny exact experiments
#
# **dtype.** numpy's default floating-point type is float64, and a replay buffer built with
# `np.zeros(...)` stores float64 unless told otherwise. `torch.from_numpy` shares the array's
# memory, so it keeps its dtype and its device (the CPU). The network's weights are float32.
# Below, a float64 array goes through three conversions into a float32 `nn.Linear`: the plain
# one, the plan's, and the kit's (the model's own device and dtype).

# %%
# NBVAL_CHECK_OUTPUT
for row in issue.convert_and_forward("float64"):
    print(row)

# %% [markdown]
# The same with a replay that stores float32: on a CPU learner, `torch.from_numpy` alone is
# then harmless. So the issue needs a condition: float64 storage, or a learner on another
# device than the CPU.

# %%
# NBVAL_CHECK_OUTPUT
for row in issue.convert_and_forward("float32"):
    print(row)

# %% [markdown]
# The switch `batch_to_device` is that line in the kit's learner (`grep -n "FIX(batch_to_device"
# mplearn/learner.py`). Its check builds a float64 batch and runs one `train_step` with the fix
# on and off:

# %%
# NBVAL_CHECK_OUTPUT
print(issue.check())

# %% [markdown]
# **Device.** On a GPU the same omission leaves the batch on the CPU while the train copy is on
# the GPU. This machine has no GPU, so here are the figures recorded on an H100
# (`python benchmarks/gpu.py`, which runs 1,500 env steps in async mode with the learner on
# CUDA and `batch_to_device` off, and `pytest tests/test_cuda.py`, whose log is stored beside
# it):

# %%
gpu = json.loads(Path("../benchmarks/results/gpu_h100.json").read_text())
print("recorded on:", gpu["machine"]["cuda"], "| torch", gpu["machine"]["torch"])
for key, value in gpu["device_mismatch"].items():
    print(f"  {key}: {value}")
log = Path("../benchmarks/results/test_cuda_h100.log").read_text().splitlines()
print(*[line for line in log if "mismatch" in line or " passed" in line], sep="\n")

# %% [markdown]
# The learner died at its first update on CUDA too, with the other message ("Expected all
# tensors to be on the same device"), and the parent received it from the process named
# `learner-0`.
#
# ## 2 · A dead learner
#
# In the plan, the learner is its own process. An exception there ends that process and
# nothing else: the actor keeps acting, with the initial weights and the initial epsilon, since
# nobody publishes new ones (notebook 08 measures exactly that). The run does not stop; it just
# never learns.
#
# In the kit every worker catches its own exception and sends its traceback to the parent,
# and `System.poll()` and `System.run()` raise it there as a `WorkerError` that names the
# process. The short demo run below (lockstep, real processes, a float64 replay) must raise:

# %%
# NBVAL_RAISES_EXCEPTION
system = System(notebook.demo_config(broken=("batch_to_device",)))
try:
    system.run()
except WorkerError as e:
    error = e  # kept for the cells below; the cell still raises
    raise

# %% [markdown]
# The traceback above is the learner's own, printed in the parent. What the run did before the
# parent stopped it (`learning_starts` is 100 env steps in this demo, and lockstep rounds are
# 10 steps long):

# %%
# NBVAL_CHECK_OUTPUT
result = system.result()
print("failed worker:", error.worker)
print("env steps acted:", result.env_steps, "| learner updates:", result.updates[0])
print(checks.explain_error(error))

# %% [markdown]
# `checks.explain_error` maps a worker's error to the learning issue behind it; the CUDA message
# recorded above is recognised the same way:

# %%
# NBVAL_CHECK_OUTPUT
print(checks.explain_error(gpu["device_mismatch"]["error"]))

# %% [markdown]
# ## 3 · The effect on learning
#
# A short live run: CartPole-v1, a replay that stores observations in float64 (numpy's default,
# as the plan's buffer did), two paired seeds (same environment seeds and initial weights for
# fixed and broken). The broken learner
# dies at its first update, after `learning_starts` = 1,000 env steps; the run is kept as
# "crashed", with the episodes the actor finished before the parent stopped it.

# %%
# NBVAL_CHECK_OUTPUT
run = notebook.live("batch_to_device", steps=2_000, seeds=2, mode="inline")
print(run.table())

# %%
_ = run.figure()
_

# %% [markdown]
# The broken runs' episodes are all from the first 1,000 env steps, where both variants act at
# random (epsilon 1.0): their return is the random-policy level, and their curve stops where the
# learner died.
#
# The full-length results (25,000 env steps, 20 paired seeds), computed once by
# `python -m mplearn reproduce batch_to_device` and stored in `data/`:

# %%
results = notebook.experiments.load("batch_to_device", root="../data")
print(results.table())
# Runs not made yet (or removed: a pair's two runs must share a machine) are "missing".
broken = [r for r in results.manifest["runs"] if r["variant"] == "broken" and r["status"] != "missing"]
print("broken runs stored:", len(broken), [(r["status"], r["env_steps"]) for r in broken])
if broken:
    _ = results.figure()
_

# %% [markdown]
# ## 4 · The diagnostic
#
# In your own code: check a batch against the model before the first update.
# `checks.batch_matches` flags numpy arrays and tensors on another device or in another
# floating-point dtype than the model's parameters.

# %%
# NBVAL_CHECK_OUTPUT
import numpy as np
from torch import nn

model = nn.Linear(4, 2)
obs = np.zeros((8, 4))  # numpy's default dtype, float64
print(checks.batch_matches({"obs": torch.from_numpy(obs)}, model))
print(checks.batch_matches({"obs": torch.as_tensor(obs, dtype=torch.float32)}, model))

# %% [markdown]
# In a running `System`, the monitor turns the learner's `WorkerError` into a finding that names
# the issue:

# %%
monitor = notebook.monitored_run(notebook.demo_config(broken=("batch_to_device",)))
print(monitor.report())

# %%
# NBVAL_CHECK_OUTPUT
print("issues the monitor named:", monitor.issues)

# %% [markdown]
# ## 5 · The verdict
#
# Computed from the stored runs in `data/` (how to read it:
# [20 · How to read a verdict](20_how_to_read_a_verdict.ipynb)), which hold one setting: the
# float64 replay, where the broken learner dies at its first update (the statuses printed in
# section 3). What they do not say, the sections above do:
#
# - The review's claim (fixed) is right for the code it quotes: `torch.from_numpy(x).float()
#   .to(device)` gives a float32 batch on the learner's device (section 1).
# - Without that conversion the effect is conditional: with a float64 replay, or a learner on
#   CUDA (the recorded GPU run), the learner dies at its first update; with a float32 replay
#   and a CPU learner, `torch.from_numpy` alone works (section 1).
# - The danger is not the exception but its silence: a learner process that dies leaves an
#   actor that looks busy. Watch the children (`System` re-raises their errors), or the run
#   reads as "no learning".
#
# `.float()` hard-codes float32; converting to the model's own dtype and device, as the kit
# does, also holds for a float64 or half-precision model.

# %%
print(notebook.verdict("batch_to_device", root="../data"))

# %% [markdown]
# ## 6 · Try it
# Fix on and fix off side by side, one seed each, float64 replay, inline (under 15 s on 2 cores): on the
# left the learner's update count, on the right the learning curves.

# %%
toggle = notebook.FixToggle(
    "batch_to_device", diagnostic="learner.update", ylabel="learner updates",
    see="with the fix off the learner dies at its first update (the title says so, and its "
        "update line never starts) and the return stays at the random policy's; with it on "
        "the updates climb and the return starts to rise.",
    steps=2_500, overrides={"learning_starts": 200, "log_interval": 20})
_ = toggle.run()
toggle
