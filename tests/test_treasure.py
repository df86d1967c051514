"""The treasure hunt: dynamics on hand-made layouts, views, truncation, determinism, and three
agents sharing one world under the multiprocess system in every mode."""

from __future__ import annotations

import numpy as np
import pytest

from mplearn import Config, System
from mplearn.envs import TREASURE_HUNT, env_spec, make_agent_envs
from mplearn.envs.treasure import AGENT, EMPTY, GEM, WALL, TreasureWorld

UP, DOWN, LEFT, RIGHT = range(4)


def world(layout, n_agents=1, **kwargs) -> TreasureWorld:
    return TreasureWorld(n_agents=n_agents, seed=0, layout=layout,
                         **{"gem_spawn_prob": 0.0, **kwargs})


def codes(obs: np.ndarray, radius: int = 2) -> np.ndarray:
    """The cell codes of one view: [2r+1, 2r+1]; asserts every cell is exactly one-hot."""
    cells = obs.reshape(2 * radius + 1, 2 * radius + 1, 4)
    assert obs.dtype == np.float32
    assert np.all(cells.sum(axis=-1) == 1.0)
    return cells.argmax(axis=-1)


W, A, E, G = WALL, AGENT, EMPTY, GEM


def test_egocentric_view_on_a_hand_made_layout():
    w = world(["#######",
               "#0.G..#",
               "#.#...#",
               "#..1..#",
               "#######"], n_agents=2)
    # Agent 0 at row 1, column 1: the window reaches one row and column outside the grid,
    # which read as wall.
    assert codes(w.observe(0)).tolist() == [[W, W, W, W, W],
                                            [W, W, W, W, W],
                                            [W, W, A, E, G],
                                            [W, W, E, W, E],
                                            [W, W, E, E, A]]
    # Agent 1 at row 3, column 3.
    assert codes(w.observe(1)).tolist() == [[A, E, G, E, E],
                                            [E, W, E, E, E],
                                            [E, E, A, E, E],
                                            [W, W, W, W, W],
                                            [W, W, W, W, W]]
    r = w.step(0, RIGHT)
    assert codes(r.obs)[2, 3] == E and codes(r.next_obs)[2, 3] == G  # the gem is now adjacent
    assert w.cell(0) == (1, 2)


def test_gem_is_collected_for_plus_ten():
    w = world(["#####", "#0G.#", "#####"])
    assert (w.inner == GEM).sum() == 1
    r = w.step(0, RIGHT)
    assert r.reward == 10.0 and w.cell(0) == (1, 2)
    assert (w.inner == GEM).sum() == 0
    assert codes(r.next_obs)[2, 2] == A and codes(r.next_obs)[2, 1] == E


def test_bumping_a_wall_or_an_agent_costs_one_and_stays():
    w = world(["#####", "#01.#", "#####"], n_agents=2)
    r = w.step(0, LEFT)  # wall
    assert r.reward == -1.0 and w.cell(0) == (1, 1)
    assert np.array_equal(r.obs, r.next_obs)
    r = w.step(1, LEFT)  # agent 0
    assert r.reward == -1.0 and w.cell(1) == (1, 2)
    r = w.step(0, UP)  # wall
    assert r.reward == -1.0
    r = w.step(1, RIGHT)  # free
    assert r.reward == 0.0 and w.cell(1) == (1, 3)
    assert not r.terminated and not r.truncated


def test_agents_must_act_in_turn():
    w = world(["#####", "#01.#", "#####"], n_agents=2)
    with pytest.raises(ValueError, match="out of turn"):
        w.step(1, RIGHT)


def test_gems_appear_on_empty_cells_only():
    grid = ["#" * 30] + ["#" + "." * 28 + "#" for _ in range(28)] + ["#" * 30]
    grid[5] = grid[5][:5] + "0" + grid[5][6:]
    w = TreasureWorld(seed=3, layout=grid, gem_spawn_prob=0.05)
    w.step(0, DOWN)  # one round: each of the 783 empty cells becomes a gem w.p. 0.05
    gems = int((w.inner == GEM).sum())
    assert 15 <= gems <= 70  # Binomial(783, 0.05): mean 39, sd 6
    assert (w.inner == WALL).sum() == 4 * 29 and (w.inner == AGENT).sum() == 1
    full = world(["#####", "#0..#", "#...#", "#####"], gem_spawn_prob=1.0)
    full.step(0, RIGHT)
    assert (full.inner == GEM).sum() == 5 and (full.inner == EMPTY).sum() == 0


def test_gems_respawn_after_collection():
    w = TreasureWorld(seed=1, height=7, width=7, gem_spawn_prob=0.2, max_turns=1000)
    rng = np.random.default_rng(0)
    collected, counts = 0, []
    for _ in range(300):
        r = w.step(0, int(rng.integers(4)))
        collected += r.reward == 10.0
        counts.append(int((w.inner == GEM).sum()))
    assert collected > 20  # gems kept appearing where the agent walked
    assert max(counts) <= 24  # 25 inner cells, one holds the agent


