"""DeepSea: the hard-exploration chain (Osband et al. 2019, "Deep Exploration via Randomized
Value Functions"; bsuite's ``deep_sea``).

An N x N grid. The agent starts at the top-left cell and descends one row per step, moving one
column left or right; the episode ends (terminated) after N steps, on the bottom row. Reaching
the bottom-right cell, by moving right on every one of the N steps, pays +1; each move right
costs 0.01 / N. So the optimal return is 0.99, and the small cost is the distractor: a greedy
agent learns that "left" is better at every cell it has seen and never goes deep. Which action
means "right" is drawn per cell at a seeded reset and kept for later resets, so a network's
initial bias toward one action index cannot solve it by luck: uniformly random actions find the
treasure with probability 2^-N per episode.

Observation: one-hot of the agent's cell, N * N float32 (all zeros after the last step).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

TREASURE = 1.0
MOVE_COST = 0.01  # total cost of N moves right (bsuite's unscaled move cost)


class DeepSeaEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, size: int = 8, move_cost: float = MOVE_COST):
        if isinstance(size, bool) or not isinstance(size, int) or size < 2:
            raise ValueError(f"size must be an integer >= 2, got {size!r}")
        if not 0.0 <= move_cost < TREASURE:
            raise ValueError(f"move_cost must be in [0, {TREASURE}), got {move_cost!r}")
        self.size, self.move_cost = size, float(move_cost)
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape=(size * size,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.right_action: np.ndarray | None = None  # [N, N]: the action that moves right
        self.row = self.column = 0

    def _observation(self) -> np.ndarray:
        obs = np.zeros(self.size * self.size, dtype=np.float32)
        if self.row < self.size:
            obs[self.row * self.size + self.column] = 1.0
        return obs

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None or self.right_action is None:  # the MDP is fixed by the seed
            self.right_action = self.np_random.integers(2, size=(self.size, self.size))
        self.row = self.column = 0
        return self._observation(), {}

    def step(self, action):
        if not self.action_space.contains(action):
            raise ValueError(f"action must be in {self.action_space}, got {action!r}")
        if self.row >= self.size:
            raise RuntimeError("DeepSea: step after the end of the episode; call reset()")
        n = self.size
        right = int(action) == self.right_action[self.row, self.column]
        reward = 0.0
        if right:
            reward -= self.move_cost / n
            if self.row == n - 1 and self.column == n - 1:
                reward += TREASURE
            self.column = min(self.column + 1, n - 1)
        else:
            self.column = max(self.column - 1, 0)
        self.row += 1
        terminated = self.row == n
        return self._observation(), reward, terminated, False, {}

    @property
    def optimal_return(self) -> float:
        return TREASURE - self.move_cost
