"""Environments as the actor sees them: ``n_agents`` agents, each stepped in turn.

Any gymnasium environment with a Box observation and a Discrete action space plugs in through
``IndependentEnvs`` (one copy per agent). Environments where agents share one world implement
the same small interface.
"""

from __future__ import annotations

from mplearn.envs.base import AgentEnvironments, EnvSpec, IndependentEnvs, StepResult, env_spec

__all__ = ["AgentEnvironments", "EnvSpec", "IndependentEnvs", "StepResult", "env_spec",
           "make_agent_envs"]


def make_agent_envs(env_id: str, n_agents: int, seed: int) -> AgentEnvironments:
    return IndependentEnvs(env_id, n_agents, seed)
