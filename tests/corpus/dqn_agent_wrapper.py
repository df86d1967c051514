"""The course-style DQN Agent: a plain class holding qnetwork_local, qnetwork_target, an Adam
optimizer and a deque of Experience namedtuples; learn() takes a tuple batch and soft-updates the
target every learning step; act() is epsilon-greedy with eval()/train() around the forward. The
network has dropout. Synthetic 1-step environment: the reward is the sign of the first
observation for action 1."""

import random
from collections import deque, namedtuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mplearn import diagnose

BUGS = {"t_step_unbound": "step_counter", "double_soft_update": "single_target_update",
        "act_returns_in_eval": "train_mode"}
TAU, UPDATE_EVERY, BATCH = 0.01, 2, 32
Experience = namedtuple("Experience", "state action reward next_state done")


class QNetwork(nn.Module):
    def __init__(self, state_size=6, action_size=3, hidden=32):
        super().__init__()
        self.fc1, self.drop, self.fc2 = nn.Linear(state_size, hidden), nn.Dropout(0.2), \
            nn.Linear(hidden, action_size)

    def forward(self, state):
        return self.fc2(self.drop(F.relu(self.fc1(state))))


class Agent:
    def __init__(self, bug):
        self.bug = bug
        self.qnetwork_local, self.qnetwork_target = QNetwork(), QNetwork()
        self.qnetwork_target.load_state_dict(self.qnetwork_local.state_dict())
        self.optimizer = torch.optim.Adam(self.qnetwork_local.parameters(), lr=5e-4)
        self.memory = deque(maxlen=10_000)

    def act(self, state, eps):
        self.qnetwork_local.eval()
        if self.bug == "act_returns_in_eval" and random.random() < eps:
            return random.randrange(3)  # returns before train() below
        with torch.no_grad():
            values = self.qnetwork_local(torch.from_numpy(state).float().unsqueeze(0))
        self.qnetwork_local.train()
        if random.random() < eps:
            return random.randrange(3)
        return int(values.argmax())

    def sample(self):
        experiences = random.sample(self.memory, k=BATCH)
        return tuple(torch.from_numpy(np.vstack([getattr(e, f) for e in experiences])).float()
                     for f in Experience._fields)

    def learn(self, experiences, gamma=0.99):
        states, actions, rewards, next_states, dones = experiences
        q_next = self.qnetwork_target(next_states).detach().max(1)[0].unsqueeze(1)
        q_targets = rewards + gamma * q_next * (1 - dones)
        q_expected = self.qnetwork_local(states).gather(1, actions.long())
        loss = F.mse_loss(q_expected, q_targets)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.soft_update()
        if self.bug == "double_soft_update":
            self.soft_update()  # ... and once more, "to be sure"

    def soft_update(self):
        for t, local in zip(self.qnetwork_target.parameters(),
                            self.qnetwork_local.parameters(), strict=True):
            t.data.copy_(TAU * local.data + (1.0 - TAU) * t.data)


def main(bug=None):
    random.seed(0)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    agent = Agent(bug)
    w = diagnose.watch(agent.qnetwork_local, agent.optimizer, target=agent.qnetwork_target,
                       target_tau=TAU)
    if bug != "t_step_unbound":
        t_step = 0
    try:
        with w:
            state = rng.normal(size=6).astype(np.float32)
            for _ in range(150):
                action = agent.act(state, eps=0.5)
                reward = float(np.sign(state[0])) if action == 1 else 0.0
                next_state = rng.normal(size=6).astype(np.float32)
                agent.memory.append(Experience(state, action, reward, next_state, 0.0))
                state = next_state
                t_step = (t_step + 1) % UPDATE_EVERY
                if t_step == 0 and len(agent.memory) > BATCH:
                    agent.learn(agent.sample())
                    w.step()
    except UnboundLocalError:
        pass
    return w.findings()
