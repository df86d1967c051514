"""Diagnostics for your own actor/learner code: plain ``nn.Module``s, optimizers and tensors.

Each function measures one thing and returns a ``Finding``: whether it is fine, what was
measured, and, when it is not, the learning issue it points to (``python -m mplearn issues``)
with a one-line hint. None of them needs an mplearn model::

    from mplearn.diagnose import checks
    print(checks.optimizer_bound_to(trainer.optimizer, trainer.qnetwork_local))
    print(checks.module_modes(trainer, expected="train"))

``mplearn.diagnose.monitor.Monitor`` applies the same ideas to a running ``System``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class Finding:
    issue: str  # the learning issue this check is about (a Fixes field name)
    ok: bool
    measured: str  # what was measured, with the numbers
    hint: str = ""  # one line: what to do, when not ok

    def __str__(self) -> str:
        status = "ok" if self.ok else "PROBLEM"
        line = f"[{status}] {self.issue}: {self.measured}"
        return line if self.ok or not self.hint else f"{line}\n    hint: {self.hint}"


def report(findings: Sequence[Finding]) -> str:
    """Problems first, one block per finding."""
    return "\n".join(str(f) for f in sorted(findings, key=lambda f: f.ok))


# --- optimizer --------------------------------------------------------------------------------

def optimizer_bound_to(optimizer: torch.optim.Optimizer, model: nn.Module) -> Finding:
    """Every parameter the optimizer steps ``is`` a trainable parameter of ``model``, and the
    other way round."""
    stepped = {id(p) for group in optimizer.param_groups for p in group["params"]}
    trained = {id(p) for p in model.parameters() if p.requires_grad}
    foreign, missing = len(stepped - trained), len(trained - stepped)
    ok = foreign == 0 and missing == 0
    return Finding(
        "optimizer_binding", ok,
        f"{len(stepped & trained)} of the model's {len(trained)} trainable parameters are in the "
        f"optimizer; {foreign} optimizer parameters belong to something else",
        "" if ok else "create the optimizer from the parameters of the model you train "
        "(after copying or moving it): make_optimizer(train_copy.parameters())")


class WeightChange:
    """Largest absolute change of any parameter between two ``measure()`` calls: zero after an
    optimizer step means nothing is learning (an optimizer bound to other parameters)."""

    def __init__(self, model: nn.Module):
        self.model = model
        self._last = self._snapshot()

    def _snapshot(self) -> list[torch.Tensor]:
        return [p.detach().clone() for p in self.model.parameters()]

    def measure(self) -> float:
        now = self._snapshot()
        change = max(((a - b).abs().max().item() for a, b in zip(now, self._last, strict=True)),
                     default=0.0)
        self._last = now
        return change

    def check(self, updates: int = 1) -> Finding:
        """Call after ``updates`` optimizer steps since the last measure."""
        change = self.measure()
        ok = change > 0.0
        return Finding("optimizer_binding", ok,
                       f"max |weight change| over {updates} update(s): {change:.3g}",
                       "" if ok else "the optimizer steps parameters other than this model's: "
                       "check optimizer_bound_to(optimizer, model)")


def optimizer_state_device(optimizer: torch.optim.Optimizer) -> Finding:
    """Optimizer state on the device and in the dtype of its parameter (``Module.to()`` after
    the first step leaves Adam's moments behind)."""
    bad = []
    for group in optimizer.param_groups:
        for p in group["params"]:
            for key, value in optimizer.state.get(p, {}).items():
                if torch.is_tensor(value) and value.dim() > 0 and (
                        value.device != p.device or value.dtype != p.dtype):
                    bad.append(f"{key} on {value.device}/{value.dtype} for a parameter on "
                               f"{p.device}/{p.dtype}")
    return Finding("optimizer_binding", not bad,
                   "optimizer state matches its parameters" if not bad else
                   f"{len(bad)} state tensors elsewhere, e.g. {bad[0]}",
                   "" if not bad else "move the model before creating the optimizer, or "
                   "recreate the optimizer after .to()")


# --- modes, noise, gradients -------------------------------------------------------------------

def _mode_dependent(module: nn.Module) -> bool:
    """Layers whose forward pass depends on train/eval mode."""
    return isinstance(module, nn.Dropout | nn.modules.batchnorm._BatchNorm) or any(
        "sigma" in name for name, _ in module.named_parameters(recurse=False))


def module_modes(model: nn.Module, expected: str = "train") -> Finding:
    """The mode of every module whose behaviour depends on it (dropout, batch norm, noisy)."""
    want = expected == "train"
    dependent = [(name, m) for name, m in model.named_modules() if _mode_dependent(m)]
    wrong = [name or "(root)" for name, m in dependent if m.training != want]
    other = [name or "(root)" for name, m in model.named_modules() if m.training != want]
    ok = not wrong
    measured = (f"{len(dependent)} mode-dependent modules, {len(wrong)} not in {expected} mode"
                + (f" ({', '.join(wrong[:4])})" if wrong else "")
                + (f"; {len(other)} modules in all not in {expected} mode" if other else ""))
    if not dependent and other:
        measured += " (none of them changes behaviour with the mode)"
    return Finding("train_mode", ok, measured,
                   "" if ok else f"call .{expected}() on the networks at the start of the step: "
                   "an eval() ... train() pair that returned early left them in the wrong mode")


def noisy_sigma_gradients(model: nn.Module) -> Finding:
    """After ``backward()``: the gradient norm of the noise scales (parameters named *sigma*).
    None or zero: the noisy layers trained without noise (eval mode)."""
    sigmas = [(n, p) for n, p in model.named_parameters() if "sigma" in n]
    if not sigmas:
        return Finding("train_mode", True, "no noise-scale (sigma) parameters in this model")
    norm = math.sqrt(sum(0.0 if p.grad is None else p.grad.norm().item() ** 2 for _, p in sigmas))
    ok = norm > 0.0
    return Finding("train_mode", ok, f"gradient norm of {len(sigmas)} sigma parameters: {norm:.3g}",
                   "" if ok else "the noisy layers ran in eval mode: call .train() before the "
                   "loss")


def gradient_norm(model: nn.Module) -> float:
    grads = [p.grad.detach() for p in model.parameters() if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item() if grads \
        else 0.0


def gradient_clipped(model: nn.Module, max_norm: float) -> Finding:
    """After clipping (before or after ``optimizer.step()``): the gradient norm is at most
    ``max_norm``."""
    norm = gradient_norm(model)
    ok = norm <= max_norm * (1 + 1e-4)
    return Finding("grad_clip", ok, f"gradient norm stepped with: {norm:.4g} (limit {max_norm})",
                   "" if ok else "call nn.utils.clip_grad_norm_(model.parameters(), max_norm) "
                   "between backward() and step()")


# --- data ---------------------------------------------------------------------------------------

def _tensors(batch) -> dict[str, object]:
    if isinstance(batch, Mapping):
        return dict(batch)
    if hasattr(batch, "__dict__") and not torch.is_tensor(batch):
        return dict(vars(batch))
    if isinstance(batch, Sequence) and not isinstance(batch, str):
        return {str(i): x for i, x in enumerate(batch)}
    return {"batch": batch}


def batch_matches(batch, model: nn.Module) -> Finding:
    """Every floating-point tensor of ``batch`` (a tensor, a sequence, a mapping or an object
    with attributes) on the model's device and in its dtype; numpy arrays are flagged too."""
    param = next(model.parameters())
    bad = []
    for name, x in _tensors(batch).items():
        if isinstance(x, np.ndarray):
            bad.append(f"{name}: a numpy array ({x.dtype}), not a tensor")
        elif torch.is_tensor(x) and (x.device != param.device or (
                x.is_floating_point() and x.dtype != param.dtype)):
            bad.append(f"{name}: {x.device}/{x.dtype}")
    ok = not bad
    return Finding("batch_to_device", ok,
                   f"model on {param.device}/{param.dtype}; " + (
                       "every tensor of the batch matches" if ok else "mismatched: "
                       + ", ".join(bad[:4])),
                   "" if ok else "torch.as_tensor(x, device=model_device, dtype=model_dtype): "
                   "torch.from_numpy keeps float64 and the CPU")


def replay_batch(batch) -> list[Finding]:
    """A sampled replay batch: rows that were never written (all-zero observations, what a
    buffer pickled by value gives a spawned learner) and time-limit rows stored as terminal."""
    t = _tensors(batch)
    obs = np.asarray(t["obs"])
    zero = float(np.mean(~obs.reshape(len(obs), -1).any(axis=1)))
    findings = [Finding("replay_by_name", zero < 0.5,
                        f"fraction of rows with an all-zero observation: {zero:.2f}",
                        "" if zero < 0.5 else "the learner samples memory nobody wrote: the "
                        "buffer was pickled by value; re-attach shared memory by name in "
                        "__setstate__")]
    if "truncated" in t and "terminated" in t:
        truncated = np.asarray(t["truncated"], dtype=bool)
        both = int(np.sum(truncated & np.asarray(t["terminated"], dtype=bool)))
        findings.append(Finding(
            "truncation_bootstrap", both == 0,
            f"{both} of {int(truncated.sum())} time-limit rows stored as terminal",
            "" if both == 0 else "store terminated, not `terminated or truncated`: a time limit "
            "must still bootstrap"))
    return findings


# --- processes and sharing ----------------------------------------------------------------------

def shared_memory(model: nn.Module) -> Finding:
    """Every parameter and buffer in shared memory, and no plain number attributes (they are
    copied into each process once, when it starts, and never travel again)."""
    tensors = list(model.named_parameters()) + list(model.named_buffers())
    private = [n for n, t in tensors if not t.is_shared() and t.device.type == "cpu"]
    attributes = sorted(
        f"{prefix + '.' if prefix else ''}{k}" for prefix, m in model.named_modules()
        for k, v in vars(m).items()
        if isinstance(v, numbers.Number) and not isinstance(v, bool) and not k.startswith("_")
        and k not in ("training",) and k not in _init_attributes(m))
    ok = not private and not attributes
    parts = [f"{len(tensors) - len(private)} of {len(tensors)} tensors shared"]
    if attributes:
        parts.append(f"plain number attributes set after construction: {', '.join(attributes)}")
    return Finding(
        "shared_epsilon", ok, "; ".join(parts),
        "" if ok else ("share_memory() shares tensor storages only: put values other processes "
                       "read (epsilon) in an mp.Value or a shared tensor"))


def _init_attributes(module: nn.Module) -> set[str]:
    """Number attributes every instance of this class has (hyper-parameters such as
    ``in_features``): only attributes added later are suspect."""
    cls = type(module)
    if cls not in _INIT_ATTRIBUTES:
        _INIT_ATTRIBUTES[cls] = set()
    _INIT_ATTRIBUTES[cls] |= {k for k in getattr(cls, "__constants__", [])}
    return _INIT_ATTRIBUTES[cls] | _KNOWN_HYPERPARAMETERS


_INIT_ATTRIBUTES: dict[type, set[str]] = {}
_KNOWN_HYPERPARAMETERS = {"in_features", "out_features", "p", "eps", "momentum",
                          "num_features", "embedding_dim", "hidden_dim", "n_actions", "obs_dim",
                          "sigma_init", "negative_slope", "dim", "start_dim", "end_dim",
                          "padding_idx", "num_embeddings", "max_norm", "norm_type"}


def thread_count(processes: int, cores: int | None = None) -> Finding:
    """torch threads in this process against the cores shared by ``processes`` processes."""
    import os

    cores = cores or os.cpu_count() or 1
    threads = torch.get_num_threads()
    ok = threads * processes <= max(cores, processes)
    return Finding("single_thread", ok,
                   f"{threads} torch threads here x {processes} processes on {cores} cores",
                   "" if ok else "call torch.set_num_threads(1) at the start of every worker")


# --- target network -----------------------------------------------------------------------------

def target_in_sync(published: nn.Module, trained: nn.Module, atol: float = 0.0) -> Finding:
    """Right after a publish: every tensor of the published copy (parameters and buffers, both
    networks) equals the trainer's; the largest distance and the stale tensor names."""
    a, b = published.state_dict(), trained.state_dict()
    missing = sorted(set(b) - set(a))
    stale = []
    worst = 0.0
    for name in sorted(set(a) & set(b)):
        x, y = a[name], b[name]
        if not (x.is_floating_point() and y.is_floating_point()):
            continue
        d = (x.detach().cpu() - y.detach().cpu()).abs().max().item() if x.numel() else 0.0
        worst = max(worst, d)
        if d > atol:
            stale.append(name)
    ok = not stale and not missing
    names = ", ".join(stale[:3]) + (" ..." if len(stale) > 3 else "")
    return Finding(
        "target_sync", ok,
        f"max |published - trained| = {worst:.3g} over {len(a)} tensors"
        + (f"; stale: {names}" if stale else "") + (f"; missing: {missing[:3]}" if missing else ""),
        "" if ok else "publish the whole state_dict() (both networks, parameters and buffers), "
        "not zip(shared.local.parameters(), trainer.local.parameters())")


# --- errors -------------------------------------------------------------------------------------

_ERROR_SIGNATURES = [
    ("must have the same dtype", "batch_to_device",
     "the batch is float64 (numpy's default): convert with dtype=model dtype"),
    ("Expected all tensors to be on the same device", "batch_to_device",
     "move the batch to the model's device"),
    ("expected dtype", "optimizer_binding",
     "optimizer state and parameters differ in dtype: recreate the optimizer after .to()"),
    ("training_step", "step_counter",
     "initialise the step counter before the loop and increment it every update"),
]


def explain_error(error: BaseException | str) -> Finding | None:
    """Map a worker's error (a traceback text or an exception) to the learning issue it points
    to, or None."""
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    for signature, issue, hint in _ERROR_SIGNATURES:
        if signature in text:
            last = [line for line in text.strip().splitlines() if line.strip()][-1].strip()
            return Finding(issue, False, f"the run failed with {last[:160]}", hint)
    return None
