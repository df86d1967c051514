"""The kit's environments: registration, gymnasium's checker, the probes' known answers, the
DeepSea chain's dynamics, env kwargs through the config."""

from __future__ import annotations

import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from mplearn import Config, ConfigError
from mplearn.core.networks import IQNNetwork
from mplearn.envs import KIT_ENV_IDS, IndependentEnvs, env_spec, make_agent_envs
from mplearn.envs.probes import PROBE_GAMMA, PROBES, Distribution, compare


@pytest.mark.parametrize("env_id", KIT_ENV_IDS)
def test_check_env_passes_without_warnings(env_id):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the checker reports most problems as warnings
        if env_id == "mplearn/SlowCartPole-v0":  # CartPole-v1's own space: unbounded velocities
            warnings.filterwarnings("ignore", message=".*(minimum|maximum) value is -?infinity")
        env = gym.make(env_id)
        check_env(env.unwrapped)
        env.close()


def test_importing_mplearn_registers_every_id_in_a_fresh_interpreter():
    code = ("import gymnasium as gym, mplearn, mplearn.envs as e; "
            "print(all(i in gym.registry for i in e.KIT_ENV_IDS), len(e.KIT_ENV_IDS))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120).stdout.split()
    assert out == ["True", str(len(KIT_ENV_IDS))]


# --- probes: the table is right about its own environments -----------------------------------

def _episode_returns(env_id: str, episodes: int = 4000):
    """Monte Carlo: {(state, action): [discounted returns]} for the probe's first step, and for
    every later step (the discount probe's second state)."""
    env = gym.make(env_id)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    found: dict[tuple[float, int], list[float]] = {}
    for _ in range(episodes):
        obs, _ = env.reset()
        visited, rewards, done = [], [], False
        while not done:
            action = int(rng.integers(env.action_space.n))
            visited.append((float(obs[0]), action))
            obs, reward, terminated, truncated, _ = env.step(action)
            rewards.append(reward)
            done = terminated or truncated
        for t, key in enumerate(visited):
            ret = sum(PROBE_GAMMA ** k * r for k, r in enumerate(rewards[t:]))
            found.setdefault(key, []).append(ret)
    return found


@pytest.mark.parametrize("env_id", list(PROBES))
def test_probe_table_matches_its_environment(env_id):
    probe = PROBES[env_id]
    found = _episode_returns(env_id)
    expected = {(probe.states[s][0], a): z for (s, a), z in probe.returns.items()}
    assert set(found) == set(expected)
    for key, z in expected.items():
        returns = np.array(found[key])
        assert sorted(set(np.round(returns, 9))) == sorted(z.values)
        for value, p in zip(z.values, z.probs, strict=True):
            assert abs(np.mean(returns == value) - p) < 0.05, (key, value)


def test_distribution_quantiles_and_the_huber_fixed_point():
    pm = Distribution((-1.0, 1.0), (0.5, 0.5))
    assert pm.quantile(0.2) == -1.0 and pm.quantile(0.8) == 1.0 and pm.jumps() == [0.5]
    # kappa = 1: for tau <= 1/2 the minimiser solves (1 - tau)(1 + q) = tau.
    for tau in (0.1, 0.3, 0.5):
        assert pm.huber_quantile(tau, 1.0) == pytest.approx(tau / (1 - tau) - 1, abs=1e-9)
    assert pm.huber_quantile(0.1, 1e-6) == pytest.approx(-1.0, abs=1e-5)  # kappa -> 0
    skew = Distribution((0.0, 4.0), (0.75, 0.25))
    assert skew.mean == 1.0 and skew.quantile(0.5) == 0.0
    assert skew.huber_quantile(0.5, 1.0) == pytest.approx(1 / 3, abs=1e-9)
    assert skew.huber_mean(1e-4) == pytest.approx(1.0, abs=1e-3)
    assert skew.huber_mean(1.0) > 1.05  # kappa = 1 biases the acting Q of a skewed return


def test_compare_fails_an_untrained_network():
    torch.manual_seed(0)
    for env_id in ("mplearn/ProbeConstant-v0", "mplearn/ProbeAction-v0"):
        probe = PROBES[env_id]
        net = IQNNetwork(1, probe.n_actions, hidden_dim=16)
        rows = compare(probe, net, kappa=1.0)
        assert not all(r.ok for r in rows)
        assert {r.what for r in rows} >= {"mean", "tau=0.1", "tau=0.9"}


# --- the DeepSea chain -------------------------------------------------------------------------

def _deep_sea(size=6, seed=0):
    env = gym.make("mplearn/DeepSea-v0", size=size).unwrapped
    obs, _ = env.reset(seed=seed)
    return env, obs


def _walk(env, go_right: bool):
    """Episode return and length when always moving right (or left)."""
    total, steps, done = 0.0, 0, False
    while not done:
        right = int(env.right_action[env.row, env.column])
        obs, reward, done, truncated, _ = env.step(right if go_right else 1 - right)
        assert not truncated
        total, steps = total + reward, steps + 1
    return total, steps, obs


def test_deep_sea_pays_only_the_all_right_path():
    env, obs = _deep_sea(size=6)
    assert obs.shape == (36,) and obs[0] == 1.0 and obs.sum() == 1.0
    total, steps, last = _walk(env, go_right=True)
    assert steps == 6 and total == pytest.approx(0.99) and last.sum() == 0.0
    assert env.optimal_return == pytest.approx(0.99)
    env.reset()
    total, steps, _ = _walk(env, go_right=False)
    assert steps == 6 and total == 0.0
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)


