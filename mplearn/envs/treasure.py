"""The treasure hunt: several agents acting in turn in one shared, walled gridworld.

The world the plan was built for (the sorrel project's ``treasurehunt``). Gems appear at random
on empty cells; an agent that moves onto a gem collects it (+10); moving into a wall or another
agent costs -1 and the agent stays. Every agent sees an egocentric window of radius 2: 5 x 5
cells, each one-hot over (empty, wall, gem, agent), flattened channel-last to a float32 vector
(index = (row * 5 + column) * 4 + channel; the centre cell is the agent itself, and everything
outside the grid reads as wall). With ``frame_stack`` k the observation is the agent's last k
views, oldest first. An episode is ``max_turns`` turns of every agent, then truncated (a time
limit, not a terminal state) and the world starts afresh.

``TreasureWorld`` is the actor's ``AgentEnvironments``: one world serving ``n_agents`` agents,
stepped in turn (0, 1, ..., n-1, 0, ...). ``TreasureHuntEnv`` is the same world with one agent,
as a gymnasium environment ("mplearn/TreasureHunt-v0").

Transitions as an agent sees them: ``obs`` is its view when its turn comes, ``next_obs`` its view
right after its own move (and, for the last agent of a round, after new gems appeared); the
other agents' moves before its next turn are part of the world's dynamics as this agent sees it.
"""

from __future__ import annotations

import re

import gymnasium as gym
import numpy as np

from mplearn.envs.base import EnvSpec, StepResult

EMPTY, WALL, GEM, AGENT = 0, 1, 2, 3
CHANNELS = ("empty", "wall", "gem", "agent")
MOVES = ((-1, 0), (1, 0), (0, -1), (0, 1))  # up, down, left, right (row, column)
_ONE_HOT = np.eye(len(CHANNELS), dtype=np.float32)
_LAYOUT_CODES = {".": EMPTY, "#": WALL, "G": GEM}


