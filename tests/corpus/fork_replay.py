"""An actor forked from the learner fills a replay on a 6-cell chain (one-hot observations, the
start cell encoded as all zeros); the learner samples tuple batches from it. Bugs: the replay's
arrays are plain numpy arrays (the actor's writes stay in the actor's copy); the learner samples
indices below the capacity instead of below the count written."""

import multiprocessing as mp

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mplearn import diagnose

BUGS = {"numpy_arrays": "replay_by_name", "sample_capacity": "not_in_catalogue"}
CAPACITY, CELLS, WRITES = 400, 6, 200


def _array(shape, dtype, shared):
    if not shared:
        return np.zeros(shape, dtype)
    raw = mp.get_context("fork").RawArray("b", int(np.prod(shape)) * np.dtype(dtype).itemsize)
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def one_hot(cell):
    obs = np.zeros(CELLS, np.float32)
    if cell > 0:  # the start cell is all zeros: a legitimately sparse observation
        obs[cell] = 1.0
    return obs


def _actor(replay, count):
    rng = np.random.default_rng(1)
    cell = 0
    for _ in range(WRITES):
        action = int(rng.integers(2))
        nxt = min(CELLS - 1, cell + 1) if action else max(0, cell - 1)
        done = nxt == CELLS - 1
        i = count.value
        replay["obs"][i], replay["action"][i] = one_hot(cell), action
        replay["reward"][i], replay["next_obs"][i], replay["done"][i] = float(done), \
            one_hot(nxt), float(done)
        count.value += 1
        cell = 0 if done else nxt


def main(bug=None):
    torch.manual_seed(0)
    ctx = mp.get_context("fork")
    shared = bug != "numpy_arrays"
    replay = {"obs": _array((CAPACITY, CELLS), np.float32, shared),
              "action": _array((CAPACITY,), np.int64, shared),
              "reward": _array((CAPACITY,), np.float32, shared),
              "next_obs": _array((CAPACITY, CELLS), np.float32, shared),
              "done": _array((CAPACITY,), np.float32, shared)}
    count = ctx.Value("i", 0)
    actor = ctx.Process(target=_actor, args=(replay, count))
    actor.start()
    actor.join(60)
    q = nn.Sequential(nn.Linear(CELLS, 16), nn.ReLU(), nn.Linear(16, 2))
    opt = torch.optim.Adam(q.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    w = diagnose.watch(q, opt)
    with w:
        for _ in range(20):
            high = CAPACITY if bug == "sample_capacity" else count.value
            idx = rng.integers(0, high, 32)
            obs, action, reward, nxt, done = (torch.as_tensor(replay[k][idx]) for k in
                                              ("obs", "action", "reward", "next_obs", "done"))
            with torch.no_grad():
                y = reward + 0.9 * (1 - done) * q(nxt).max(1).values
            loss = F.mse_loss(q(obs).gather(1, action[:, None]).squeeze(1), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step((obs, action, reward, nxt, done), indices=idx, filled=count.value)
    return w.findings()
