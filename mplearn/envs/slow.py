"""SlowCartPole: CartPole-v1 whose every step also waits a fixed latency.

The kit's CartPole actor steps in ~0.1 ms while an IQN update takes ~2 ms, so in async mode the
learner is always the one behind, and anything that only matters when the learner has time to
spare (the update-to-data throttle) never gets to act. A real simulator or a robot is slower:
this env gives the actor such a step (``step_latency_s``, default 1 ms, spent sleeping so that it
costs no core) and leaves CartPole's dynamics, rewards and 500-step limit exactly as they are.
"""

from __future__ import annotations

import math
import time

from gymnasium.envs.classic_control.cartpole import CartPoleEnv

SLOW_CARTPOLE = "mplearn/SlowCartPole-v0"
DEFAULT_LATENCY_S = 0.001
MAX_LATENCY_S = 1.0


class SlowCartPoleEnv(CartPoleEnv):
    # No rendering: CartPole's needs pygame, which the kit does not install.
    metadata = {"render_modes": [], "render_fps": CartPoleEnv.metadata["render_fps"]}

    def __init__(self, step_latency_s: float = DEFAULT_LATENCY_S, render_mode: str | None = None):
        if isinstance(step_latency_s, bool) or not isinstance(step_latency_s, (int, float)) \
                or not (math.isfinite(step_latency_s) and 0 <= step_latency_s <= MAX_LATENCY_S):
            raise ValueError(f"step_latency_s must be a number of seconds in [0, "
                             f"{MAX_LATENCY_S:g}], got {step_latency_s!r}")
        super().__init__(render_mode=render_mode)
        self.step_latency_s = float(step_latency_s)

    def step(self, action):
        time.sleep(self.step_latency_s)
        return super().step(action)


def step_latency_s(env_id: str, env_kwargs: dict | None = None) -> float:
    """Seconds each step of ``env_id`` waits on purpose (0 for every other env)."""
    if env_id != SLOW_CARTPOLE:
        return 0.0
    return float((env_kwargs or {}).get("step_latency_s", DEFAULT_LATENCY_S))
