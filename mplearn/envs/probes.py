"""Probe environments with known answers, after Andy Jones' "Debugging RL without the agonizing
pain" (andyljones.com/posts/rl-debugging.html), adapted to a distributional agent.

Each probe is one or two steps long, with a Box(1) float32 observation and Discrete actions, and
its return distribution Z(s, a) is known exactly: ``PROBES[env_id]`` holds it for every state
the probe can act in. ``mplearn.lab.probes.probe_check(env_id)`` trains an agent on the probe
through the real system (inline mode) and compares the network's mean Q-values and quantiles
with the table.
What each probe isolates, when it fails:

=========================  ==========================================================
ProbeConstant-v0           value of a constant reward: the loss, the optimiser, the update
ProbeRandomReward-v0       +1 or -1 at random: the quantiles must spread to -1 and +1
ProbeObservation-v0        reward = observation (+-1): the network reads its input
ProbeAction-v0             reward depends on the action: per-action outputs, the gather
ProbeDiscount-v0           reward 1 one step later: bootstrapping, gamma, the target net
ProbeActionObservation-v0  reward +1 when the action matches the observation's sign
ProbeBimodal-v0            safe 0.5 vs 4 w.p. 1/4: a skewed return, the mean (not the
                           median) picks the action
=========================  ==========================================================

What the network should converge to is the minimiser of the quantile Huber loss, not the plain
quantile: the loss is quadratic for errors below kappa, so its minimiser lies between the
quantile and the expectile. With kappa = 1, for +-1 at random the fixed point at tau = 0.1 is
-0.889, not -1, and a skewed return's mean Q is biased: 1.10 instead of 1.00 for
ProbeBimodal. ``expected`` in a ``ProbeRow`` is that fixed point for the config's kappa;
``true`` is the distribution's own quantile or mean.

Tolerances: 0.15 for mean Q and 0.25 for a quantile, in reward units. A probe trains on about
1000 samples: for +-1 rewards their mean has a standard deviation of 0.03, which the kappa = 1
fixed point amplifies about 1.5 times, and Adam's last steps add their own noise. Over 8 seeds
of every probe the largest errors measured were 0.11 (mean) and 0.19 (quantile), both on the
random-reward and bimodal probes; a deterministic probe is within 0.05. The bugs the probes are
for are larger: discounting twice (gamma^2) is off by 0.25 on ProbeDiscount, a network that
learned nothing by about 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
import torch

PROBE_GAMMA = 0.5  # far from 1, so the discount probe's gamma shows plainly
# Quantile levels checked; a level closer than JUMP_MARGIN to a jump of the true quantile
# function is skipped: a smooth network cannot follow a step exactly.
CHECK_TAUS = (0.1, 0.3, 0.5, 0.7, 0.9)
JUMP_MARGIN = 0.1
MEAN_TOLERANCE = 0.15  # |learned mean Q - expected|, in reward units
QUANTILE_TOLERANCE = 0.25  # |learned quantile - expected| at a checked level
MEAN_TAUS = 64  # the mean Q is read on a midpoint grid of this many taus (no sampling noise)


# --- known answers ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Distribution:
    """A discrete return distribution: values with probabilities (summing to 1)."""

    values: tuple[float, ...]
    probs: tuple[float, ...] = (1.0,)

    @property
    def mean(self) -> float:
        return float(np.dot(self.values, self.probs))

    def quantile(self, tau: float) -> float:
        """F^-1(tau) = min {v : F(v) >= tau}."""
        order = np.argsort(self.values)
        cdf = np.cumsum(np.asarray(self.probs)[order])
        return float(np.asarray(self.values)[order][np.searchsorted(cdf, tau - 1e-12)])

    def huber_quantile(self, tau: float, kappa: float) -> float:
        """The minimiser q of E[rho^kappa_tau(Z - q)], the quantile Huber loss IQN minimises.

        The loss is quadratic for errors below kappa, so the minimiser lies between the quantile
        F^-1(tau) (kappa -> 0) and the expectile (kappa -> infinity): at kappa = 1, Z = +-1
        w.p. 1/2, tau = 0.1 gives -0.889, not -1.
        """
        v, p = np.asarray(self.values, dtype=float), np.asarray(self.probs, dtype=float)

        def slope(q: float) -> float:  # -dLoss/dq: decreasing in q, zero at the minimiser
            u = v - q
            return float(np.sum(p * np.where(u < 0, 1.0 - tau, tau) * np.clip(u, -kappa, kappa)))

        low, high = v.min() - kappa, v.max() + kappa
        for _ in range(60):  # bisection to ~1e-17 of the range
            mid = 0.5 * (low + high)
            low, high = (mid, high) if slope(mid) > 0 else (low, mid)
        return 0.5 * (low + high)

    def huber_mean(self, kappa: float, n: int = 64) -> float:
        """The acting rule's Q: the mean of the loss's fixed points over ``n`` midpoint taus."""
        return float(np.mean([self.huber_quantile((k + 0.5) / n, kappa) for k in range(n)]))

    def jumps(self) -> list[float]:
        """The levels tau where the quantile function jumps."""
        order = np.argsort(self.values)
        return list(np.cumsum(np.asarray(self.probs)[order])[:-1])


def _point(v: float) -> Distribution:
    return Distribution((v,), (1.0,))


@dataclass(frozen=True)
class Probe:
    """A probe's known answer: Z(s, a) for each state the agent acts in (gamma = PROBE_GAMMA)."""

    env_id: str
    what: str
    states: tuple[tuple[float, ...], ...]  # observations, indexed by ``returns``' keys
    returns: dict[tuple[int, int], Distribution]  # (state index, action) -> Z(s, a)
    gamma: float = PROBE_GAMMA

    @property
    def n_actions(self) -> int:
        return 1 + max(a for _, a in self.returns)

    def expected_q(self, state: int) -> list[float]:
        return [self.returns[state, a].mean for a in range(self.n_actions)]


