"""The actor: one process serving every agent. It keeps a local copy of each agent's online
network, acts epsilon-greedily with the epsilon the learner publishes, steps each agent's
environment and writes transitions, tagged with the weight version and epsilon they were
collected with, to that agent's replay buffer.
"""

from __future__ import annotations

import time
from collections import deque

import numpy as np
import torch

from mplearn.core import iqn
from mplearn.core.channels import ACTOR_PARTY, AgentChannel, Rendezvous, learner_party
from mplearn.core.config import Config, InjectedFault
from mplearn.core.weights import WeightSubscriber, build_network
from mplearn.envs import EnvSpec, make_agent_envs

EPISODE, ACTOR = "episode", "actor"


class NStepWindow:
    """Turns one agent's 1-step transitions into n-step ones.

    R = sum_{k<m} gamma^k r_{t+k}, bootstrapped from s_{t+m} with gamma^m: m = n, or fewer at
    the end of an episode, where every pending transition is flushed with the episode's
    terminated/truncated flags (so a truncated tail still bootstraps, with its own gamma^m).
    """

    def __init__(self, n: int, gamma: float):
        self.n, self.gamma = n, gamma
        self.pending: deque = deque()  # (obs, action, reward, version, epsilon)

    def push(self, obs, action, reward, next_obs, terminated, truncated, version, epsilon):
        self.pending.append((obs, action, reward, version, epsilon))
        done = terminated or truncated
        while self.pending and (done or len(self.pending) == self.n):
            ret = sum(self.gamma ** k * p[2] for k, p in enumerate(self.pending))
            obs0, action0, _, version0, epsilon0 = self.pending.popleft()
            yield (obs0, action0, ret, next_obs, terminated, truncated, version0, epsilon0,
                   len(self.pending) + 1)


