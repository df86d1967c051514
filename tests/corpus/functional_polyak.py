"""Functional style: module-level helpers, a preallocated tensor replay sampled into tuples, a
Polyak target update with torch._foreach_lerp_, training every TRAIN_FREQ environment steps
counted by a global. Bugs: the global counter never defined; the Polyak update applied twice;
the optimizer built from the target's parameters."""

import copy

import torch
import torch.nn.functional as F
from torch import nn

from mplearn import diagnose

BUGS = {"undefined_global_counter": "step_counter", "double_polyak": "single_target_update",
        "optimizer_on_target": "optimizer_binding"}
TAU, TRAIN_FREQ, CAPACITY = 0.05, 2, 256
REPLAY = {"obs": torch.zeros(CAPACITY, 4), "action": torch.zeros(CAPACITY, dtype=torch.long),
          "reward": torch.zeros(CAPACITY), "next_obs": torch.zeros(CAPACITY, 4)}


def make_q():
    return nn.Sequential(nn.Linear(4, 32), nn.ELU(), nn.Linear(32, 3))


def polyak(target, online, tau):
    with torch.no_grad():
        torch._foreach_lerp_(list(target.parameters()), list(online.parameters()), tau)


def store(i, obs, action, reward, nxt):
    j = i % CAPACITY
    REPLAY["obs"][j], REPLAY["action"][j], REPLAY["reward"][j], REPLAY["next_obs"][j] = \
        obs, action, reward, nxt


def sample(filled, gen):
    idx = torch.randint(min(filled, CAPACITY), (32,), generator=gen)
    return tuple(REPLAY[k][idx] for k in ("obs", "action", "reward", "next_obs"))


def should_train():
    return total_steps % TRAIN_FREQ == 0  # noqa: F821 (the planted bug: never defined)


def main(bug=None):
    global total_steps
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    q = make_q()
    q_target = copy.deepcopy(q)
    opt = torch.optim.Adam((q_target if bug == "optimizer_on_target" else q).parameters(), lr=1e-3)
    w = diagnose.watch(q, opt, target=q_target, target_tau=TAU)
    if bug == "undefined_global_counter":
        globals().pop("total_steps", None)
    try:
        with w:
            for i in range(100):
                obs, nxt = torch.randn(4, generator=gen), torch.randn(4, generator=gen)
                action = int(torch.randint(3, (1,), generator=gen))
                store(i, obs, action, float(action == 0), nxt)
                if bug != "undefined_global_counter":
                    total_steps = i
                if i < 32 or not should_train():
                    continue
                o, a, r, n = sample(i + 1, gen)
                with torch.no_grad():
                    y = r + 0.9 * q_target(n).max(1).values
                loss = F.mse_loss(q(o).gather(1, a[:, None]).squeeze(1), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                polyak(q_target, q, TAU)
                if bug == "double_polyak":
                    polyak(q_target, q, TAU)
                w.step((o, a, r, n))
    except NameError:
        pass
    return w.findings()