_PM = Distribution((-1.0, 1.0), (0.5, 0.5))
PROBES: dict[str, Probe] = {p.env_id: p for p in (
    Probe("mplearn/ProbeConstant-v0", "constant reward +1, one step",
          ((0.0,),), {(0, 0): _point(1.0)}),
    Probe("mplearn/ProbeRandomReward-v0", "reward +1 or -1 with probability 1/2, one step",
          ((0.0,),), {(0, 0): _PM}),
    Probe("mplearn/ProbeObservation-v0", "observation +-1 at random, reward = observation",
          ((-1.0,), (1.0,)), {(0, 0): _point(-1.0), (1, 0): _point(1.0)}),
    Probe("mplearn/ProbeAction-v0", "action 0: reward -1, action 1: reward +1",
          ((0.0,),), {(0, 0): _point(-1.0), (0, 1): _point(1.0)}),
    Probe("mplearn/ProbeDiscount-v0", "observation 0 then 1, reward 0 then 1: Q(0) = gamma",
          ((0.0,), (1.0,)), {(0, 0): _point(PROBE_GAMMA), (1, 0): _point(1.0)}),
    Probe("mplearn/ProbeActionObservation-v0",
          "observation +-1 at random, reward +1 if action == (observation > 0) else -1",
          ((-1.0,), (1.0,)), {(0, 0): _point(1.0), (0, 1): _point(-1.0),
                              (1, 0): _point(-1.0), (1, 1): _point(1.0)}),
    Probe("mplearn/ProbeBimodal-v0",
          "action 0: reward 0.5; action 1: reward 4 w.p. 1/4 else 0 (mean 1, median 0)",
          ((0.0,),), {(0, 0): _point(0.5), (0, 1): Distribution((0.0, 4.0), (0.75, 0.25))}),
)}


# --- the environments -------------------------------------------------------------------------

class _ProbeEnv(gym.Env):
    """One or two steps; observation Box(1) in [-1, 1], float32."""

    metadata = {"render_modes": []}
    n_actions = 1

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(self.n_actions)
        self._obs = 0.0
        self._t = 0

    def _observation(self) -> np.ndarray:
        return np.array([self._obs], dtype=np.float32)

    def _random_sign(self) -> float:
        return 1.0 if self.np_random.random() < 0.5 else -1.0

    def _first(self) -> float:
        return 0.0

    def _reward(self, action: int) -> tuple[float, bool]:
        """(reward, terminated) of the current step; may change ``self._obs``."""
        raise NotImplementedError

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._t = 0
        self._obs = self._first()
        return self._observation(), {}

    def step(self, action):
        if not self.action_space.contains(action):
            raise ValueError(f"action must be in {self.action_space}, got {action!r}")
        reward, terminated = self._reward(int(action))
        self._t += 1
        return self._observation(), reward, terminated, False, {}


class ProbeConstantEnv(_ProbeEnv):
    def _reward(self, action):
        return 1.0, True


class ProbeRandomRewardEnv(_ProbeEnv):
    def _reward(self, action):
        return self._random_sign(), True


class ProbeObservationEnv(_ProbeEnv):
    def _first(self):
        return self._random_sign()

    def _reward(self, action):
        return self._obs, True


class ProbeActionEnv(_ProbeEnv):
    n_actions = 2

    def _reward(self, action):
        return (1.0 if action == 1 else -1.0), True


class ProbeDiscountEnv(_ProbeEnv):
    def _reward(self, action):
        if self._t == 0:
            self._obs = 1.0
            return 0.0, False
        return 1.0, True


class ProbeActionObservationEnv(_ProbeEnv):
    n_actions = 2

    def _first(self):
        return self._random_sign()

    def _reward(self, action):
        return (1.0 if action == int(self._obs > 0) else -1.0), True


