"""A small actor/learner script for CartPole in plain PyTorch, written the way such scripts get
written, with six of the catalogue's bugs planted. Notebook 19 finds each with ``mplearn.diagnose``.

It follows the plan: a shared model (online network, target network, Adam optimizer) in shared
memory; a learner that trains a private copy and publishes it; epsilon decayed by the learner
and published for the actor; an ``act`` helper on the model. The Q-network has dropout and noisy
layers, as the plan's origin had. The script itself uses plain PyTorch only; ``diagnose`` at
the end shows where ``mplearn.diagnose`` goes in it.

``BUGS`` names the bugs (``ISSUES``: the catalogue issue each one is). ``Learner(shared,
fixed=...)`` repairs the named ones: each buggy line stands next to its repair under a
``# BUG(<name>)`` comment, so ``grep -n "BUG(" `` lists them.
"""

from __future__ import annotations

import copy
import math
import multiprocessing as mp
from collections.abc import Collection
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

BUGS = {
    "optimizer": "the learner's train copy keeps the shared model's optimizer",
    "eval_mode": "act() switches to eval() and returns early; train_step never calls train()",
    "float64_batch": "replay arrays in numpy's default float64 become tensors via torch.from_numpy",
    "epsilon_attribute": "epsilon published as a plain attribute of the shared model",
    "no_clipping": "clip_grad_norm_ commented out",
    "publish_parameters": "publish copies the online network's parameters only",
}
ISSUES = {"optimizer": "optimizer_binding", "eval_mode": "train_mode",
          "float64_batch": "batch_to_device", "epsilon_attribute": "shared_epsilon",
          "no_clipping": "grad_clip", "publish_parameters": "target_sync"}
MAX_GRAD_NORM = 1.0
BATCH_SIZE = 64


def _check(fixed: Collection[str]) -> frozenset[str]:
    unknown = sorted(set(fixed) - set(BUGS))
    if unknown:
        raise ValueError(f"fixed: unknown bug name(s) {unknown}; known: {list(BUGS)}")
    return frozenset(fixed)


# --- the model -------------------------------------------------------------------------------

class NoisyLinear(nn.Module):
    """Factorised Gaussian noise (Fortunato et al. 2017); in eval mode only the means."""

    def __init__(self, in_features: int, out_features: int, sigma_init: float = 0.5):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        bound = 1 / math.sqrt(in_features)
        self.weight_mu = nn.Parameter(torch.empty(out_features, in_features).uniform_(-bound,
                                                                                      bound))
        self.weight_sigma = nn.Parameter(torch.full((out_features, in_features),
                                                    sigma_init * bound))
        self.bias_mu = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound))
        self.bias_sigma = nn.Parameter(torch.full((out_features,), sigma_init * bound))
        self.register_buffer("weight_epsilon", torch.zeros(out_features, in_features))
        self.register_buffer("bias_epsilon", torch.zeros(out_features))
        self.reset_noise()

    @torch.no_grad()
    def reset_noise(self) -> None:
        def f(x):
            return x.sign() * x.abs().sqrt()

        eps_in, eps_out = f(torch.randn(self.in_features)), f(torch.randn(self.out_features))
        self.weight_epsilon.copy_(torch.outer(eps_out, eps_in))
        self.bias_epsilon.copy_(eps_out)

    def forward(self, x):
        if not self.training:
            return F.linear(x, self.weight_mu, self.bias_mu)
        return F.linear(x, self.weight_mu + self.weight_sigma * self.weight_epsilon,
                        self.bias_mu + self.bias_sigma * self.bias_epsilon)


class QNetwork(nn.Module):
    def __init__(self, obs_dim: int, n_actions: int, hidden_dim: int = 64):
        super().__init__()
        self.torso = nn.Sequential(nn.Linear(obs_dim, hidden_dim), nn.ReLU(), nn.Dropout(0.1))
        self.head = nn.Sequential(NoisyLinear(hidden_dim, hidden_dim), nn.ReLU(),
                                  NoisyLinear(hidden_dim, n_actions))

    def forward(self, obs):
        return self.head(self.torso(obs))

    def reset_noise(self) -> None:
        for m in self.modules():
            if isinstance(m, NoisyLinear):
                m.reset_noise()


class Model(nn.Module):
    """The plan's wrapper: online and target networks, their optimizer, an act() helper."""

    def __init__(self, obs_dim: int, n_actions: int, lr: float = 1e-3):
        super().__init__()
        self.n_actions = n_actions
        self.qnetwork_local = QNetwork(obs_dim, n_actions)
        self.qnetwork_target = QNetwork(obs_dim, n_actions)
        self.qnetwork_target.load_state_dict(self.qnetwork_local.state_dict())
        self.optimizer = torch.optim.Adam(self.qnetwork_local.parameters(), lr=lr)

    def act(self, obs: np.ndarray, epsilon: float, rng: np.random.Generator) -> int:
        self.qnetwork_local.eval()
        if rng.random() < epsilon:
            return int(rng.integers(self.n_actions))  # returns before train() below
        with torch.no_grad():
            q = self.qnetwork_local(torch.as_tensor(obs, dtype=torch.float32).unsqueeze(0))
        self.qnetwork_local.train()
        return int(q.argmax())


