"""The actor's environment interface and the independent-copies adapter for gymnasium ids."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import gymnasium as gym
import numpy as np


@dataclass(frozen=True)
class EnvSpec:
    obs_shape: tuple[int, ...]
    n_actions: int


@dataclass
class StepResult:
    obs: np.ndarray  # the observation the action was taken in
    next_obs: np.ndarray  # the true next observation (before any reset)
    reward: float
    terminated: bool  # the MDP ended: do not bootstrap
    truncated: bool  # time limit: bootstrap through it
    episode_return: float | None = None  # set when the agent's episode just ended
    episode_length: int | None = None


class AgentEnvironments(Protocol):
    n_agents: int
    spec: EnvSpec

    def observe(self, agent_id: int) -> np.ndarray: ...

    def step(self, agent_id: int, action: int) -> StepResult: ...

    def close(self) -> None: ...


def _first_line(e: BaseException) -> str:
    """An exception in one line, whatever its text: ``ValueError()`` has none."""
    lines = [line for line in str(e).splitlines() if line.strip()]
    return lines[0] if lines else f"{type(e).__name__} (no message)"


def _check_render_mode(env_id: str, mode, declared) -> None:
    """An env renders itself at every step in "human" mode: a worker has no window to draw in
    (and often no display), so the actor would die a few seconds into the run. A mode the env
    does not declare is a typo: gymnasium only warns."""
    if mode is None:
        return
    if mode == "human":
        raise ValueError("env_kwargs: render_mode 'human' draws a window at every step, which "
                         "a worker process cannot do; use None or 'rgb_array'")
    if declared is not None and mode not in declared:
        raise ValueError(f"env_kwargs: render_mode {mode!r} is not among the render modes "
                         f"of {env_id!r}: {list(declared)}")


def _declared_render_modes(spec: gym.envs.registration.EnvSpec) -> list | None:
    """``metadata["render_modes"]`` of the env's class, read without making one; None if the
    entry point has no metadata."""
    try:
        creator = gym.envs.registration.load_env_creator(spec.entry_point) \
            if isinstance(spec.entry_point, str) else spec.entry_point
    except Exception:  # gym.make reports it below, in its own words
        return None
    metadata = getattr(creator, "metadata", None)
    return metadata.get("render_modes") if isinstance(metadata, dict) else None


def env_spec(env_id: str, env_kwargs: dict | None = None) -> EnvSpec:
    """The spaces of ``env_id``; ValueError (naming the field) unless Box obs, Discrete actions."""
    from mplearn.envs.registry import register

    register()  # the kit's ids, also when mplearn.envs was never imported

    try:
        spec = gym.spec(env_id)
    except Exception as e:  # gymnasium raises several error types for unknown ids
        raise ValueError(f"env_id: cannot make {env_id!r}: {_first_line(e)}") from None
    if env_kwargs and "render_mode" in env_kwargs:
        _check_render_mode(env_id, env_kwargs["render_mode"], _declared_render_modes(spec))
    try:
        env = gym.make(env_id, **(env_kwargs or {}))
    except Exception as e:
        what = f"env_kwargs: cannot make {env_id!r} with {env_kwargs}" if env_kwargs \
            else f"env_id: cannot make {env_id!r}"
        raise ValueError(f"{what}: {_first_line(e)}") from None
    try:
        obs_space, act_space = env.observation_space, env.action_space
    finally:
        env.close()
    if not isinstance(obs_space, gym.spaces.Box):
        raise ValueError(f"env_id: {env_id!r} needs a Box observation space, has {obs_space}")
    if not isinstance(act_space, gym.spaces.Discrete):
        raise ValueError(f"env_id: {env_id!r} needs a Discrete action space, has {act_space}")
    return EnvSpec(tuple(int(d) for d in obs_space.shape), int(act_space.n))


class IndependentEnvs:
    """One gymnasium environment per agent, reset automatically at the end of an episode."""

    def __init__(self, env_id: str, n_agents: int, seed: int, env_kwargs: dict | None = None):
        self.n_agents = n_agents
        self.spec = env_spec(env_id, env_kwargs)
        self._envs = [gym.make(env_id, **(env_kwargs or {})) for _ in range(n_agents)]
        # Distinct, reproducible seeds per agent; later resets continue each env's own RNG.
        self._obs = [np.asarray(env.reset(seed=seed * 1000 + i)[0], dtype=np.float32)
                     for i, env in enumerate(self._envs)]
        for i, env in enumerate(self._envs):
            env.action_space.seed(seed * 1000 + i)
        self._return = [0.0] * n_agents
        self._length = [0] * n_agents

    def observe(self, agent_id: int) -> np.ndarray:
        return self._obs[agent_id]

    def step(self, agent_id: int, action: int) -> StepResult:
        env = self._envs[agent_id]
        obs = self._obs[agent_id]
        next_obs, reward, terminated, truncated, _ = env.step(action)
        next_obs = np.asarray(next_obs, dtype=np.float32)
        self._return[agent_id] += float(reward)
        self._length[agent_id] += 1
        result = StepResult(obs, next_obs, float(reward), bool(terminated), bool(truncated))
        if terminated or truncated:
            result.episode_return = self._return[agent_id]
            result.episode_length = self._length[agent_id]
            self._return[agent_id], self._length[agent_id] = 0.0, 0
            next_obs = np.asarray(env.reset()[0], dtype=np.float32)
        self._obs[agent_id] = next_obs
        return result

    def close(self) -> None:
        for env in self._envs:
            env.close()
