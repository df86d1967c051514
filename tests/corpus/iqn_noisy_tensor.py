"""IQN in one process, no wrapper: exploration by a custom Gaussian layer (parameters `loc` and
`log_scale`, noise drawn in forward while training), transitions packed into one float tensor
per batch (obs | action | reward | next obs | done), quantile Huber loss, a hard target copy
every TARGET_EVERY updates, clipping to MAX_NORM."""

import copy

import torch
import torch.nn.functional as F
from torch import nn

from mplearn import diagnose

BUGS = {"eval_mode": "train_mode", "clip_after_step": "grad_clip",
        "second_target_copy": "single_target_update"}
OBS, ACTIONS, N_TAU, EMB, MAX_NORM, TARGET_EVERY = 5, 3, 8, 16, 0.1, 5


class GaussianLinear(nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.loc = nn.Parameter(torch.randn(n_out, n_in) / n_in ** 0.5)
        self.log_scale = nn.Parameter(torch.full((n_out, n_in), -2.0))
        self.bias = nn.Parameter(torch.zeros(n_out))

    def forward(self, x):
        weight = self.loc
        if self.training:
            weight = weight + self.log_scale.exp() * torch.randn_like(self.loc)
        return F.linear(x, weight, self.bias)


class IQN(nn.Module):
    def __init__(self):
        super().__init__()
        self.torso = nn.Linear(OBS, EMB)
        self.cos = nn.Linear(EMB, EMB)
        self.head = nn.Sequential(GaussianLinear(EMB, EMB), nn.ReLU(), GaussianLinear(EMB, ACTIONS))

    def forward(self, obs, taus):  # -> (batch, n_tau, actions)
        i = torch.arange(1, EMB + 1, dtype=obs.dtype)
        phi = F.relu(self.cos(torch.cos(torch.pi * i * taus.unsqueeze(-1))))
        return self.head(F.relu(self.torso(obs)).unsqueeze(1) * phi)


def quantile_huber(pred, target, taus):
    u = target.unsqueeze(1) - pred.unsqueeze(2)  # (batch, n_tau pred, n_tau target)
    huber = F.huber_loss(pred.unsqueeze(2).expand_as(u), target.unsqueeze(1).expand_as(u),
                         reduction="none")
    return ((taus.unsqueeze(2) - (u.detach() < 0).float()).abs() * huber).mean()


def sample_packed(gen, size=32):
    obs = torch.randn(size, OBS, generator=gen)
    action = torch.randint(ACTIONS, (size, 1), generator=gen).float()
    reward = (obs[:, :1] > 0).float() * (action == 1).float() * 10.0
    nxt = torch.randn(size, OBS, generator=gen)
    done = (torch.rand(size, 1, generator=gen) < 0.1).float()
    return torch.cat([obs, action, reward, nxt, done], dim=1)


def main(bug=None):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    net = IQN()
    target = copy.deepcopy(net)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    w = diagnose.watch(net, opt, target=target, max_grad_norm=MAX_NORM, target_every=TARGET_EVERY)
    if bug == "eval_mode":
        net.eval()  # "evaluate before training" and never back
    with w:
        for step in range(1, 31):
            batch = sample_packed(gen)
            obs, action, reward = batch[:, :OBS], batch[:, OBS].long(), batch[:, OBS + 1]
            nxt, done = batch[:, OBS + 2:2 * OBS + 2], batch[:, -1]
            taus, taus_next = torch.rand(32, N_TAU), torch.rand(32, N_TAU)
            with torch.no_grad():
                next_q = target(nxt, taus_next)
                best = next_q.mean(1).argmax(1)
                z_next = next_q[torch.arange(32), :, best]
                z_target = reward[:, None] + 0.99 * (1 - done[:, None]) * z_next
            z = net(obs, taus)[torch.arange(32), :, action]
            loss = quantile_huber(z, z_target, taus)
            opt.zero_grad()
            loss.backward()
            if bug != "clip_after_step":
                nn.utils.clip_grad_norm_(net.parameters(), MAX_NORM)
            opt.step()
            if bug == "clip_after_step":
                nn.utils.clip_grad_norm_(net.parameters(), MAX_NORM)
            if step % TARGET_EVERY == 0:
                target.load_state_dict(net.state_dict())
            if bug == "second_target_copy" and step % TARGET_EVERY == 2:
                target.load_state_dict(net.state_dict())  # the loop's copy, on its own schedule
            w.step(batch)
    return w.findings()
