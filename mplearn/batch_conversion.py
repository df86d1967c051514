"""How replay arrays become a batch: three conversions of numpy's default float64 array, each
fed to a float32 layer, as a tiny exact experiment.

``torch.from_numpy`` keeps the array's dtype (float64) and device (the CPU); the plan's
``torch.from_numpy(x).float().to(device)`` converts both; ``torch.as_tensor(x, device=...,
dtype=...)`` with the model's own device and dtype is what the kit's learner does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

CONVERSIONS: dict[str, Callable[[np.ndarray, torch.Tensor], torch.Tensor]] = {
    "torch.from_numpy(x)": lambda x, p: torch.from_numpy(x),
    "torch.from_numpy(x).float().to(device)": lambda x, p: torch.from_numpy(x).float().to(
        p.device),
    "torch.as_tensor(x, device=p.device, dtype=p.dtype)": lambda x, p: torch.as_tensor(
        x, device=p.device, dtype=p.dtype),
}


@dataclass(frozen=True)
class Conversion:
    code: str
    tensor: str  # "device/dtype" of the converted batch
    result: str  # "ok" or the first line of the error the layer raised

    def __str__(self) -> str:
        return f"{self.code:<52} -> {self.tensor:<13} {self.result}"


def convert_and_forward(array_dtype: str = "float64") -> list[Conversion]:
    """A [4, 4] array of ``array_dtype`` through each conversion into a float32 Linear layer."""
    x = np.random.default_rng(0).normal(size=(4, 4)).astype(array_dtype)
    torch.manual_seed(0)
    layer = nn.Linear(4, 2)
    p = next(layer.parameters())
    rows = []
    for code, convert in CONVERSIONS.items():
        t = convert(x, p)
        try:
            layer(t)
            result = "ok"
        except RuntimeError as e:
            result = str(e).splitlines()[0]
        rows.append(Conversion(code, f"{t.device.type}/{str(t.dtype).removeprefix('torch.')}",
                               result))
    return rows
