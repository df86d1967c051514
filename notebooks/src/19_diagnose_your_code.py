# %% [markdown]
# # 14 · Diagnose your own code
#
# The other notebooks switch each issue on and off inside mplearn. Your code is not mplearn.
# This notebook takes a small actor/learner script written the way such scripts get written
# (plain PyTorch, the plan's shape: a shared model with online and target networks and an
# Adam optimizer, a learner that trains a private copy and publishes it, epsilon decayed by
# the learner, an `act` helper with dropout and noisy layers) and finds what is wrong with it
# using only `mplearn.diagnose.checks`, which work on plain modules, optimizers and tensors.
#
# The script is `mplearn/diagnose/buggy_learner.py`. It has six bugs, planted on purpose,
# each one the catalogue describes. We pretend not to know where they are.

# %%
%matplotlib inline
import inspect

import torch

from mplearn.diagnose import checks
from mplearn.diagnose import buggy_learner as script

# Several processes share this machine's cores: one torch thread each (notebook 12 shows why).
torch.set_num_threads(1)
SOURCE = inspect.getsource(script).splitlines()


def show(bug: str, lines: int = 7) -> None:
    """Print the script's lines at the site of ``bug`` (its ``# BUG(...)`` comment)."""
    start = next(i for i, line in enumerate(SOURCE) if f"# BUG({bug})" in line)
    print("\n".join(SOURCE[start:start + lines]))


# %% [markdown]
# ## 1 · Run it
#
# The script's main loop (`script.run`): 200 env steps of random actions to fill the replay,
# then 200 steps of act, store and train, with a publish and an epsilon decay every 10 steps
# and a target copy every 50.

# %%
# NBVAL_CHECK_OUTPUT
try:
    script.run(steps=200)
except RuntimeError as error:
    crash = error
print(f"{type(crash).__name__}: {crash}")
print(checks.explain_error(crash))

# %% [markdown]
# The learner died at its first update. In a multiprocess system that happens in a learner
# process; if nobody watches it, the actor goes on acting with its initial weights and the run
# just looks like "no learning". `checks.explain_error` maps the error text to the issue
# (`batch_to_device`): the replay holds numpy's default float64, and `torch.from_numpy` keeps
# it.

# %%
show("float64_batch")

# %% [markdown]
# ## 2 · It runs. Is it right?
#
# With that line repaired the script runs to the end without a complaint. That proves little.
# `script.diagnose` shows where the checks go in a script like this one: around one more learner
# step, a publish and an epsilon decay. It runs eight checks: the batch against the model, the
# optimizer's parameters, the weight change over the step, the modules' modes, the gradient of
# the noise scales, the gradient norm stepped with, the published copy against the trainer, and
# what the shared model shares.

# %%
shared, learner, replay = script.run(steps=200, fixed={"float64_batch"})
findings = script.diagnose(learner, replay)
print(checks.report(findings))

# %%
# NBVAL_CHECK_OUTPUT
print("issues found:", sorted({f.issue for f in findings if not f.ok}))

# %% [markdown]
# Five more. One at a time, with what each check measured:
#
# **`optimizer_binding`**: the optimizer holds none of the trained network's parameters, and
# the update moved no weight. The learner's copy kept the shared model's optimizer: gradients
# land on the copy, and the optimizer steps the shared parameters, which have none.

# %%
show("optimizer", 9)

# %% [markdown]
# **`train_mode`**: the dropout and noisy layers of the trained network are in eval mode, and
# the noise scales (sigma) get no gradient. The train copy was made after `act()`, which calls
# `eval()` and returns early when it explores, and `train_step` never calls `train()`.

# %%
print(inspect.getsource(script.Model.act))
show("eval_mode", 4)

# %% [markdown]
# **`grad_clip`**: the optimizer stepped with a gradient whose norm is far above the limit of
# 1.0. The clipping line is commented out.

# %%
show("no_clipping", 5)

# %% [markdown]
# **`target_sync`**: right after a publish, the shared model differs from the trainer: the
# stale tensors include every buffer (here the noise samples), and, once the online network
# learns, the shared target too. The publish copies the online network's parameters only.

# %%
show("publish_parameters", 8)

# %% [markdown]
# **`shared_epsilon`**: every tensor of the shared model is in shared memory, but the model
# also carries a plain number attribute, `epsilon`. That check is static; what it means shows
# only across a process boundary. An actor process started before training (as the plan starts
# it), then 50 epsilon decays in the learner:

# %%
# NBVAL_CHECK_OUTPUT
seen = script.epsilon_seen_by_actor(learner, decays=50)
print({k: None if v is None else round(v, 4) for k, v in seen.items()})

# %% [markdown]
# The actor process holds the attribute as it was when the process started (pickled with the
# model), and nobody writes the shared value it could have read. `share_memory()` shares tensor
# storages only.

# %%
show("epsilon_attribute", 6)

# %% [markdown]
# ## 3 · Repair, one bug at a time
#
# Each repair removes exactly the finding it was for, and nothing else changes:

# %%
# NBVAL_CHECK_OUTPUT
repaired = {"float64_batch"}
for bug in ("optimizer", "eval_mode", "no_clipping", "publish_parameters", "epsilon_attribute"):
    repaired.add(bug)
    _, learner, replay = script.run(steps=200, fixed=repaired)
    left = sorted({f.issue for f in script.diagnose(learner, replay) if not f.ok})
    print(f"repaired {bug:<19} -> issues left: {left}")

# %% [markdown]
# And the repaired actor reads the learner's epsilon:

# %%
# NBVAL_CHECK_OUTPUT
seen = script.epsilon_seen_by_actor(learner, decays=50)
print({k: None if v is None else round(v, 4) for k, v in seen.items()})

# %% [markdown]
# ## 4 · The verdict
#
# Every check on the repaired script:

# %%
findings = script.diagnose(learner, replay)
print(checks.report(findings))

# %%
# NBVAL_CHECK_OUTPUT
print(f"{sum(f.ok for f in findings)} of {len(findings)} checks pass")

# %% [markdown]
# Six bugs, six findings, each from a check that needs nothing but the objects a script
# already has. None of the six stopped the script except the float64 batch; the other five
# let it run to the end. What each one does to learning is measured in its own notebook:
# `02_stale_optimizer_state` (nothing learns), `04_train_mode`, `05_epsilon_across_processes`,
# `06_gradient_clipping`, `03_target_network_sync` and `07_device_and_dtype`.
#
# ## 5 · Try it
#
# Choose which bugs to repair and rerun the checks. In your own script, put the same calls
# where `script.diagnose` puts them:
#
# ```python
# from mplearn import checks
# print(checks.batch_matches(batch_tensors, trainer.qnetwork_local))   # before the step
# print(checks.optimizer_bound_to(trainer.optimizer, trainer.qnetwork_local))
# watch = checks.WeightChange(trainer.qnetwork_local)
# ...                                                                   # your train step
# print(watch.check(), checks.module_modes(trainer, "train"),
#       checks.noisy_sigma_gradients(trainer.qnetwork_local),
#       checks.gradient_clipped(trainer.qnetwork_local, max_norm), sep="\n")
# ...                                                                   # your publish
# print(checks.target_in_sync(shared_model, trainer), checks.shared_memory(shared_model))
# ```
#
# and wrap the learner's main loop so that an exception is printed with
# `checks.explain_error(error)`.

# %%
REPAIRED = {"float64_batch", "optimizer"}  # any of: script.BUGS
_, my_learner, my_replay = script.run(steps=200, fixed=REPAIRED)
print(checks.report(script.diagnose(my_learner, my_replay)))