class TreasureWorld:
    """``n_agents`` agents in one ``height`` x ``width`` grid (walls included) with border walls.

    ``layout``: optional list of equal-length strings ('#' wall, '.' empty, 'G' gem, '0'-'9'
    the start of that agent): every episode then starts from it (gems still appear at random
    unless ``gem_spawn_prob`` is 0). Without it, agents start on random empty cells and each
    empty cell holds a gem with probability ``initial_gem_prob``.
    """

    def __init__(self, n_agents: int = 1, seed: int | None = 0, *, height: int = 11,
                 width: int = 11, max_turns: int = 100, gem_reward: float = 10.0,
                 bump_penalty: float = -1.0, gem_spawn_prob: float = 0.01,
                 initial_gem_prob: float = 0.05, vision_radius: int = 2, frame_stack: int = 1,
                 layout: list[str] | tuple[str, ...] | None = None):
        for name, v, low in (("n_agents", n_agents, 1), ("height", height, 3),
                             ("width", width, 3), ("max_turns", max_turns, 1),
                             ("vision_radius", vision_radius, 0), ("frame_stack", frame_stack, 1)):
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {v!r}")
        for name, p in (("gem_spawn_prob", gem_spawn_prob), ("initial_gem_prob", initial_gem_prob)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {p!r}")
        self.n_agents, self.max_turns, self.frame_stack = n_agents, max_turns, frame_stack
        self.gem_reward, self.bump_penalty = float(gem_reward), float(bump_penalty)
        self.gem_spawn_prob, self.initial_gem_prob = gem_spawn_prob, initial_gem_prob
        self.r = r = vision_radius
        self._layout = self._parse_layout(layout) if layout is not None else None
        if self._layout is not None:
            height, width = self._layout[0].shape
        self.height, self.width = height, width
        window = 2 * r + 1
        self.view_size = window * window * len(CHANNELS)
        self.spec = EnvSpec((frame_stack * self.view_size,), len(MOVES))
        # Cell codes, padded by r cells of wall on every side: a window slice never leaves it,
        # and their one-hot mirror, kept in step, so that a view is one slice copy.
        self.grid = np.full((height + 2 * r, width + 2 * r), WALL, dtype=np.int8)
        self.inner = self.grid[r:r + height, r:r + width]  # a view: writes reach the grid
        self.planes = _ONE_HOT[self.grid]  # [rows, columns, channels]
        self.rng = np.random.default_rng(seed)
        self._stamp = 0  # bumped by every change: tells whether a cached observation is current
        self._cached: tuple[int, int, np.ndarray] | None = None  # (agent, stamp, observation)
        self.reset()

    # --- episodes ----------------------------------------------------------------------------
    def _parse_layout(self, layout) -> tuple[np.ndarray, dict[int, tuple[int, int]]]:
        rows = list(layout)
        if not rows or len({len(row) for row in rows}) != 1:
            raise ValueError("layout must be a non-empty list of equal-length strings")
        codes = np.zeros((len(rows), len(rows[0])), dtype=np.int8)
        starts = {}
        for i, row in enumerate(rows):
            for j, ch in enumerate(row):
                if ch.isdigit():
                    starts[int(ch)] = (i, j)
                elif ch in _LAYOUT_CODES:
                    codes[i, j] = _LAYOUT_CODES[ch]
                else:
                    raise ValueError(f"layout: unknown cell {ch!r} (use # . G 0-9)")
        if sorted(starts) != list(range(self.n_agents)):
            raise ValueError(f"layout must place agents 0..{self.n_agents - 1}, "
                             f"places {sorted(starts)}")
        return codes, starts

    def reset(self, seed: int | None = None) -> None:
        """Start a new episode (reseeding the world's random stream when ``seed`` is given)."""
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        if seed is not None or not hasattr(self, "_plan"):
            self._plan: list[list[int]] = []  # gem spawns drawn ahead, one list per round
        inner, r = self.inner, self.r
        if self._layout is not None:
            codes, starts = self._layout
            inner[...] = codes
            cells = [starts[i] for i in range(self.n_agents)]
        else:
            inner[...] = EMPTY
            inner[0, :] = inner[-1, :] = inner[:, 0] = inner[:, -1] = WALL
            free = np.flatnonzero(inner.reshape(-1) == EMPTY)
            if len(free) < self.n_agents:
                raise ValueError(f"a {self.height}x{self.width} grid has room for {len(free)} "
                                 f"agents, not {self.n_agents}")
            picks = self.rng.choice(free, size=self.n_agents, replace=False)
            cells = [divmod(int(k), self.width) for k in picks]
        for y, x in cells:
            inner[y, x] = AGENT
        if self._layout is None and self.initial_gem_prob > 0:
            draws = self.rng.random(inner.shape) < self.initial_gem_prob
            inner[draws & (inner == EMPTY)] = GEM
        self.planes[...] = _ONE_HOT[self.grid]
        self.positions = [[y + r, x + r] for y, x in cells]  # padded (row, column) per agent
        self.turn = 0  # the agent whose turn it is
        self.round = 0  # completed rounds (every agent moved once) in this episode
        self.returns = [0.0] * self.n_agents
        self._stamp += 1
        # Oldest first; an episode starts with its first view repeated.
        self.frames = [np.tile(self._view(i), self.frame_stack) for i in range(self.n_agents)]

    def _set(self, y: int, x: int, code: int) -> None:
        """Write one cell (padded coordinates) in both the codes and the one-hot planes."""
        planes = self.planes[y, x]
        planes[self.grid[y, x]] = 0.0
        planes[code] = 1.0
        self.grid[y, x] = code

    def _spawn(self) -> None:
        """Gems for one round: each empty cell becomes one with probability ``gem_spawn_prob``.

        The Bernoulli draws are made ahead for 256 rounds at once (vectorised), so a round
        costs a lookup: the cells drawn, usually none or one.
        """
        if self.gem_spawn_prob <= 0.0:
            return
        if not self._plan:
            hits = self.rng.random((256, self.inner.size)) < self.gem_spawn_prob
            rounds, cells = np.nonzero(hits)
            plan = [[] for _ in range(256)]
            for k, c in zip(rounds.tolist(), cells.tolist(), strict=True):
                plan[k].append(c)
            self._plan = plan[::-1]  # pop() from the end: round order
        r, width = self.r, self.width
        for c in self._plan.pop():
            y, x = divmod(c, width)
            if self.grid[y + r, x + r] == EMPTY:
                self._set(y + r, x + r, GEM)

    def cell(self, agent_id: int) -> tuple[int, int]:
        """The agent's (row, column) in the grid (walls included, 0-based)."""
        y, x = self.positions[agent_id]
        return y - self.r, x - self.r

    # --- observing ---------------------------------------------------------------------------
    def _view(self, agent_id: int) -> np.ndarray:
        y, x = self.positions[agent_id]
        r = self.r
        return self.planes[y - r:y + r + 1, x - r:x + r + 1].flatten()  # a copy, channel-last

    def observe(self, agent_id: int) -> np.ndarray:
        """The agent's current observation: its last ``frame_stack`` views, oldest first."""
        cached = self._cached
        if cached is not None and cached[0] == agent_id and cached[1] == self._stamp:
            return cached[2]
        obs = self._view(agent_id)
        if self.frame_stack > 1:
            obs = np.concatenate((self.frames[agent_id][self.view_size:], obs))
        self._cached = (agent_id, self._stamp, obs)
        return obs

    # --- acting ------------------------------------------------------------------------------
    def step(self, agent_id: int, action: int) -> StepResult:
        if agent_id != self.turn:
            raise ValueError(f"agent {agent_id} stepped out of turn: agents act in turn "
                             f"0..{self.n_agents - 1}, now agent {self.turn}")
        obs = self.observe(agent_id)
        pos = self.positions[agent_id]
        y, x = pos
        dy, dx = MOVES[action]
        target = self.grid[y + dy, x + dx]
        if target in (WALL, AGENT):
            reward = self.bump_penalty
        else:
            reward = self.gem_reward if target == GEM else 0.0
            self._set(y, x, EMPTY)
            self._set(y + dy, x + dx, AGENT)
            pos[0], pos[1] = y + dy, x + dx
        self._stamp += 1
        truncated = self.round == self.max_turns - 1  # this was the agent's last turn
        last_of_round = agent_id == self.n_agents - 1
        if last_of_round:
            self.round += 1
            self._spawn()
        view = self._view(agent_id)
        if self.frame_stack == 1:
            next_obs = view
        else:
            next_obs = np.concatenate((obs[self.view_size:], view))
            self.frames[agent_id] = obs  # the views it acted on: the next turn's history
        self.returns[agent_id] += reward
        result = StepResult(obs, next_obs, reward, False, truncated)
        if truncated:
            result.episode_return = self.returns[agent_id]
            result.episode_length = self.max_turns
        self.turn = 0 if last_of_round else agent_id + 1
        if truncated and last_of_round:
            self.reset()
        return result

    def close(self) -> None:
        pass


class TreasureHuntEnv(gym.Env):
    """The treasure hunt with one agent, as a gymnasium environment (kwargs: ``TreasureWorld``)."""

    metadata = {"render_modes": []}

    def __init__(self, **kwargs):
        for name, source in (("n_agents", "Config.n_agents"), ("seed", "reset(seed=...)")):
            if name in kwargs:  # in the system, TreasureWorld gets them from the Config
                raise ValueError(f"{name} is not an env kwarg: it comes from {source}")
        if kwargs.get("layout") is not None:  # a multi-agent layout: the others' starts are empty
            kwargs["layout"] = [re.sub("[1-9]", ".", row) for row in kwargs["layout"]]
        self.world = TreasureWorld(n_agents=1, seed=None, **kwargs)
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape=self.world.spec.obs_shape,
                                                dtype=np.float32)
        self.action_space = gym.spaces.Discrete(self.world.spec.n_actions)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        # The world draws from the env's seeded stream: reset(seed=s) is reproducible.
        self.world.reset(seed=int(self.np_random.integers(2**63)))
        return self.world.observe(0), {}

    def step(self, action):
        if not self.action_space.contains(action):
            raise ValueError(f"action must be in {self.action_space}, got {action!r}")
        r = self.world.step(0, int(action))
        return r.next_obs, r.reward, r.terminated, r.truncated, {}
