"""The kit's environments registered with gymnasium (idempotent), so that ``gym.make`` finds
them in any process, spawned workers included."""

from __future__ import annotations

import gymnasium as gym

from mplearn.envs.probes import ENTRY_POINTS as _PROBES
from mplearn.envs.slow import SLOW_CARTPOLE

TREASURE_HUNT = "mplearn/TreasureHunt-v0"
_ENTRY_POINTS = {
    **{env_id: f"mplearn.envs.probes:{cls.__name__}" for env_id, cls in _PROBES.items()},
    "mplearn/DeepSea-v0": "mplearn.envs.chain:DeepSeaEnv",
    TREASURE_HUNT: "mplearn.envs.treasure:TreasureHuntEnv",
    SLOW_CARTPOLE: "mplearn.envs.slow:SlowCartPoleEnv",
}
# CartPole-v1's time limit and solved threshold, for its slow twin.
_LIMITS = {SLOW_CARTPOLE: {"max_episode_steps": 500, "reward_threshold": 475.0}}
KIT_ENV_IDS = tuple(_ENTRY_POINTS)



def register() -> None:
    for env_id, entry in _ENTRY_POINTS.items():
        if env_id not in gym.registry:  # a second call (or a reload) must not warn
            gym.register(env_id, entry_point=entry, **_LIMITS.get(env_id, {}))