def test_deep_sea_one_hot_follows_the_agent():
    env, _ = _deep_sea(size=5)
    right = int(env.right_action[0, 0])
    obs, reward, *_ = env.step(right)
    assert obs.reshape(5, 5)[1, 1] == 1.0 and reward == pytest.approx(-0.01 / 5)
    obs, reward, *_ = env.step(1 - int(env.right_action[1, 1]))
    assert obs.reshape(5, 5)[2, 0] == 1.0 and reward == 0.0
    obs, *_ = env.step(1 - int(env.right_action[2, 0]))  # left at the wall: stays at column 0
    assert obs.reshape(5, 5)[3, 0] == 1.0


def test_deep_sea_action_mapping_is_fixed_by_the_seed():
    env, _ = _deep_sea(size=10, seed=1)
    mapping = env.right_action.copy()
    assert 0.3 < mapping.mean() < 0.7  # both actions mean "right" somewhere
    env.reset()
    assert np.array_equal(env.right_action, mapping)  # an unseeded reset keeps the MDP
    env.reset(seed=1)
    assert np.array_equal(env.right_action, mapping)
    env.reset(seed=2)
    assert not np.array_equal(env.right_action, mapping)


def test_deep_sea_rejects_bad_sizes():
    with pytest.raises(ValueError, match="size"):
        gym.make("mplearn/DeepSea-v0", size=1)


# --- env kwargs through the config -------------------------------------------------------------

def test_env_kwargs_reach_the_spec_and_the_actor_envs():
    assert env_spec("mplearn/DeepSea-v0", {"size": 4}).obs_shape == (16,)
    config = Config(env_id="mplearn/DeepSea-v0", env_kwargs={"size": 4}, n_agents=2)
    envs = make_agent_envs(config)
    assert isinstance(envs, IndependentEnvs) and envs.n_agents == 2
    assert envs.observe(1).shape == (16,)
    assert envs.spec.n_actions == 2
    envs.close()


def test_bad_env_kwargs_fail_naming_the_field():
    with pytest.raises(ValueError, match=r"^env_kwargs: cannot make 'mplearn/DeepSea-v0'"):
        env_spec("mplearn/DeepSea-v0", {"size": 0})
    with pytest.raises(ValueError, match=r"^env_kwargs: .*unexpected keyword"):
        env_spec("CartPole-v1", {"no_such_argument": 1})
    with pytest.raises(ValueError, match=r"^env_id: cannot make"):
        env_spec("mplearn/NoSuchEnv-v0", {"size": 3})
    with pytest.raises(ConfigError, match=r"^env_kwargs: expected a dict"):
        Config(env_kwargs=[("size", 3)])
    assert hash(Config(env_kwargs={"size": 3})) == hash(Config())  # kwargs are not hashed


# --- SlowCartPole: CartPole-v1 with a latency per step -------------------------------------------

def test_slow_cartpole_is_cartpole_v1_step_for_step_and_waits_its_latency():
    import time

    from mplearn.envs.slow import SLOW_CARTPOLE

    slow = gym.make(SLOW_CARTPOLE, step_latency_s=0.002)
    plain = gym.make("CartPole-v1")
    assert slow.spec.max_episode_steps == plain.spec.max_episode_steps == 500
    assert np.array_equal(slow.reset(seed=7)[0], plain.reset(seed=7)[0])
    steps, start, done = 0, time.perf_counter(), False
    while not done:
        action = (steps // 3) % 2
        a, b = slow.step(action), plain.step(action)
        assert np.array_equal(a[0], b[0]) and a[1:4] == b[1:4]
        steps, done = steps + 1, a[2] or a[3]
    # sleep() never returns early: the latency is a lower bound on each step's wall time
    assert time.perf_counter() - start >= steps * 0.002


@pytest.mark.parametrize("latency", [-0.001, float("nan"), 2.0, "1ms", True])
def test_slow_cartpole_refuses_a_bad_latency_in_one_line_naming_it(latency):
    from mplearn.envs.slow import SLOW_CARTPOLE

    with pytest.raises(ValueError, match=r"^env_kwargs: .*step_latency_s") as info:
        env_spec(SLOW_CARTPOLE, {"step_latency_s": latency})
    assert "\n" not in str(info.value)


def test_the_scheduler_counts_the_slow_envs_latency_in_a_runs_cost():
    from mplearn.envs.slow import SLOW_CARTPOLE
    from mplearn.lab.experiments import RunSpec

    base = Config(mode="async", total_env_steps=10_000, updates_per_step=0.05)
    plain = RunSpec(base).cost_s()
    slow = RunSpec(base.replace(env_id=SLOW_CARTPOLE,
                                env_kwargs={"step_latency_s": 0.003})).cost_s()
    assert slow == pytest.approx(plain - 10_000 * 0.13e-3 + 10_000 * (0.13e-3 + 0.003))
