"""The plan's shape, IQN: a wrapper nn.Module holding qnetwork_local, qnetwork_target (kept in
eval mode: it only computes targets), their Adam optimizer and hyper-parameters, shared with
share_memory(); the learner trains a deepcopy and publishes it with load_state_dict; epsilon is
decayed by the learner for an actor process. The README's call forms on the wrapper, plus a
watch told where the actor reads epsilon."""

import copy
import multiprocessing as mp

import torch
import torch.nn.functional as F
from torch import nn

from mplearn import diagnose
from mplearn.diagnose import checks

BUGS = {"optimizer_kept": "optimizer_binding", "publish_local_params": "target_sync",
        "epsilon_attribute": "shared_epsilon"}
OBS, ACTIONS, EMB, N_TAU, PUBLISH, TARGET = 4, 2, 16, 8, 4, 6


class QuantileNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.state = nn.Sequential(nn.Linear(OBS, EMB), nn.ReLU(), nn.Dropout(0.1))
        self.tau = nn.Linear(EMB, EMB)
        self.out = nn.Linear(EMB, ACTIONS)

    def forward(self, obs, taus):
        k = torch.arange(EMB, dtype=obs.dtype)
        emb = F.relu(self.tau(torch.cos(torch.pi * k * taus[..., None])))
        return self.out(self.state(obs)[:, None, :] * emb)  # (batch, taus, actions)


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.gamma, self.kappa, self.n_actions = 0.99, 1.0, ACTIONS
        self.qnetwork_local, self.qnetwork_target = QuantileNet(), QuantileNet()
        self.qnetwork_target.load_state_dict(self.qnetwork_local.state_dict())
        self.qnetwork_target.eval()
        self.optimizer = torch.optim.Adam(self.qnetwork_local.parameters(), lr=1e-3)


def loss_fn(m, batch):
    obs, action, reward, nxt = batch["obs"], batch["action"], batch["reward"], batch["next_obs"]
    taus = torch.rand(len(obs), N_TAU)
    with torch.no_grad():
        z_next = m.qnetwork_target(nxt, taus)
        z_next = z_next[torch.arange(len(obs)), :, z_next.mean(1).argmax(1)]
        target = reward[:, None] + m.gamma * z_next
    z = m.qnetwork_local(obs, taus)[torch.arange(len(obs)), :, action]
    u = target[:, None, :] - z[:, :, None]
    huber = torch.where(u.abs() <= m.kappa, 0.5 * u ** 2, m.kappa * (u.abs() - 0.5 * m.kappa))
    return ((taus[..., None] - (u.detach() < 0).float()).abs() * huber).mean()


def main(bug=None):
    torch.manual_seed(0)
    shared = Model()
    shared.share_memory()
    eps_value = mp.get_context("spawn").Value("d", 1.0)
    trainer = copy.deepcopy(shared)
    if bug == "optimizer_kept":
        trainer.optimizer = shared.optimizer
    epsilon, findings = 1.0, []
    w = diagnose.watch(trainer, trainer.optimizer, shared=shared, publish_every=PUBLISH,
                       target_every=TARGET, epsilon=lambda: epsilon,
                       actor_epsilon="epsilon" if bug == "epsilon_attribute" else eps_value)
    with w:
        for step in range(1, 25):
            obs = torch.randn(32, OBS)
            batch = {"obs": obs, "action": torch.randint(ACTIONS, (32,)),
                     "reward": obs[:, 0].clamp(min=0), "next_obs": torch.randn(32, OBS)}
            trainer.qnetwork_local.train()
            loss = loss_fn(trainer, batch)
            trainer.optimizer.zero_grad()
            loss.backward()
            trainer.optimizer.step()
            if step % TARGET == 0:
                trainer.qnetwork_target.load_state_dict(trainer.qnetwork_local.state_dict())
            if step % PUBLISH == 0:
                if bug == "publish_local_params":
                    with torch.no_grad():
                        for s, t in zip(shared.qnetwork_local.parameters(),
                                        trainer.qnetwork_local.parameters(), strict=True):
                            s.copy_(t)
                else:
                    shared.load_state_dict(trainer.state_dict())
                epsilon = max(0.1, epsilon * 0.8)
                if bug == "epsilon_attribute":
                    shared.epsilon = epsilon
                else:
                    eps_value.value = epsilon
            w.step(batch)
            if step == 1:  # the README's one-shot checks, on the wrapper
                findings += [checks.optimizer_bound_to(trainer.optimizer, trainer),
                             checks.module_modes(trainer, "train")]
    return findings + w.findings()
