"""Device and dtype of the batch: the catalogue entry, the mechanism check, the scenarios behind
data/ and the experiments its notebook runs.

How replay arrays become a batch: three conversions of numpy's default float64 array, each
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

from mplearn.core.fixes import Fixes
from mplearn.core.replay import Batch
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
    "batch_to_device", "Device and dtype of the batch",
    claim="All batch arrays are converted to tensors and moved to the device (marked "
          "fixed).",
    mechanism="torch.from_numpy keeps the array's dtype and device: float64 replay arrays "
              "meet float32 weights ('mat1 and mat2 must have the same dtype'); a CPU batch "
              "meets a CUDA model ('Expected all tensors to be on the same device').",
    where="float64 replay storage (replay_obs_dtype='float64'); a learner on cuda or mps",
    symptom="the learner dies; unwatched, the actor goes on acting with the initial policy "
            "and the run looks like 'no learning'",
    diagnostic="checks.batch_matches(batch, model); the System raises the learner's "
               "error and checks.explain_error / Monitor.saw_error names the issue",
    notebook="07_device_and_dtype")

# What the monitored demo run (lab.notebook.demo_config) needs for this issue to act: numpy's
# default dtype in the replay.
DEMO = dict(replay_obs_dtype="float64")


def check() -> CheckResult:
    """A batch from float64 arrays (what a replay that keeps numpy's default dtype gives)."""

    def experiment(fixes: Fixes) -> float:
        with learner_with_rows(BASE.replace(fixes=fixes)) as learner:
            b = learner.channel.buffer.sample(16, np.random.default_rng(0))
            batch = Batch(**{**b.__dict__, "obs": b.obs.astype(np.float64),
                             "next_obs": b.next_obs.astype(np.float64)})
            try:
                learner.train_step(batch)
            except RuntimeError:  # "mat1 and mat2 must have the same dtype"
                return 1.0
            return 0.0

    return fix_on_and_off("batch_to_device", "train_step raised on a float64 batch (1 = yes)",
                 experiment, lambda raised: raised == 1.0)


def crashed(record: dict) -> float:
    """1 when the run died (the learner's first update raises on a float64 batch)."""
    return float(record.get("status") == "crashed")


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "batch_to_device",
        "torch.from_numpy keeps numpy's dtype: a replay that stores observations as numpy's "
        "default float64 (as the plan's did) meets float32 weights. The broken learner dies "
        "at its first update; the System raises its error (a crash by design, with its "
        "partial curve). The fixed conversion is exact, so the fixed system runs the same "
        "with either replay dtype, bit for bit (tests/test_experiments.py checks it): its "
        "runs are the default ones.",
        "inline", broken_overrides={"replay_obs_dtype": "float64"},
        margin=CARTPOLE_MARGIN,
        manipulation=Manipulation("the run crashed (1 = yes)", crashed,
                                  lambda value: value == 1.0),
        diagnostics=("learner.loss",)),
)



# --- the experiments its notebook runs --------------------------------------------------------

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