def create_shared_model(obs_dim: int = 4, n_actions: int = 2, seed: int = 0) -> Model:
    torch.manual_seed(seed)
    model = Model(obs_dim, n_actions)
    model.share_memory()
    return model


# --- the replay (numpy, as the plan's) -------------------------------------------------------

@dataclass
class Batch:
    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_obs: np.ndarray
    dones: np.ndarray


class Replay:
    def __init__(self, capacity: int, obs_dim: int):
        self.obs = np.zeros((capacity, obs_dim))  # numpy's default dtype: float64
        self.next_obs = np.zeros((capacity, obs_dim))
        self.actions = np.zeros(capacity, dtype=np.int64)
        self.rewards = np.zeros(capacity)
        self.dones = np.zeros(capacity)
        self.size, self.capacity = 0, capacity

    def add(self, obs, action, reward, next_obs, done) -> None:
        i = self.size % self.capacity
        self.obs[i], self.actions[i], self.rewards[i] = obs, action, reward
        self.next_obs[i], self.dones[i] = next_obs, done
        self.size += 1

    def sample(self, batch_size: int, rng: np.random.Generator) -> Batch:
        idx = rng.integers(0, min(self.size, self.capacity), size=batch_size)
        return Batch(self.obs[idx], self.actions[idx], self.rewards[idx], self.next_obs[idx],
                     self.dones[idx])


class Actor:
    """Steps CartPole-v1 with a model's act(); returns transitions for the replay."""

    def __init__(self, seed: int = 0):
        self.env = gym.make("CartPole-v1")
        self.rng = np.random.default_rng(seed)
        self.obs, _ = self.env.reset(seed=seed)

    def step(self, model: Model, epsilon: float) -> tuple:
        obs = self.obs
        action = model.act(obs, epsilon, self.rng)
        next_obs, reward, terminated, truncated, _ = self.env.step(action)
        self.obs = self.env.reset()[0] if terminated or truncated else next_obs
        return obs, action, reward, next_obs, terminated


# --- the learner -------------------------------------------------------------------------------

class Learner:
    """Trains a private copy of the shared model and publishes it."""

    def __init__(self, shared: Model, fixed: Collection[str] = (), gamma: float = 0.99):
        self.fixed = _check(fixed)
        self.shared, self.gamma = shared, gamma
        self.epsilon = 1.0
        # What the actor reads. One writer, and an aligned double is written whole: no lock,
        # hence no named semaphore (one would outlive a notebook kernel killed with its group).
        self.shared_epsilon = mp.get_context("spawn").Value("d", 1.0, lock=False)
        self.trainer = copy.deepcopy(shared)  # the train copy (deepcopy also copies Adam ...)
        # BUG(optimizer): ... so the copy's optimizer steps the copy's parameters; the bug keeps
        # the shared model's optimizer, whose parameters never receive a gradient.
        if "optimizer" in self.fixed:
            self.trainer.optimizer = torch.optim.Adam(self.trainer.qnetwork_local.parameters(),
                                                      lr=1e-3)
        else:
            self.trainer.optimizer = shared.optimizer

    def to_tensors(self, batch: Batch) -> dict[str, torch.Tensor]:
        # BUG(float64_batch): torch.from_numpy keeps numpy's float64.
        if "float64_batch" in self.fixed:
            def tensor(x):
                return torch.as_tensor(x, dtype=torch.float32)
        else:
            def tensor(x):
                return torch.from_numpy(x)
        return {"obs": tensor(batch.obs), "actions": torch.from_numpy(batch.actions),
                "rewards": tensor(batch.rewards), "next_obs": tensor(batch.next_obs),
                "dones": tensor(batch.dones)}

    def train_step(self, batch: Batch) -> float:
        local, target = self.trainer.qnetwork_local, self.trainer.qnetwork_target
        t = self.to_tensors(batch)
        # BUG(eval_mode): train() on both networks; without it, whatever act() left.
        if "eval_mode" in self.fixed:
            local.train()
            target.train()
        local.reset_noise()
        target.reset_noise()
        q = local(t["obs"]).gather(1, t["actions"].unsqueeze(1)).squeeze(1)
        with torch.no_grad():
            next_q = target(t["next_obs"]).max(dim=1).values
            y = t["rewards"] + self.gamma * (1 - t["dones"]) * next_q
        loss = F.smooth_l1_loss(q, y)
        self.trainer.optimizer.zero_grad()
        loss.backward()
        # BUG(no_clipping): clip the gradient norm before the step.
        if "no_clipping" in self.fixed:
            nn.utils.clip_grad_norm_(local.parameters(), MAX_GRAD_NORM)
        else:
            pass  # nn.utils.clip_grad_norm_(local.parameters(), MAX_GRAD_NORM)
        self.trainer.optimizer.step()
        return loss.item()

    @torch.no_grad()
    def update_target(self) -> None:
        self.trainer.qnetwork_target.load_state_dict(self.trainer.qnetwork_local.state_dict())

    @torch.no_grad()
    def publish(self) -> None:
        """Copy the trainer into the shared model the actor reads."""
        # BUG(publish_parameters): the whole state (both networks, parameters and buffers).
        if "publish_parameters" in self.fixed:
            self.shared.load_state_dict(self.trainer.state_dict())
        else:
            for s, t in zip(self.shared.qnetwork_local.parameters(),
                            self.trainer.qnetwork_local.parameters(), strict=True):
                s.copy_(t)

    def decay_epsilon(self, factor: float = 0.99, floor: float = 0.01) -> None:
        self.epsilon = max(floor, self.epsilon * factor)
        # BUG(epsilon_attribute): a shared value; an attribute stays in this process.
        if "epsilon_attribute" in self.fixed:
            self.shared_epsilon.value = self.epsilon
        else:
            self.shared.epsilon = self.epsilon


