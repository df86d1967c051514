"""The tutorial-style DQN class: eval_net and target_net, `learn_step_counter` drives the
target replacement in learn(), a memory matrix sampled into a namedtuple batch, the loop in
main(). The target replacement is hard; the class is not an nn.Module."""

from collections import namedtuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mplearn import diagnose

BUGS = {"counter_not_initialised": "step_counter",
        "loop_replaces_target_too": "single_target_update",
        "attribute_typo": "not_in_catalogue"}
N_STATES, N_ACTIONS, TARGET_REPLACE_ITER, MEMORY, BATCH = 4, 2, 8, 500, 32
Batch = namedtuple("Batch", "s a r s_")


def make_net():
    return nn.Sequential(nn.Linear(N_STATES, 24), nn.Tanh(), nn.Linear(24, N_ACTIONS))


class DQN:
    def __init__(self, bug):
        self.bug = bug
        self.eval_net, self.target_net = make_net(), make_net()
        if bug != "counter_not_initialised":
            self.learn_step_counter = 0
        self.memory_counter = 0
        self.memory = np.zeros((MEMORY, N_STATES * 2 + 2), np.float32)
        self.optimizer = torch.optim.RMSprop(self.eval_net.parameters(), lr=1e-3)

    def store(self, s, a, r, s_):
        self.memory[self.memory_counter % MEMORY] = np.hstack((s, [a, r], s_))
        self.memory_counter += 1

    def sample(self, rng):
        rows = self.memory[rng.integers(0, min(self.memory_counter, MEMORY), BATCH)]
        return Batch(torch.from_numpy(rows[:, :N_STATES]),
                     torch.from_numpy(rows[:, N_STATES:N_STATES + 1]).long(),
                     torch.from_numpy(rows[:, N_STATES + 1:N_STATES + 2]),
                     torch.from_numpy(rows[:, -N_STATES:]))

    def learn(self, batch):
        if self.learn_step_counter % TARGET_REPLACE_ITER == 0:
            self.target_net.load_state_dict(self.eval_net.state_dict())
        self.learn_step_counter += 1
        q_eval = self.eval_net(batch.s).gather(1, batch.a)
        q_next = self.target_net(batch.s_).detach()
        loss = F.mse_loss(q_eval, batch.r + 0.9 * q_next.max(1)[0].view(BATCH, 1))
        self.optimizer.zero_grad()
        loss.backward()
        if self.bug == "attribute_typo":
            self.optimiser.step()
        else:
            self.optimizer.step()


def main(bug=None):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    dqn = DQN(bug)
    w = diagnose.watch(dqn.eval_net, dqn.optimizer, target=dqn.target_net,
                       target_every=TARGET_REPLACE_ITER)
    try:
        with w:
            s = rng.normal(size=N_STATES)
            for step in range(1, 120):
                a = int(rng.integers(N_ACTIONS))
                s_ = rng.normal(size=N_STATES)
                dqn.store(s, a, float(a == (s[0] > 0)), s_)
                s = s_
                if dqn.memory_counter > 64:
                    dqn.learn(dqn.sample(rng))
                    if bug == "loop_replaces_target_too" and step % TARGET_REPLACE_ITER == 3:
                        dqn.target_net.load_state_dict(dqn.eval_net.state_dict())
                    w.step()
    except AttributeError:
        pass
    return w.findings()
