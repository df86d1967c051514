"""Missing train mode: the catalogue entry, the mechanism check, the scenarios behind data/ and the
experiments its notebook runs.

Train and eval mode, measured on plain modules: what the mode changes, and the batch-norm traps.

``train()``/``eval()`` change only layers whose forward pass depends on the mode. NoisyLinear is
the ``train_mode`` switch (``mplearn.mechanisms.check_train_mode``); batch norm, which the kit's
network does not use, sets the traps the other way round:

* ``act_with_batch_of_one``: an actor left in train mode, acting on one observation, raises.
* ``coupled_actions``: an actor in train mode acting for several agents in one batch normalises
  with that batch's statistics, so one agent's output depends on the others' observations.
* ``train_in_eval_mode``: a learner left in eval mode never updates the running statistics and
  normalises with their initial values (mean 0, variance 1), i.e. not at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from mplearn.core.config import Config
from mplearn.core.fixes import Fixes
from mplearn.core.weights import (
    build_network,
)
from mplearn.envs import env_spec
from mplearn.issues import measures
from mplearn.issues.base import (
    BASE,
    CARTPOLE_MARGIN,
    DEEP_SEA_MARGIN,
    NOISY_ONLY,
    CheckResult,
    Condition,
    Issue,
    Manipulation,
    Scenario,
    fix_on_and_off,
    learner_with_rows,
)

ENTRY = Issue(
    "train_mode", "Missing train mode",
    claim="train_step must call train() on both networks.",
    mechanism="train()/eval() change only mode-dependent layers (dropout, batch norm, "
              "noisy layers). A learner left in eval mode trains NoisyLinear layers on "
              "their means only: sigma gets no gradient and training sees no noise.",
    where="networks with noisy layers, dropout or batch norm; harmless for plain MLPs",
    symptom="sigma parameters frozen; with exploration by noise only, no exploration",
    diagnostic="checks.module_modes(model, 'train'); checks.noisy_sigma_gradients(model) "
               "after backward(); Monitor: the learner's recorded mode",
    notebook="04_train_mode")

# What the monitored demo run (lab.notebook.demo_config) needs for this issue to act:
# mode-dependent layers.
DEMO = dict(noisy=True)


def check() -> CheckResult:
    def experiment(fixes: Fixes) -> float:
        config = BASE.replace(noisy=True, fixes=fixes)
        with learner_with_rows(config) as learner:
            learner.update()
            sigmas = [layer.weight_sigma for layer in learner.model.qnetwork_local.noisy_layers()]
            return sum(0.0 if s.grad is None else s.grad.norm().item() for s in sigmas)

    return fix_on_and_off("train_mode", "gradient norm of the NoisyLinear sigma parameters",
                 experiment, lambda norm: norm == 0.0)


def sigma_change(record: dict) -> float | None:
    """The largest change of any NoisyLinear sigma over the run (0: sigma never trained)."""
    return (measures.extra(record, "sigma") or {}).get("change")


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "train_mode",
        "A learner left in eval mode trains NoisyLinear layers on their means only (sigma "
        "frozen, no noise in training). It matters only with noisy layers, so exploration is "
        "by noise alone (epsilon 0): CartPole, and the DeepSea chain of size 12 (4,096 paths, "
        "about 2,000 episodes in a run: acting noise that stops adapting can plausibly matter "
        "there; size 8 was solved by both arms).",
        "inline", overrides=NOISY_ONLY,
        conditions=(Condition("CartPole"),
                    Condition("DeepSea 12", {"env_id": "mplearn/DeepSea-v0",
                                             "env_kwargs": {"size": 12}}, DEEP_SEA_MARGIN)),
        margin=CARTPOLE_MARGIN,
        manipulation=Manipulation(
            "largest change of a NoisyLinear sigma over the run (0: sigma never trained)",
            sigma_change, lambda change: change == 0.0),
        diagnostics=("learner.loss", "learner.train_mode"), extras=("sigma",)),
)



# --- the experiments its notebook runs --------------------------------------------------------

OFFSET, SCALE = 50.0, 20.0  # raw features far from mean 0, variance 1 (positions, counts)


def _bn_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 2))


def _data(seed: int, n: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 8, generator=g)
    w = torch.randn(8, 2, generator=g)
    return z * SCALE + OFFSET, torch.tanh(z @ w)  # raw inputs, a target of the normalised ones


@torch.no_grad()
def kit_network_mode_difference(noisy: bool) -> float:
    """Max |output in train mode - output in eval mode| of the kit's IQN network (CartPole
    shapes, default size), same input and taus: 0 for a plain MLP."""
    config = Config(noisy=noisy)
    spec = env_spec(config.env_id)
    torch.manual_seed(0)
    net = build_network(spec, config)
    obs, taus = torch.randn(16, *spec.obs_shape), torch.rand(16, config.num_tau_samples)
    return (net.train()(obs, taus) - net.eval()(obs, taus)).abs().max().item()


def act_with_batch_of_one() -> str:
    """The error an actor in train mode gets on one observation ("" if none)."""
    net = _bn_net().train()
    try:
        net(_data(0, n=1)[0])
    except ValueError as e:
        return str(e).splitlines()[0]
    return ""


@torch.no_grad()
def coupled_actions() -> dict[str, float]:
    """Per mode: max |change| of agent 0's output when only agent 1's observation changes
    (two agents acting in one batch)."""
    net = _bn_net()
    x, _ = _data(0, n=2)
    other = x.clone()
    other[1] += SCALE  # agent 1 moves; agent 0's observation is the same
    out = {}
    for mode in ("train", "eval"):
        net.train(mode == "train")
        out[mode] = (net(x)[0] - net(other)[0]).abs().max().item()
    return out


@dataclass(frozen=True)
class ModeRun:
    mode: str  # the mode the learner trained in
    first_loss: float
    final_loss: float  # mean of the last 10 steps
    running_mean: float  # max |running mean| of the batch-norm layer after training
    batches_tracked: int

    def __str__(self) -> str:
        return (f"trained in {self.mode:<5} mode: loss {self.first_loss:7.3g} at step 1, "
                f"{self.final_loss:.3f} at the end; running mean max "
                f"{self.running_mean:5.1f}, batches tracked {self.batches_tracked}")


def train_in_eval_mode(steps: int = 200, lr: float = 1e-2) -> list[ModeRun]:
    """The same regression (raw inputs around 50 +- 20) trained with the batch-norm layer in
    train mode and left in eval mode; same initial weights, same mini-batches."""
    x, y = _data(0)
    runs = []
    for mode in ("train", "eval"):
        net = _bn_net()
        optimizer = torch.optim.Adam(net.parameters(), lr=lr)
        g = torch.Generator().manual_seed(1)
        losses = []
        net.train(mode == "train")
        for _ in range(steps):
            idx = torch.randint(0, len(x), (64,), generator=g)
            loss = nn.functional.mse_loss(net(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        bn = net[1]
        runs.append(ModeRun(mode, losses[0], sum(losses[-10:]) / 10,
                            bn.running_mean.abs().max().item(), int(bn.num_batches_tracked)))
    return runs


# --- noise scales: what a run's sigma extra holds ---------------------------------------------

def sigma_rows(per_variant: dict[str, list], per_seed: bool = True) -> str:
    """The mean |sigma| of the noisy layers at the start and the end of each run, and the
    largest change of any sigma: one line per variant and seed, or (``per_seed=False``) per
    variant with the range over its seeds. ``per_variant`` maps a variant to its per-seed
    ``sigma`` extras (one entry per phase, each one per agent), as
    ``IssueResults.extras["sigma"]`` holds them."""
    head = "seed" if per_seed else "seeds"
    lines = [f"  {'variant':<20}{head:>6}{'mean |sigma| start':>20}{'end':>18}"
             f"{'largest change':>18}"]
    for variant, seeds in per_variant.items():
        rows = [phases[0][0] for phases in seeds if phases]  # first phase, agent 0
        if per_seed:
            lines += [f"  {variant:<20}{seed:>6}{s['start']:>20.4f}{s['end']:>18.4f}"
                      f"{s['change']:>18.4f}" for seed, s in enumerate(rows)]
        elif rows:
            start, end, change = (_span([r[k] for r in rows]) for k in ("start", "end", "change"))
            lines.append(f"  {variant:<20}{len(rows):>6}{start:>20}{end:>18}{change:>18}")
    return "\n".join(lines)


def _span(values: list[float]) -> str:
    low, high = min(values), max(values)
    return f"{low:.4f}" if low == high else f"{low:.4f} to {high:.4f}"


def live_sigmas(live) -> dict[str, list]:
    """``sigma_rows``'s input from a ``notebook.Live`` run."""
    return {v: [r["extras"].get("sigma") for r in recs] for v, recs in live.records.items()}


def steps_to_reach(results, level: float, condition: str | None = None) -> str:
    """Per variant of an ``IssueResults`` (those of ``condition`` only, if given): for each
    seed, the first env step (on the results' grid) at which the running return (mean of the
    last 20 episodes) reached ``level``."""
    step = int(results.grid[1] - results.grid[0]) if len(results.grid) > 1 else 0
    lines = [f"first env step at which the running return reached {level:g} (grid of {step}), "
             f"per seed:"]
    for variant, curves in results.curves.items():
        if condition is not None and not variant.endswith(condition):
            continue
        firsts = [f"{int(results.grid[np.argmax(c >= level)]):,}" if (c >= level).any()
                  else "never" for c in curves]
        lines.append(f"  {variant:<20}" + ", ".join(firsts))
    return "\n".join(lines)