def run(steps: int = 200, fixed: Collection[str] = (), seed: int = 0, warmup: int = 200,
        publish_every: int = 10, target_every: int = 50) -> tuple[Model, Learner, Replay]:
    """The script's main loop, actor and learner in one process: warm-up with random actions,
    then act, store, train; publish and decay epsilon every ``publish_every`` steps, copy the
    target every ``target_every``. (In one process the epsilon attribute is visible to the
    actor; ``epsilon_seen_by_actor`` looks from another process.)"""
    fixed = _check(fixed)
    shared = create_shared_model(seed=seed)
    actor, replay = Actor(seed), Replay(10_000, 4)
    for _ in range(warmup):
        replay.add(*actor.step(shared, epsilon=1.0))
    learner = Learner(shared, fixed)  # the train copy, made from the shared model now
    rng = np.random.default_rng(seed)
    for step in range(1, steps + 1):
        replay.add(*actor.step(shared, learner.epsilon))
        learner.train_step(replay.sample(BATCH_SIZE, rng))
        if step % publish_every == 0:
            learner.publish()
            learner.decay_epsilon()
        if step % target_every == 0:
            learner.update_target()
    return shared, learner, replay


# --- across a process boundary -------------------------------------------------------------

def _report_epsilon(model: Model, value, ready, go, answer) -> None:
    """Spawn target, an actor process: after ``go``, report what it reads of the learner's
    epsilon: the model's ``epsilon`` attribute (None: none) and the shared value."""
    ready.set()
    go.wait(timeout=120)
    answer.put((getattr(model, "epsilon", None), value.value))


def epsilon_seen_by_actor(learner: Learner, decays: int = 50) -> dict[str, float | None]:
    """Start an actor process with the shared model and the shared value (as the plan starts
    its actor, before training); then let the learner decay epsilon ``decays`` times; return
    what the learner holds and what the actor process reads."""
    ctx = mp.get_context("spawn")
    ready, go, answer = ctx.Event(), ctx.Event(), ctx.Queue()
    child = ctx.Process(target=_report_epsilon, daemon=True, args=(
        learner.shared, learner.shared_epsilon, ready, go, answer))
    child.start()
    try:
        if not ready.wait(timeout=120):
            raise RuntimeError("the actor process did not start")
        for _ in range(decays):
            learner.decay_epsilon()
        go.set()
        attribute, value = answer.get(timeout=60)
    finally:
        go.set()
        child.join(timeout=30)
        if child.is_alive():
            child.kill()
            child.join()
    return {"learner's epsilon": learner.epsilon, "actor reads the attribute": attribute,
            "actor reads the shared value": value}


# --- where the checks go ---------------------------------------------------------------------

def diagnose(learner: Learner, replay: Replay, seed: int = 0) -> list:
    """``mplearn.diagnose`` around one more learner step, a publish and an epsilon decay, as you
    would wire it into your own script: one-shot ``checks`` before the step, a ``watch`` over
    it (weights moved, the mode of the training passes, the gradient norm the optimizer stepped
    with), ``checks`` after it and around the publish. Returns the findings; a step that raises
    ends the list with the watch's reading of the error (``explain_error``)."""
    from mplearn.diagnose import checks, watch

    trainer = learner.trainer
    batch = replay.sample(BATCH_SIZE, np.random.default_rng(seed))
    findings = [checks.batch_matches(learner.to_tensors(batch), trainer.qnetwork_local),
                checks.optimizer_bound_to(trainer.optimizer, trainer)]
    w = watch(trainer.qnetwork_local, trainer.optimizer, max_grad_norm=MAX_GRAD_NORM)
    try:
        with w:
            learner.train_step(batch)
            w.step()
    except RuntimeError:
        return findings + w.errors
    findings += w.findings()
    findings += [checks.module_modes(trainer, "train"),
                 checks.idle_parameters(trainer.qnetwork_local)]
    learner.publish()
    findings.append(checks.target_in_sync(learner.shared, trainer))
    before = checks.plain_attributes(learner.shared)
    learner.decay_epsilon()
    findings.append(checks.shared_memory(learner.shared, before=before))
    return findings
