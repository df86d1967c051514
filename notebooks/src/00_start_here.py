# %% [markdown]
# # 00 · Start here
#
# **mplearn** is a kit for seeing, measured, what goes wrong in multiprocess actor/learner deep
# reinforcement learning with PyTorch. It re-implements a plan that trains IQN agents with one
# actor process and one learner process per agent, sharing CPU models through shared memory,
# and it turns every "learning issue" that the plan's review listed (and several it missed)
# into a switch you can flip.
#
# For each issue a notebook shows:
# 1. **the claim** the review made;
# 2. **the mechanism** in a tiny exact experiment, fix on and off;
# 3. **the effect on learning**, fixed vs broken over paired seeds, live and at full length;
# 4. **the diagnostic** that catches it in your own code;
# 5. **the verdict**: real, conditional (and on what), or no effect, with the numbers.
#
# The review was right about some issues, wrong about others, and right only under conditions
# about the rest. The point of the kit is that you do not have to take anyone's word for which
# is which.

# %% [markdown]
# ## Check your set-up
# The kit starts its processes with the `spawn` method on every platform (the default on macOS
# and Windows, and the only one that is safe with threads and notebooks), and runs every worker
# with one torch thread: several processes at torch's default thread count fight over the
# cores (notebook 12 measures by how much).

# %%
from mplearn.lab import notebook

for key, value in notebook.setup_report().items():
    print(f"{key:>30}: {value}")

# %% [markdown]
# ## How to use the kit
# - **Notebooks** run top to bottom (Kernel → Restart & Run All) in about a minute each. Each
#   runs a short live experiment and plots the full-length results stored in `data/`.
# - **Command line**: `python -m mplearn run --broken shared_epsilon` trains with one issue
#   switched on; `python -m mplearn check NAME` runs an issue's mechanism experiment;
#   `python -m mplearn issues` prints the catalogue below; `python -m mplearn reproduce NAME`
#   regenerates an issue's results in `data/`.
# - **Your own code**: `mplearn.diagnose.checks` has diagnostics that take plain `nn.Module`s and
#   optimizers; `mplearn.diagnose.monitor.Monitor` watches a running system (notebook 14).
#
# Every issue is one field of the `Fixes` dataclass, read at exactly one place in the package,
# where the correct and the broken line stand side by side:

# %%
# NBVAL_CHECK_OUTPUT
import subprocess

sites = subprocess.run(["grep", "-rn", "# FIX(", "../mplearn", "--include=*.py"],
                       capture_output=True, text=True).stdout
for line in sorted(sites.splitlines()):
    path, number, text = line.split(":", 2)
    if text.strip().startswith("# FIX("):  # a marker, not a mention in a docstring
        print(f"{path.removeprefix('../'):<20} {text.strip()[:76]}")

# %% [markdown]
# ## A map of the notebooks
# | notebook | what it is about |
# | --- | --- |
# | 01_the_system | the processes and what they share; a run of the fixed system; a dashboard |
# | 02_stale_optimizer_state | recreate the optimizer after a weight copy? |
# | 03_target_network_sync | is the shared target published? when does it matter? |
# | 04_train_mode | `train()` in the learner: which layers care |
# | 05_epsilon_across_processes | a value set as an attribute does not cross processes |
# | 06_gradient_clipping | clipping with a quantile Huber loss |
# | 07_device_and_dtype | float64 batches, CPU batches for a CUDA model, a dead learner |
# | 08_step_counter | a counter never incremented, or never initialised |
# | 09_duplicate_target_updates | two target updates per period |
# | 10_initial_model_state | acting before the first weight pull |
# | 11_shared_memory_pitfalls | replay pickled by value, torn reads, a replay race, seeding, truncation |
# | 12_performance | threads, the update-to-data ratio, async speed against its bound |
# | 13_multi_agent | the treasure hunt: several agents, one world |
# | 14_diagnose_your_code | find the bugs in a plain PyTorch actor/learner with the checks |
#
# ## The catalogue
# Every issue, the notebook about it, and its verdict (measured in `data/`; "not yet measured"
# means no full-length result backs a verdict yet).

# %%
print(notebook.catalogue_table())
