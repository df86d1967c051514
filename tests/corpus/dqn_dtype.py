"""DQN updates on data that comes from numpy, with the learner's exception handler a worker
would have: it sends the traceback text to the parent, where explain_error reads it. Bugs: the
model moved to float64 after the first step (Adam's state stays float32), a float64 reward into
a Huber loss, integer observations into the network, a gather with a 1-d index (a shape
error: not the catalogue's)."""

import traceback

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mplearn import diagnose

BUGS = {"double_after_step": "optimizer_binding", "float64_reward_huber": "batch_to_device",
        "integer_obs": "batch_to_device", "gather_1d_index": "not_in_catalogue"}


def numpy_batch(rng, bug):
    obs = rng.integers(0, 5, (32, 4)) if bug == "integer_obs" else rng.normal(size=(32, 4))
    return {"obs": obs, "action": rng.integers(0, 2, 32), "reward": rng.normal(size=32),
            "next_obs": rng.normal(size=(32, 4))}


def to_tensors(batch, bug):
    out = {}
    for k, v in batch.items():
        if v.dtype.kind == "f" and not (bug == "float64_reward_huber" and k == "reward"):
            out[k] = torch.as_tensor(v, dtype=torch.float32)
        else:
            out[k] = torch.from_numpy(v)
    return out


def main(bug=None):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    q = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
    opt = torch.optim.Adam(q.parameters(), lr=1e-3)
    w = diagnose.watch(q, opt)
    sent = None  # what the worker would send its parent
    with w:
        try:
            for step in range(20):
                if bug == "double_after_step" and step == 1:
                    q.double()  # "more precision", after Adam made its state
                b = to_tensors(numpy_batch(rng, bug), bug)
                if bug == "double_after_step" and step >= 1:
                    b = {k: v.double() if v.is_floating_point() else v for k, v in b.items()}
                index = b["action"] if bug == "gather_1d_index" else b["action"][:, None]
                q_sa = q(b["obs"]).gather(1, index).squeeze(1)
                with torch.no_grad():
                    y = b["reward"] + 0.9 * q(b["next_obs"]).max(1).values
                loss = F.huber_loss(q_sa, y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(b)
        except RuntimeError:
            sent = traceback.format_exc()
    return w.findings() + ([diagnose.explain_error(sent)] if sent else [])
