"""Stale optimizer state: the catalogue entry, the mechanism check, the scenarios behind data/ and
the experiments its notebook runs.

The stale-optimizer claim and its variants, each as a tiny exact experiment on plain modules.

The review says: weights copied into a model after its optimizer was created leave "momentum for
random weights", so recreate the optimizer. Four cases, measured here:

* ``recreate_after_copy``: the review's case. Adam's state is created lazily at the first
  ``step()`` and ``load_state_dict`` copies values into the same Parameter objects, so training
  with the old optimizer and with a recreated one is identical, bit for bit.
* variant A, optimizer bound to other parameters: the ``optimizer_binding`` switch
  (``mplearn.mechanisms.check_optimizer_binding``).
* ``moments_across_replacement`` (variant B): moments and step count kept while the weights are
  replaced (a resume from a checkpoint): the first updates follow the old run's gradients.
* ``move_after_state`` (variant C): ``Module.to()`` after the optimizer has state; the state stays
  where it was and the next ``step()`` fails (CUDA: device; the same on CPU with a dtype).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from mplearn.core.fixes import Fixes
from mplearn.issues import measures
from mplearn.issues.base import (
    BASE,
    CARTPOLE_MARGIN,
    CheckResult,
    Issue,
    Manipulation,
    Scenario,
    fix_on_and_off,
    learner_with_rows,
)

ENTRY = Issue(
    "optimizer_binding", "Stale optimizer state",
    claim="Copying weights into a model after its optimizer exists leaves the optimizer "
          "with momentum for the old random weights, so the optimizer must be recreated "
          "after every copy; conditional on create_shared_model copying from a source.",
    mechanism="Adam creates its state lazily at the first step() and load_state_dict "
              "copies in place into the parameters the optimizer holds, so a weight copy "
              "before training is harmless. What does break: an optimizer bound to other "
              "Parameter objects (a train copy that keeps the shared model's optimizer: "
              "gradients land on the copy, Adam steps parameters whose .grad is None), and "
              "moments kept while the weights are replaced.",
    where="the learner's train copy (copy path), resume from the shared model",
    symptom="the trainer's weights never change; loss pattern flat; return stays at the "
            "random-policy level",
    diagnostic="checks.optimizer_bound_to(optimizer, model); checks.WeightChange(model); "
               "checks.optimizer_state_device(optimizer); Monitor: shared weights unchanged "
               "while the learner updates",
    notebook="02_stale_optimizer_state")


def check() -> CheckResult:
    def experiment(fixes: Fixes) -> float:
        config = BASE.replace(learner_path="copy", fixes=fixes)
        with learner_with_rows(config) as learner:
            before = {k: v.clone() for k, v in learner.model.qnetwork_local.state_dict().items()}
            for _ in range(10):
                learner.update()
            after = learner.model.qnetwork_local.state_dict()
            return max((after[k] - before[k]).abs().max().item() for k in before)

    return fix_on_and_off(
        "optimizer_binding", "max |change| of the trainer's weights over 10 updates",
        experiment, lambda change: change == 0.0)


def weight_change(record: dict) -> float | None:
    """The largest change of the trained weights between two learner records."""
    return measures.largest(record, "learner", "weight_change")


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "optimizer_binding",
        "The train copy keeps the shared model's optimizer: does anything learn? It bites only "
        "on the copy path (the plan's accelerator path), so both variants train a copy.",
        "inline", overrides={"learner_path": "copy"},
        margin=CARTPOLE_MARGIN,
        manipulation=Manipulation(
            "largest change of the trained weights between learner records (0: never moved)",
            weight_change, lambda change: change == 0.0),
        diagnostics=("learner.loss", "learner.mean_q", "learner.weight_change")),
)



# --- the experiments its notebook runs --------------------------------------------------------

def _regression(seed: int, n: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    w = torch.randn(8, 1, generator=g)
    return x, torch.sin(x @ w)


def _net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 1))


def _train(net: nn.Module, optimizer: torch.optim.Optimizer, data, steps: int) -> list[float]:
    x, y = data
    losses = []
    for _ in range(steps):
        loss = nn.functional.mse_loss(net(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def recreate_after_copy(steps: int = 50, lr: float = 1e-2) -> float:
    """Max |weight difference| after ``steps`` updates between (a) optimizer created, then
    weights copied in, and (b) weights copied in, then the optimizer recreated. 0.0: no effect."""
    source, data = _net(1), _regression(0)
    kept = _net(0)
    kept_optimizer = torch.optim.Adam(kept.parameters(), lr=lr)
    kept.load_state_dict(source.state_dict())  # the copy the review worries about
    recreated = _net(0)
    recreated.load_state_dict(source.state_dict())
    recreated_optimizer = torch.optim.Adam(recreated.parameters(), lr=lr)
    _train(kept, kept_optimizer, data, steps)
    _train(recreated, recreated_optimizer, data, steps)
    return max((a - b).abs().max().item()
               for a, b in zip(kept.parameters(), recreated.parameters(), strict=True))


@dataclass(frozen=True)
class ReplacementResult:
    kept: list[float]  # losses after the replacement, optimizer state kept
    fresh: list[float]  # ... optimizer recreated
    first_step_cosine: float  # cosine(first update with kept state, first update fresh)

    def gap(self, step: int) -> float:
        """Loss with the kept state minus loss with a fresh optimizer, ``step`` updates in."""
        return self.kept[step] - self.fresh[step]


def moments_across_replacement(pretrain: int = 300, steps: int = 100,
                               lr: float = 1e-2) -> ReplacementResult:
    """Variant B: train on one task, then replace the weights (a checkpoint of another run) and
    train on a second task, keeping the optimizer's moments or recreating it."""
    net = _net(0)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    _train(net, optimizer, _regression(0), pretrain)  # moments now describe this run
    checkpoint = _net(2).state_dict()
    data = _regression(3)
    results, first = {}, {}
    for name in ("kept", "fresh"):
        model = copy.deepcopy(net)
        model.load_state_dict(checkpoint)
        if name == "kept":
            opt = torch.optim.Adam(model.parameters(), lr=lr)
            opt.load_state_dict(optimizer.state_dict())  # the old run's moments and step count
        else:
            opt = torch.optim.Adam(model.parameters(), lr=lr)
        before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
        losses = _train(model, opt, data, 1)
        first[name] = torch.cat([p.detach().flatten() for p in model.parameters()]) - before
        results[name] = losses + _train(model, opt, data, steps - 1)
    cosine = nn.functional.cosine_similarity(first["kept"], first["fresh"], dim=0).item()
    return ReplacementResult(results["kept"], results["fresh"], cosine)


def move_after_state(target: str = "float64") -> str:
    """Variant C: take one step, then move the module (``"cuda"`` or a dtype such as
    ``"float64"``) and step again. Returns the error the second step raised, or "" if none."""
    net = _net(0)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    x, y = _regression(0)
    _train(net, optimizer, (x, y), 1)  # Adam's state now exists, on the CPU in float32
    to = torch.device(target) if target in ("cuda", "mps", "cpu") else getattr(torch, target)
    net.to(to)
    x, y = (t.to(to) for t in (x, y))
    try:
        _train(net, optimizer, (x, y), 1)
    except RuntimeError as e:
        return str(e).splitlines()[0]
    return ""
