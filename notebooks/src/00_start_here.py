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
# 5. **the verdict**, per condition: harmful, fix hurts, no effect, inconclusive or never
#    acted, computed from the stored runs (notebook 20 explains how to read one);
# 6. **try it**: fix on and fix off side by side in seconds (under 15 s each on a 2-core machine).
#
# The review was right about some issues, wrong about others, and right only under conditions
# about the rest. The point of the kit is that you do not have to take anyone's word for which
# is which.

# %% [markdown]
# ## Check your set-up
# The kit starts its processes with the `spawn` method on every platform (the default on macOS
# and Windows, and the only one that is safe with threads and notebooks), and runs every worker
# with one torch thread: several processes at torch's default thread count fight over the
# cores (notebook 15 measures by how much).

# %%
from mplearn.lab import notebook

for key, value in notebook.setup_report().items():
    print(f"{key:>30}: {value}")

# %% [markdown]
# ## How to use the kit
# - **Notebooks** run top to bottom (Kernel → Restart & Run All) in about a minute or two each
#   on a 2-core machine. Each runs a short live experiment and plots the full-length results
#   stored in `data/`.
# - **Command line**: `python -m mplearn run --broken shared_epsilon` trains with one issue
#   switched on; `python -m mplearn check NAME` runs an issue's mechanism experiment;
#   `python -m mplearn issues` prints the catalogue below; `python -m mplearn reproduce NAME`
#   regenerates an issue's results in `data/`.
# - **Your own code**: `mplearn.diagnose.checks` has diagnostics that take plain `nn.Module`s and
#   optimizers; `mplearn.diagnose.monitor.Monitor` watches a running system (notebook 19).
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
# | [01 the system](01_the_system.ipynb) | the processes and what they share; a run of the fixed system; a dashboard |
# | 02 to 17 | one notebook per learning issue, in catalogue order (the table below) |
# | [18 multi-agent](18_multi_agent.ipynb) | the treasure hunt: several agents, one world |
# | [19 diagnose your code](19_diagnose_your_code.ipynb) | find the bugs in a plain PyTorch actor/learner with the checks |
# | [20 how to read a verdict](20_how_to_read_a_verdict.ipynb) | what "harmful", "fix hurts", "no effect", "inconclusive" and "never acted" rest on |
#
# ## The catalogue
# Every issue, the notebook about it, and its verdict per condition, computed here from the
# runs stored in `data/`.

# %%
from IPython.display import Markdown

from mplearn.issues import all_issues

rows = ["| issue | title | notebook | verdict |", "| --- | --- | --- | --- |"]
for entry in all_issues():
    verdict = notebook.verdict(entry.name, root="../data").summary
    rows.append(f"| `{entry.name}` | {entry.title} | [{entry.notebook}]({entry.notebook}.ipynb) "
                f"| {verdict} |")
Markdown("\n".join(rows))
