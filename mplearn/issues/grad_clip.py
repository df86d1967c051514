"""Gradient clipping: the catalogue entry, the mechanism check, the scenarios behind data/ and the
experiments its notebook runs.

Why gradient clipping does little here, measured on plain modules, and the data's gradient
diagnostics summarised.

* ``per_element_gradients``: the quantile Huber loss (kappa = 1) bounds the gradient of every
  (quantile, target) pair: beyond |u| > kappa it is a constant, not the error. The same loss
  with a squared error grows with the error, hence with the reward scale.
* ``adam_step_scale``: Adam divides by the running RMS of the gradient, so multiplying every
  gradient by one constant (a clip that always bites by the same factor) leaves its steps
  unchanged; clipping changes Adam's steps only through how much it scales one step against
  another.
* ``gradient_summary``: the pre-clip gradient norms and clipped fractions the learners recorded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from mplearn.core import iqn
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
    CheckResult,
    Condition,
    Issue,
    Manipulation,
    Scenario,
    fix_on_and_off,
    learner_with_rows,
)

ENTRY = Issue(
    "grad_clip", "Gradient clipping",
    claim="Gradients are clipped to norm 1.0 before the optimizer step (marked fixed).",
    mechanism="The quantile Huber loss with kappa = 1 bounds each element's gradient, so "
              "clipping matters less than for an MSE loss; it can matter with large reward "
              "scales or high learning rates. The origin had it commented out.",
    where="expected with large rewards or high learning rates; measured on CartPole, the "
          "clip acts on nearly every update and at lr 1e-2 it slowed learning",
    symptom="without it: gradient-norm spikes; with it at a low limit: smaller steps",
    diagnostic="checks.gradient_clipped(model, max_norm) before step(); pre-clip norm "
               "and fraction clipped in the learner records; Monitor: norm stepped with",
    notebook="06_gradient_clipping")

# What the monitored demo run (lab.notebook.demo_config) needs for this issue to act: gradients
# above the limit.
DEMO = dict(max_grad_norm=0.01)


def check() -> CheckResult:
    def experiment(fixes: Fixes) -> float:
        config = BASE.replace(max_grad_norm=0.1, fixes=fixes)
        with learner_with_rows(config) as learner:
            learner.update()
            grads = [p.grad for p in learner.model.qnetwork_local.parameters()
                     if p.grad is not None]
            return torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item()

    return fix_on_and_off(
        "grad_clip", "norm of the gradient the optimizer stepped with (limit 0.1)",
        experiment, lambda norm: norm > 0.1 * (1 + 1e-4))


def applied_norm(record: dict) -> float | None:
    """The largest gradient norm the optimizer stepped with."""
    return measures.largest(record, "learner", "grad_norm_applied_max")


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "grad_clip",
        "Clipping at norm 1.0 removed. The quantile Huber loss bounds each element's "
        "gradient, and Adam rescales steps anyway; the default learning rate and a 10x higher "
        "one (the stress case).",
        "inline",
        conditions=(Condition("lr 1e-3"), Condition("lr 1e-2", {"learning_rate": 1e-2})),
        margin=CARTPOLE_MARGIN,
        manipulation=Manipulation(
            "largest gradient norm stepped with (the limit is 1.0)", applied_norm,
            lambda norm: norm > 1.0 * (1 + 1e-4)),
        diagnostics=("learner.grad_norm", "learner.clip_fraction", "learner.loss")),
)



# --- the experiments its notebook runs --------------------------------------------------------

SCALES = (1.0, 10.0, 100.0, 1000.0)


def quantile_squared_loss(quantiles: torch.Tensor, taus: torch.Tensor,
                          target: torch.Tensor) -> torch.Tensor:
    """``iqn.quantile_huber_loss`` with the Huber term replaced by u^2 / 2 (no bound): [B]."""
    u = target.unsqueeze(1) - quantiles.unsqueeze(2)  # [B, N, N']
    weight = (taus.unsqueeze(2) - (u.detach() < 0).to(u.dtype)).abs()
    return (weight * 0.5 * u.pow(2)).mean(dim=2).sum(dim=1)


LOSSES = {"quantile Huber (kappa 1)": lambda q, t, z: iqn.quantile_huber_loss(q, t, z, 1.0),
          "quantile squared error": quantile_squared_loss}


@dataclass(frozen=True)
class GradientRow:
    scale: float  # targets ~ scale * N(0, 1)
    per_element: dict[str, float]  # loss -> max |d loss / d quantile|
    parameters: dict[str, float]  # loss -> gradient norm over the network's parameters


def per_element_gradients(scales: tuple[float, ...] = SCALES, seed: int = 0) -> str:
    """An IQN network (CartPole shapes, default size) and a batch of 64 observations; targets
    drawn as ``scale * N(0, 1)``: per loss, the largest gradient of one quantile and the
    gradient norm over the parameters (what ``clip_grad_norm_`` sees)."""
    config = Config()
    spec = env_spec(config.env_id)
    torch.manual_seed(seed)
    net = build_network(spec, config)
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(64, *spec.obs_shape, generator=g)
    taus = torch.rand(64, config.num_tau_samples, generator=g)
    noise = torch.randn(64, config.num_tau_prime_samples, generator=g)
    rows = []
    for scale in scales:
        per_element, parameters = {}, {}
        for name, loss_fn in LOSSES.items():
            net.zero_grad(set_to_none=True)
            quantiles = net(obs, taus)[:, :, 0]  # action 0: [B, N]
            quantiles.retain_grad()
            loss = loss_fn(quantiles, taus, scale * noise).mean()
            loss.backward()
            # Per element of the sum over N and the batch mean: undo the 1/B of .mean().
            per_element[name] = (quantiles.grad.abs().max() * quantiles.shape[0]).item()
            parameters[name] = nn.utils.clip_grad_norm_(net.parameters(), math.inf).item()
        rows.append(GradientRow(scale, per_element, parameters))
    huber, squared = LOSSES
    lines = [f"{'':>12} | {'max |d loss / d quantile|':^29} | {'parameter gradient norm':^29}",
             f"{'target scale':>12} | {'Huber':>13} {'squared':>15} | {'Huber':>13} "
             f"{'squared':>15}"]
    for r in rows:
        lines.append(f"{r.scale:>12g} | {r.per_element[huber]:>13.3f} "
                     f"{r.per_element[squared]:>15.3f} | {r.parameters[huber]:>13.3f} "
                     f"{r.parameters[squared]:>15.3f}")
    return "\n".join(lines)


def adam_step_scale(factor: float = 0.1, steps: int = 50,
                    lr: float = 1e-2) -> dict[str, tuple[float, float]]:
    """Per optimizer (Adam, plain SGD): (max |weight difference| after ``steps`` updates between
    training with the gradients as they are and with every gradient times ``factor``, max
    |weight change| of the unscaled run: how far training moved the weights at all)."""
    out = {}
    for name, make in (("Adam", lambda p: torch.optim.Adam(p, lr=lr)),
                       ("SGD", lambda p: torch.optim.SGD(p, lr=lr))):
        nets = []
        for scale in (1.0, factor):
            torch.manual_seed(0)
            net = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 1))
            initial = [p.detach().clone() for p in net.parameters()]
            optimizer = make(net.parameters())
            g = torch.Generator().manual_seed(0)
            for _ in range(steps):
                x = torch.randn(64, 8, generator=g)
                loss = nn.functional.mse_loss(net(x), x.sum(dim=1, keepdim=True).sin())
                optimizer.zero_grad()
                loss.backward()
                for p in net.parameters():
                    p.grad.mul_(scale)
                optimizer.step()
            nets.append(net)
        difference = max((a - b).abs().max().item() for a, b in
                         zip(nets[0].parameters(), nets[1].parameters(), strict=True))
        moved = max((a - b).abs().max().item() for a, b in
                    zip(nets[0].parameters(), initial, strict=True))
        out[name] = (difference, moved)
    return out


# --- the data's diagnostics --------------------------------------------------------------------

def gradient_summary(results, max_norm: float | None = None) -> str:
    """Per variant of an ``IssueResults`` with ``learner.grad_norm`` and
    ``learner.clip_fraction``: quantiles of the recorded pre-clip gradient norms (each record
    is the mean over ``log_interval`` updates) and the fraction of updates above the limit."""
    limit = max_norm or results.manifest["variants"][0]["config"]["max_grad_norm"]
    norms, fractions = (results.diagnostics[k] for k in ("learner.grad_norm",
                                                          "learner.clip_fraction"))
    lines = [f"pre-clip gradient norm (records of {_log_interval(results)} updates, all seeds) "
             f"and fraction of updates above {limit:g}:",
             f"  {'variant':<22}{'median':>8}{'90%':>8}{'99%':>8}{'max':>8}"
             f"{'above limit':>13}"]
    for variant in results.variants:
        g = np.concatenate([v for _, v in norms[variant]]) if norms[variant] else np.array([])
        f = np.concatenate([v for _, v in fractions[variant]]) if fractions[variant] \
            else np.array([])
        g, f = g[np.isfinite(g)], f[np.isfinite(f)]
        if not g.size:
            continue
        q50, q90, q99 = np.quantile(g, [0.5, 0.9, 0.99])
        lines.append(f"  {variant:<22}{q50:>8.3g}{q90:>8.3g}{q99:>8.3g}{g.max():>8.3g}"
                     f"{f.mean():>13.1%}")
    return "\n".join(lines)


def _log_interval(results) -> int:
    return results.manifest["variants"][0]["config"]["log_interval"]


def run_mean(record: dict, key: str = "clip_fraction") -> float:
    """The mean over a run's updates (agent 0) of a learner record field (``clip_fraction``:
    the fraction of updates above the limit; ``grad_norm``: the pre-clip norm): the records'
    means weighted by the updates each covers."""
    learner = record["learner"][0]
    updates = np.diff(np.concatenate([[0], np.asarray(learner["update"], dtype=float)]))
    values = np.asarray(learner[key], dtype=float)
    return float((updates * values).sum() / updates.sum()) if updates.sum() else math.nan
