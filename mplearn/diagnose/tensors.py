"""What ``checks`` and ``explain_error`` both read off the objects: a batch's fields (any form),
whether a batch matches a model, whether an optimizer's state matches its parameters."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from mplearn.diagnose.rules import Finding


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
                   f"{len(bad)} optimizer state tensors elsewhere, e.g. {bad[0]}",
                   "" if not bad else "move the model before creating the optimizer, or "
                   "recreate the optimizer after .to()")


def fields(batch) -> dict[str, object]:
    """A batch's fields by name: a mapping, a namedtuple or dataclass, a tuple or list (by
    position) or one tensor."""
    if isinstance(batch, Mapping):
        return dict(batch)
    if hasattr(batch, "_asdict"):
        return dict(batch._asdict())
    if hasattr(batch, "__dict__") and not torch.is_tensor(batch) \
            and not isinstance(batch, np.ndarray):
        return dict(vars(batch))
    if isinstance(batch, Sequence) and not isinstance(batch, str):
        return {str(i): x for i, x in enumerate(batch)}
    return {"batch": batch}


def _param(model: nn.Module) -> torch.Tensor:
    return next(model.parameters())


def batch_matches(batch, model: nn.Module) -> Finding:
    """Every floating-point tensor of ``batch`` on the model's device and in its dtype; numpy
    arrays are flagged too."""
    param = _param(model)
    bad = []
    for name, x in fields(batch).items():
        if isinstance(x, np.ndarray) and x.dtype.kind == "f":
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


def _written(x, n: int) -> np.ndarray | None:
    """Per row of ``x`` (``n`` rows): any nonzero entry; None for what is not rows."""
    a = x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x) \
        if isinstance(x, np.ndarray | list) else None
    if a is None or a.ndim == 0 or len(a) != n:
        return None
    return a.reshape(n, -1).astype(bool).any(axis=1)


def empty_fraction(batch) -> float:
    """Of a batch's rows, the share whose every field is zero (observation, action, reward,
    next observation, done ...); 0 for a batch without arrays."""
    arrays = [x for x in fields(batch).values() if torch.is_tensor(x) or isinstance(x, np.ndarray)]
    if not arrays:
        return 0.0
    n = len(arrays[0])
    written = [r for r in (_written(x, n) for x in arrays) if r is not None]
    return float(np.mean(~np.any(written, axis=0))) if written else 0.0
