"""A learner process (this one) and an actor process started with spawn before training: the
learner trains its own network, publishes it into a shared one every PUBLISH_EVERY updates and
decays epsilon; the actor acts with the shared network and epsilon. Bug: epsilon published as
an attribute of the shared network."""

import copy
import multiprocessing as mp

import torch
import torch.nn.functional as F
from torch import nn

from mplearn import diagnose

BUGS = {"epsilon_attribute": "shared_epsilon"}
PUBLISH_EVERY = 5


def _actor(shared, eps_value, go, seen):
    torch.set_num_threads(1)
    go.wait(60)
    epsilon = getattr(shared, "epsilon", None)  # the bug's channel ...
    seen.put(eps_value.value if epsilon is None else epsilon)  # ... or the shared value


def main(bug=None):
    torch.manual_seed(0)
    ctx = mp.get_context("spawn")
    shared = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
    shared.gamma = 0.99  # constant hyper-parameters ride along harmlessly
    if bug == "epsilon_attribute":
        shared.epsilon = 1.0
    shared.share_memory()
    eps_value, go, seen = ctx.Value("d", 1.0), ctx.Event(), ctx.Queue()
    actor = ctx.Process(target=_actor, args=(shared, eps_value, go, seen), daemon=True)
    actor.start()
    net = copy.deepcopy(shared)
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    epsilon = 1.0
    # The probe: one more process started now, reading epsilon where the actor reads it.
    w = diagnose.watch(net, opt, shared=shared, publish_every=PUBLISH_EVERY,
                       epsilon=lambda: epsilon, probe=True,
                       actor_epsilon="epsilon" if bug == "epsilon_attribute" else eps_value)
    try:
        with w:
            for step in range(1, 21):
                x = torch.randn(16, 4)
                loss = F.mse_loss(net(x), x[:, :2])
                opt.zero_grad()
                loss.backward()
                opt.step()
                if step % PUBLISH_EVERY == 0:
                    shared.load_state_dict(net.state_dict())
                    epsilon *= 0.9
                    if bug == "epsilon_attribute":
                        shared.epsilon = epsilon
                    else:
                        eps_value.value = epsilon
                w.step()
        go.set()
        actor_epsilon = seen.get(timeout=60)  # what the actor acted with: 1.0 with the bug
    finally:
        go.set()
        actor.join(30)
        if actor.is_alive():
            actor.kill()
            actor.join()
    assert (actor_epsilon == 1.0) == (bug == "epsilon_attribute"), actor_epsilon
    return w.findings()
