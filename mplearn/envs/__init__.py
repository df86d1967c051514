"""Environments as the actor sees them: ``n_agents`` agents, each stepped in turn.

Any gymnasium environment with a Box observation and a Discrete action space plugs in through
``IndependentEnvs`` (one copy per agent). The treasure hunt, where agents share one world, is
one ``TreasureWorld`` serving every agent. The kit's own environments are registered with
gymnasium here, on ``import mplearn``, so that spawned workers find them:

* ``mplearn/Probe*-v0``: probes with known values and return distributions (``probes.py``)
* ``mplearn/DeepSea-v0``: the hard-exploration chain (``chain.py``)
* ``mplearn/TreasureHunt-v0``: the multi-agent gridworld, one agent per gymnasium env
  (``treasure.py``)
* ``mplearn/SlowCartPole-v0``: CartPole-v1 with a fixed latency per step, an actor as slow as a
  real simulator (``slow.py``)
"""

from __future__ import annotations

from mplearn.envs.base import AgentEnvironments, EnvSpec, IndependentEnvs, StepResult, env_spec
from mplearn.envs.registry import KIT_ENV_IDS, TREASURE_HUNT, register

__all__ = ["AgentEnvironments", "EnvSpec", "IndependentEnvs", "StepResult", "env_spec",
           "make_agent_envs", "KIT_ENV_IDS", "TREASURE_HUNT"]

register()


def make_agent_envs(config, n_agents: int | None = None) -> AgentEnvironments:
    """The actor's environments for ``config``: one shared world for the treasure hunt,
    independent gymnasium copies (one per agent) for every other id."""
    n = config.n_agents if n_agents is None else n_agents
    if config.env_id == TREASURE_HUNT:
        from mplearn.envs.treasure import TreasureWorld

        return TreasureWorld(n_agents=n, seed=config.seed, **config.env_kwargs)
    return IndependentEnvs(config.env_id, n, config.seed, config.env_kwargs)
