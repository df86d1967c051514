"""A Trainer module (online network with batch norm, a target kept in eval mode, the optimizer
as an attribute), an evaluation every EVAL_EVERY updates, epsilon decayed linearly per update.
Bugs: evaluate() leaves the network in eval mode; epsilon decayed per environment step (four per
update) instead of per update."""

import copy

import torch
import torch.nn.functional as F
from torch import nn

from mplearn import diagnose

BUGS = {"evaluate_leaves_eval": "train_mode", "epsilon_per_env_step": "step_counter"}
EVAL_EVERY, TARGET_EVERY, ENV_STEPS_PER_UPDATE = 10, 5, 4


def schedule(updates):
    return max(0.1, 1.0 - updates / 50)


class Trainer(nn.Module):
    def __init__(self):
        super().__init__()
        self.online = nn.Sequential(nn.Linear(3, 32), nn.BatchNorm1d(32), nn.ReLU(),
                                    nn.Linear(32, 2))
        self.target = copy.deepcopy(self.online).eval()
        self.optimizer = torch.optim.Adam(self.online.parameters(), lr=1e-3)

    def update(self, obs, action, reward, nxt):
        with torch.no_grad():
            y = reward + 0.95 * self.target(nxt).max(1).values
        loss = F.smooth_l1_loss(self.online(obs).gather(1, action[:, None]).squeeze(1), y)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()

    @torch.no_grad()
    def evaluate(self, restore):
        self.online.eval()
        score = self.online(torch.randn(8, 3)).max(1).values.mean().item()
        if restore:
            self.online.train()
        return score


def main(bug=None):
    torch.manual_seed(0)
    trainer = Trainer()
    env_steps, updates, epsilon = 0, 0, 1.0
    w = diagnose.watch(trainer, trainer.optimizer, target_every=TARGET_EVERY,
                       epsilon=lambda: epsilon, epsilon_schedule=schedule)
    with w:
        for _ in range(40):
            env_steps += ENV_STEPS_PER_UPDATE
            obs, nxt = torch.randn(32, 3), torch.randn(32, 3)
            action = torch.randint(2, (32,))
            trainer.update(obs, action, (obs[:, 0] > 0).float(), nxt)
            updates += 1
            epsilon = schedule(env_steps if bug == "epsilon_per_env_step" else updates)
            if updates % TARGET_EVERY == 0:
                trainer.target.load_state_dict(trainer.online.state_dict())
            if updates % EVAL_EVERY == 0:
                trainer.evaluate(restore=bug != "evaluate_leaves_eval")
            w.step()
    return w.findings()