class ProbeBimodalEnv(_ProbeEnv):
    n_actions = 2

    def _reward(self, action):
        if action == 0:
            return 0.5, True
        return (4.0 if self.np_random.random() < 0.25 else 0.0), True


ENTRY_POINTS = {
    "mplearn/ProbeConstant-v0": ProbeConstantEnv,
    "mplearn/ProbeRandomReward-v0": ProbeRandomRewardEnv,
    "mplearn/ProbeObservation-v0": ProbeObservationEnv,
    "mplearn/ProbeAction-v0": ProbeActionEnv,
    "mplearn/ProbeDiscount-v0": ProbeDiscountEnv,
    "mplearn/ProbeActionObservation-v0": ProbeActionObservationEnv,
    "mplearn/ProbeBimodal-v0": ProbeBimodalEnv,
}


# --- the check: train through the real system, compare with the table ---------------------------

@dataclass
class ProbeRow:
    state: tuple[float, ...]
    action: int
    what: str  # "mean" or "tau=0.1", ... or "greedy"
    expected: float  # what the loss converges to: the quantile Huber fixed point at kappa
    learned: float
    tolerance: float
    true: float  # the return distribution's own mean or quantile (equal when kappa -> 0)

    @property
    def ok(self) -> bool:
        return abs(self.learned - self.expected) <= self.tolerance


@dataclass
class ProbeResult:
    env_id: str
    seed: int
    rows: list[ProbeRow] = field(default_factory=list)
    env_steps: int = 0
    updates: int = 0
    wall_s: float = 0.0

    @property
    def passed(self) -> bool:
        return all(r.ok for r in self.rows)

    @property
    def failures(self) -> list[ProbeRow]:
        return [r for r in self.rows if not r.ok]

    def table(self) -> str:
        lines = [f"{self.env_id} (seed {self.seed}): {'PASS' if self.passed else 'FAIL'}, "
                 f"{self.env_steps} env steps, {self.updates} updates, {self.wall_s:.1f} s",
                 f"{'obs':>5} {'action':>6} {'check':>8} {'true':>7} {'expected':>9} "
                 f"{'learned':>9} {'tol':>5}"]
        for r in self.rows:
            lines.append(f"{r.state[0]:>5.1f} {r.action:>6} {r.what:>8} {r.true:>7.3f} "
                         f"{r.expected:>9.3f} {r.learned:>9.3f} {r.tolerance:>5.2f}"
                         f"{'' if r.ok else '  <-- off'}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"env_id": self.env_id, "seed": self.seed, "passed": self.passed,
                "env_steps": self.env_steps, "updates": self.updates, "wall_s": self.wall_s,
                "rows": [dict(state=list(r.state), action=r.action, check=r.what, true=r.true,
                              expected=r.expected, learned=r.learned, tolerance=r.tolerance,
                              ok=r.ok) for r in self.rows]}


@torch.no_grad()
def read_quantiles(net: torch.nn.Module, states, taus) -> np.ndarray:
    """Z_tau(s, a) of ``net`` at the given states and taus: [S, T, A] (eval mode: noise off)."""
    was_training = net.training
    net.eval()
    try:
        obs = torch.as_tensor(np.asarray(states, dtype=np.float32))
        t = torch.as_tensor(np.asarray(taus, dtype=np.float32)).expand(len(obs), -1)
        return net(obs, t.contiguous()).numpy()
    finally:
        net.train(was_training)


def compare(probe: Probe, net: torch.nn.Module, kappa: float) -> list[ProbeRow]:
    """The network's answers against the probe's known ones, for the loss's ``kappa``."""
    mid = (np.arange(MEAN_TAUS) + 0.5) / MEAN_TAUS
    means = read_quantiles(net, probe.states, mid).mean(axis=1)  # [S, A]
    at = read_quantiles(net, probe.states, CHECK_TAUS)  # [S, T, A]
    rows = []
    for (s, a), z in sorted(probe.returns.items()):
        state = probe.states[s]
        rows.append(ProbeRow(state, a, "mean", z.huber_mean(kappa, MEAN_TAUS),
                             float(means[s, a]), MEAN_TOLERANCE, z.mean))
        for k, tau in enumerate(CHECK_TAUS):
            if all(abs(tau - j) >= JUMP_MARGIN for j in z.jumps()):
                rows.append(ProbeRow(state, a, f"tau={tau}", z.huber_quantile(tau, kappa),
                                     float(at[s, k, a]), QUANTILE_TOLERANCE, z.quantile(tau)))
    if probe.n_actions > 1:
        for s, state in enumerate(probe.states):
            best = int(np.argmax(probe.expected_q(s)))
            # The greedy action by mean Q: 0 tolerance, it must be the best action.
            rows.append(ProbeRow(state, best, "greedy", best, int(np.argmax(means[s])), 0.0,
                                 best))
    return rows