def test_truncation_after_max_turns_then_a_fresh_world():
    layout = ["######", "#0..1#", "######"]
    w = world(layout, n_agents=2, max_turns=3)
    results = [w.step(i, RIGHT if i == 0 else LEFT) for _ in range(3) for i in range(2)]
    assert [r.truncated for r in results] == [False, False, False, False, True, True]
    assert not any(r.terminated for r in results)
    # Both move into the middle (0), then keep bumping into each other (-1).
    assert [r.reward for r in results] == [0.0, 0.0, -1.0, -1.0, -1.0, -1.0]
    assert results[4].episode_return == results[5].episode_return == -2.0
    assert results[4].episode_length == results[5].episode_length == 3
    assert results[0].episode_return is None
    assert w.turn == 0 and w.round == 0 and w.cell(0) == (1, 1) and w.cell(1) == (1, 4)


def test_frame_stacking():
    w = world(["#######", "#0....#", "#######"], frame_stack=3)
    first = w.observe(0)
    assert first.shape == (300,)
    assert np.array_equal(first[:100], first[100:200]) and np.array_equal(first[:100], first[200:])
    r1 = w.step(0, RIGHT)
    assert np.array_equal(r1.obs, first)
    assert np.array_equal(r1.next_obs[:200], first[100:])  # oldest frame dropped
    assert codes(r1.next_obs[200:])[2, 1] == E and codes(r1.next_obs[200:])[2, 0] == W
    r2 = w.step(0, RIGHT)
    assert np.array_equal(r2.obs[:200], r1.obs[100:])  # the history holds the views acted on
    assert np.array_equal(r2.obs[200:], r1.next_obs[200:])


def _rollout(seed: int, n_agents: int = 3, turns: int = 150) -> tuple[np.ndarray, np.ndarray]:
    w = TreasureWorld(n_agents=n_agents, seed=seed, max_turns=50)
    actions = np.random.default_rng(99).integers(4, size=turns * n_agents)
    obs, rewards = [], []
    for k, a in enumerate(actions):
        r = w.step(k % n_agents, int(a))
        obs.append(r.next_obs)
        rewards.append(r.reward)
    return np.array(obs), np.array(rewards)


def test_a_seed_reproduces_the_world_and_another_seed_does_not():
    a, b, c = _rollout(5), _rollout(5), _rollout(6)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_the_gymnasium_env_is_one_agent_of_the_world():
    import gymnasium as gym

    env = gym.make(TREASURE_HUNT, max_turns=5)
    o1, _ = env.reset(seed=4)
    o2, _ = env.reset(seed=4)
    assert np.array_equal(o1, o2) and o1.shape == (100,)
    ends = [env.step(0)[3] for _ in range(5)]
    assert ends == [False] * 4 + [True]


def test_make_agent_envs_builds_one_shared_world():
    config = Config(env_id=TREASURE_HUNT, n_agents=3, env_kwargs={"frame_stack": 2})
    envs = make_agent_envs(config)
    assert isinstance(envs, TreasureWorld) and envs.n_agents == 3
    assert envs.spec == env_spec(TREASURE_HUNT, {"frame_stack": 2})
    assert envs.spec.obs_shape == (200,) and envs.spec.n_actions == 4


def test_a_multi_agent_layout_through_the_config():
    layout = ["#####", "#0.1#", "#.2.#", "#####"]
    config = Config(env_id=TREASURE_HUNT, n_agents=3, env_kwargs={"layout": layout})
    assert env_spec(TREASURE_HUNT, config.env_kwargs).obs_shape == (100,)
    envs = make_agent_envs(config)
    assert [envs.cell(i) for i in range(3)] == [(1, 1), (1, 3), (2, 2)]


def test_bad_world_arguments_name_themselves():
    with pytest.raises(ValueError, match="frame_stack"):
        TreasureWorld(frame_stack=0)
    with pytest.raises(ValueError, match="room for"):
        TreasureWorld(n_agents=10, height=4, width=4)
    with pytest.raises(ValueError, match="place agents"):
        TreasureWorld(n_agents=2, layout=["#0.#"])
    with pytest.raises(ValueError, match="env_kwargs"):
        env_spec(TREASURE_HUNT, {"frame_stack": -1})
    with pytest.raises(ValueError, match="n_agents is not an env kwarg"):
        env_spec(TREASURE_HUNT, {"n_agents": 3})


@pytest.mark.usefixtures("no_leaks")
@pytest.mark.parametrize("mode", ["inline", "lockstep", "async"])
def test_three_agents_share_the_world_under_the_system(mode):
    config = Config(env_id=TREASURE_HUNT, env_kwargs={"max_turns": 40}, n_agents=3, mode=mode,
                    total_env_steps=200, learning_starts=40, hidden_dim=16, batch_size=16,
                    buffer_size=256, device="cpu", seed=2, log_interval=40)
    result = System(config).run()
    assert result.error is None and result.env_steps == 200
    assert result.updates == [160, 160, 160]
    for agent in range(3):
        steps, returns = result.returns(agent)
        assert list(steps) == [40, 80, 120, 160, 200]  # 200 turns in episodes of 40
        assert all(r == int(r) for r in returns)  # sums of +10 and -1