class Actor:
    def __init__(self, config: Config, spec: EnvSpec, channels: list[AgentChannel],
                 seeds: list[int]):
        self.config = config
        self.channels = channels
        self.envs = make_agent_envs(config, len(channels))
        self.nets = [build_network(spec, config) for _ in channels]
        for net in self.nets:
            # Noisy layers explore only in train mode; other layers (dropout) act in eval mode.
            net.train(config.noisy)
        self.windows = [NStepWindow(config.n_step, config.gamma) for _ in channels]
        self.subscribers = [WeightSubscriber(ch.model, net, config.fixes)
                            for ch, net in zip(channels, self.nets, strict=True)]
        # One stream per agent: epsilon draws and random actions; taus and noise when acting.
        self.rngs = [np.random.default_rng(s) for s in seeds]
        self.generators = [torch.Generator().manual_seed(s) for s in seeds]
        self.env_steps = 0  # per agent: every agent takes one step per actor step
        self._fault_at = config.fault_at("actor")
        self.syncs = 0
        self.unpulled_steps = [0] * len(channels)  # steps acted with weights never pulled
        self.truncated_as_terminal = [0] * len(channels)  # time-limit steps stored as terminal
        self._lag = np.zeros(len(channels))  # summed policy lag since the last record
        self._lag_steps = 0

    def pull(self, force: bool = False) -> None:
        """Sync each local copy whose shared version changed (every copy when ``force``)."""
        for sub in self.subscribers:
            self.syncs += sub.sync(force)

    def first_pull(self) -> None:
        """Before the first step."""
        # FIX(initial_state): one blocking pull: never act with this process's random init.
        if self.config.fixes.initial_state:
            self.pull(force=True)
        else:  # trust the local copy as version 0: it is replaced only by a newer version
            for sub in self.subscribers:
                sub.version = 0

    @torch.no_grad()
    def act(self, agent_id: int, epsilon: float) -> int:
        rng, generator = self.rngs[agent_id], self.generators[agent_id]
        if rng.random() < epsilon:
            return int(rng.integers(self.envs.spec.n_actions))
        net = self.nets[agent_id]
        net.reset_noise(generator)
        obs = torch.as_tensor(self.envs.observe(agent_id)).unsqueeze(0)
        return int(iqn.greedy_action(net, obs, self.config.num_quantile_samples,
                                     generator=generator)[0])

    def step(self, records) -> None:
        """One env step for every agent, in turn."""
        if self.env_steps == self._fault_at:
            raise InjectedFault(f"actor: injected fault at env step {self.env_steps}")
        if self.env_steps % self.config.sync_interval == 0:
            self.pull()
        now = time.time()
        for i, ch in enumerate(self.channels):
            epsilon = float(ch.epsilon.value)
            version = self.subscribers[i].version
            self.unpulled_steps[i] += self.subscribers[i].copies == 0
            action = self.act(i, epsilon)
            r = self.envs.step(i, action)
            # FIX(truncation_bootstrap): a time limit is not a terminal state.
            if self.config.fixes.truncation_bootstrap:
                terminated = r.terminated
            else:  # `done = terminated or truncated`: no bootstrap at the time limit
                terminated = r.terminated or r.truncated
            self.truncated_as_terminal[i] += bool(terminated and r.truncated and not r.terminated)
            for row in self.windows[i].push(r.obs, action, r.reward, r.next_obs, terminated,
                                            r.truncated, version, epsilon):
                ch.buffer.add(*row)
            # Policy lag: how many learner updates the acting weights are behind.
            self._lag[i] += ch.updates.value - version
            if r.episode_return is not None:
                records.put((EPISODE, i, dict(env_step=self.env_steps + 1, time=now,
                                              ret=r.episode_return, length=r.episode_length)))
        self.env_steps += 1
        self._lag_steps += 1
        for ch in self.channels:
            ch.env_steps.value = self.env_steps  # the rows are written: learners may use them
        if self.env_steps % self.config.log_interval == 0:
            self.record(records)

    def record(self, records) -> None:
        if self._lag_steps == 0:
            return
        for i, ch in enumerate(self.channels):
            records.put((ACTOR, i, dict(
                env_step=self.env_steps, time=time.time(),
                policy_lag=self._lag[i] / self._lag_steps,
                epsilon=float(ch.epsilon.value), version=self.subscribers[i].version,
                syncs=self.syncs, sync_retries=self.subscribers[i].retries,
                checked_syncs=self.subscribers[i].checked,
                unpulled_steps=self.unpulled_steps[i],
                truncated_as_terminal=self.truncated_as_terminal[i],
                torn_kept=self.subscribers[i].torn_kept, threads=torch.get_num_threads())))
        self._lag[:] = 0
        self._lag_steps = 0

    def learners_behind(self) -> bool:
        """Whether some learner is more than ``max_update_lag`` updates behind its ratio."""
        owed = self.config.updates_owed(self.env_steps)
        return any(owed - ch.updates.value > self.config.max_update_lag for ch in self.channels)

    def close(self) -> None:
        self.envs.close()


def actor_main(config: Config, spec: EnvSpec, channels: list[AgentChannel], seeds: list[int],
               rendezvous: Rendezvous, *, records) -> None:
    """Process entry point: act for every agent until ``total_env_steps``."""
    rendezvous.attach(ACTOR_PARTY)
    actor = Actor(config, spec, channels, seeds)
    actor.first_pull()
    total, round_steps = config.total_env_steps, config.sync_interval
    learners = [learner_party(ch.agent_id) for ch in channels]

    def caught_up() -> bool:
        return not actor.learners_behind()

    try:
        if config.mode == "lockstep":
            while actor.env_steps < total:
                for _ in range(min(round_steps, total - actor.env_steps)):
                    actor.step(records)
                rendezvous.wait(ACTOR_PARTY)  # learners train on this round's data
                rendezvous.wait(ACTOR_PARTY)  # ... and publish; the next round pulls their weights
        else:
            while actor.env_steps < total and not rendezvous.stopped():
                # A learner lags more than the bound allows: sleep until one catches up.
                rendezvous.sleep_until(ACTOR_PARTY, caught_up)
                actor.step(records)
                for party in learners:  # new data: wake a learner that waits for it
                    rendezvous.ring(party)
        actor.record(records)
    finally:
        actor.close()
