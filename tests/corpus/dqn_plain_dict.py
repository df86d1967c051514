"""DQN on CartPole in one process, no classes: a numpy replay sampled into dict batches, a
hard target copy every TARGET_EVERY updates, Huber loss."""

import copy

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mplearn import diagnose

BUGS = {"no_clip": "grad_clip", "clip_after_step": "grad_clip",
        "counter_not_incremented": "step_counter", "float64_reward": "batch_to_device"}
MAX_NORM, TARGET_EVERY, N = 0.5, 10, 1000


def main(bug=None):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    env = gym.make("CartPole-v1")
    q = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 2))
    q_target = copy.deepcopy(q)
    opt = torch.optim.Adam(q.parameters(), lr=1e-3)
    obs_buf, next_buf = np.zeros((N, 4), np.float32), np.zeros((N, 4), np.float32)
    act_buf, done_buf = np.zeros(N, np.int64), np.zeros(N, np.float32)
    rew_buf = np.zeros(N, np.float64 if bug == "float64_reward" else np.float32)
    n, updates = 0, 0
    obs, _ = env.reset(seed=0)
    w = diagnose.watch(q, opt, target=q_target, max_grad_norm=MAX_NORM, target_every=TARGET_EVERY)
    try:
        with w:
            for t in range(120):
                if rng.random() < max(0.05, 1 - t / 100):
                    a = int(rng.integers(2))
                else:
                    with torch.no_grad():
                        a = int(q(torch.as_tensor(obs)).argmax())
                nxt, r, term, trunc, _ = env.step(a)
                i = n % N
                obs_buf[i], act_buf[i], rew_buf[i], next_buf[i], done_buf[i] = obs, a, r, nxt, term
                n += 1
                obs = env.reset()[0] if term or trunc else nxt
                if n < 64:
                    continue
                idx = rng.integers(0, min(n, N), 32)
                batch = {"obs": torch.from_numpy(obs_buf[idx]),
                         "action": torch.from_numpy(act_buf[idx]),
                         "reward": torch.from_numpy(rew_buf[idx]),
                         "next_obs": torch.from_numpy(next_buf[idx]),
                         "done": torch.from_numpy(done_buf[idx])}
                q_sa = q(batch["obs"]).gather(1, batch["action"][:, None]).squeeze(1)
                with torch.no_grad():
                    best = q_target(batch["next_obs"]).max(1).values
                    y = batch["reward"] + 0.99 * (1 - batch["done"]) * best
                loss = F.huber_loss(q_sa, y)
                opt.zero_grad()
                loss.backward()
                if bug not in ("no_clip", "clip_after_step"):
                    nn.utils.clip_grad_norm_(q.parameters(), MAX_NORM)
                opt.step()
                if bug == "clip_after_step":
                    nn.utils.clip_grad_norm_(q.parameters(), MAX_NORM)
                if bug != "counter_not_incremented":
                    updates += 1
                if updates % TARGET_EVERY == 0:
                    q_target.load_state_dict(q.state_dict())
                w.step(batch)
    except RuntimeError:
        pass  # the watch has explained it
    return w.findings()
