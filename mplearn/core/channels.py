"""What an agent's actor and learner share, and how processes meet in lockstep rounds."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from mplearn.core.replay import ReplayBuffer
from mplearn.core.weights import IQNAgent


class Stopped(Exception):
    """The system is stopping: leave the loop quietly."""


@dataclass
class AgentChannel:
    """One agent's shared state. Everything here lives in shared memory."""

    agent_id: int
    model: IQNAgent  # shared_models[agent_id]: weights published by the learner
    buffer: ReplayBuffer  # transitions written by the actor, sampled by the learner
    epsilon: object  # mp.Value("d"): published by the learner, read by the actor
    env_steps: object  # mp.Value("q"): env steps of this agent, written by the actor
    updates: object  # mp.Value("q"): learner updates, written by the learner


class Rendezvous:
    """A stop event and, for lockstep, a barrier that every worker passes twice per round."""

    def __init__(self, ctx, parties: int, lockstep: bool):
        self._stop = ctx.Event()
        self._barrier = ctx.Barrier(parties) if lockstep else None

    def stopped(self) -> bool:
        return self._stop.is_set()

    def wait(self) -> None:
        try:
            self._barrier.wait()
        except threading.BrokenBarrierError:
            raise Stopped from None

    def stop(self) -> None:
        self._stop.set()
        if self._barrier is not None:
            self._barrier.abort()  # wake every worker blocked at the barrier
