"""The run configuration: one frozen dataclass, validated before any process starts.

Loop names follow CleanRL (``learning_starts``, ``batch_size``, ``buffer_size``, ``gamma``),
IQN names follow Dopamine (``num_tau_samples`` N, ``num_tau_prime_samples`` N',
``num_quantile_samples`` K, ``kappa``).
"""

from __future__ import annotations

import dataclasses
import math
import pickle
import re
from dataclasses import dataclass, field

from mplearn.core.fixes import Fixes

MODES = ("inline", "lockstep", "async")
DEVICES = ("auto", "cpu", "cuda", "mps")
LEARNER_PATHS = ("auto", "copy", "in_place")


class ConfigError(ValueError):
    """A bad configuration value; the message is one line that names the field."""


class InjectedFault(RuntimeError):
    """Raised on purpose by ``Config.inject_fault``."""


@dataclass(frozen=True)
class Config:
    # --- environment and run ---
    env_id: str = "CartPole-v1"
    # Keyword arguments for the environment's constructor, e.g. {"frame_stack": 5} for
    # "mplearn/TreasureHunt-v0" or {"size": 8} for "mplearn/DeepSea-v0". Not part of the hash.
    env_kwargs: dict = field(default_factory=dict, hash=False)
    n_agents: int = 1  # independent agents, each with its own env copy, model and learner
    mode: str = "async"  # inline | lockstep | async
    total_env_steps: int = 50_000  # per agent
    seed: int = 0

    # --- network (IQN, Dabney et al. 2018) ---
    hidden_dim: int = 64
    embedding_dim: int = 64  # cosine embedding size n in cos(pi * i * tau), i < n
    dueling: bool = False
    noisy: bool = False  # NoisyLinear head (factorised Gaussian), as in the plan's origin
    dropout: float = 0.0

    # --- IQN loss ---
    num_tau_samples: int = 8  # N: online quantile samples per transition (paper: 64)
    num_tau_prime_samples: int = 8  # N': target quantile samples (paper: 64)
    num_quantile_samples: int = 8  # K: samples for the greedy action (paper: 32)
    kappa: float = 1.0  # Huber threshold of the quantile Huber loss (paper: 1)
    double_dqn: bool = True  # select a* with the online net, evaluate with the target
    gamma: float = 0.99
    n_step: int = 3  # rewards summed per transition; the target bootstraps with gamma^n

    # --- optimisation ---
    learning_rate: float = 1e-3
    adam_eps: float = 1e-8
    batch_size: int = 64
    max_grad_norm: float = 1.0  # clip_grad_norm_ threshold
    updates_per_step: float = 1.0  # update-to-data ratio, enforced in every mode
    learning_starts: int = 1_000  # env steps (per agent) before the first update
    buffer_size: int = 50_000
    # Storage dtype of replay observations. The plan's buffer kept numpy's default, float64:
    # the batch must then be converted to the model's dtype (the batch_to_device issue).
    replay_obs_dtype: str = "float32"
    tau: float = 1.0  # target update: theta' <- tau * theta + (1 - tau) * theta' (1.0 = hard copy)
    target_update_period: int = 100  # learner updates between target updates

    # --- exploration: linear epsilon schedule over learner updates ---
    epsilon_start: float = 1.0
    epsilon_end: float = 0.01
    epsilon_decay_updates: int = 5_000
    epsilon_decay_freq: int = 1  # the schedule advances every this many updates

    # --- processes ---
    device: str = "auto"  # learner device: auto = cuda, then mps, then cpu
    learner_path: str = "auto"  # copy (train a device copy, publish) | in_place | auto
    publish_interval: int = 10  # learner updates between publishes (copy path)
    sync_interval: int = 10  # env steps between actor syncs; also the lockstep round
    max_update_lag: int = 500  # async: updates the learner may fall behind before the actor waits
    # Liveness: a worker that makes no progress this long while the others wait on it is raised
    # as a WorkerError naming it and its process state, and the run stops (far above a slow step).
    stall_timeout_s: float = 20.0
    log_interval: int = 100  # learner updates between learner records
    # Raise InjectedFault in a worker, to see what a crash looks like: "actor@N" (at env step N)
    # or "learner@N" (at update N, in every learner). Empty: none.
    inject_fault: str = ""

    fixes: Fixes = field(default_factory=Fixes)

    def __post_init__(self) -> None:
        validate(self)

    def replace(self, **changes) -> Config:
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:  # else a TypeError about __init__
            raise ConfigError(f"{unknown[0]}: unknown config field")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["fixes"] = self.fixes.to_dict()
        # How long the watchdog waits is not what a run computes: at its default it is left
        # out, so that stored runs (keyed by a hash of this dict) keep their keys.
        if d["stall_timeout_s"] == Config.stall_timeout_s:
            del d["stall_timeout_s"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Config:
        if not isinstance(d, dict):  # else a TypeError from dict() or from **
            raise ConfigError(f"config: expected a dict, got {type(d).__name__}")
        d = dict(d)
        fixes = d.pop("fixes", {})
        if isinstance(fixes, Fixes):
            fixes = fixes.to_dict()
        if not isinstance(fixes, dict):  # None, a list: else a TypeError from set()
            raise ConfigError(f"fixes: expected a dict of issue names to bools, got {shown(fixes)}")
        unknown = sorted(map(repr, set(fixes) - set(Fixes.names())))
        if unknown:
            raise ConfigError(f"fixes: unknown issue name {unknown[0]}")
        fixes = Fixes(**fixes)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(map(str, set(d) - known))  # str: a key may be of any type
        if unknown:
            raise ConfigError(f"{unknown[0]}: unknown config field")
        return cls(**d, fixes=fixes)

    def fault_at(self, process: str) -> int | None:
        """The step at which ``process`` ("actor" or "learner") must fail, if any."""
        kind, _, at = self.inject_fault.partition("@")
        return int(at) if kind == process else None

    def epsilon_at(self, updates: int) -> float:
        """Linear schedule, advanced in steps of ``epsilon_decay_freq`` updates."""
        stepped = (updates // self.epsilon_decay_freq) * self.epsilon_decay_freq
        frac = min(1.0, stepped / self.epsilon_decay_updates)
        return self.epsilon_start + frac * (self.epsilon_end - self.epsilon_start)

    def updates_owed(self, env_steps: int) -> int:
        """Updates a learner may have done after ``env_steps`` env steps of its agent."""
        if env_steps < max(self.learning_starts, self.batch_size):
            return 0
        return math.floor(self.updates_per_step * (env_steps - self.learning_starts))


# --- validation --------------------------------------------------------------------------------

_POSITIVE_INTS = (
    "n_agents", "n_step", "total_env_steps", "hidden_dim", "embedding_dim", "num_tau_samples",
    "num_tau_prime_samples", "num_quantile_samples", "batch_size", "buffer_size",
    "target_update_period", "epsilon_decay_updates", "epsilon_decay_freq", "publish_interval",
    "sync_interval", "max_update_lag", "log_interval",
)
# Upper bounds, so that no product the run computes overflows: torch's sizes and the shared
# step and update counters are int64. Env steps and updates per agent stop at 2**48 (2.8e14:
# nine years at a million steps a second): beyond, a number is a typo, not a run. What a valid
# config costs the machine (memory, open files) is checked against it by core.resources.
# Agents stop at 2**16: each is a process and some 23 open files, far past what any machine
# runs, and the parent keeps a few per-agent lists before it can weigh the cost.
INT64_MAX = 2**63 - 1
STEPS_MAX = 2**48
AGENTS_MAX = 2**16
_INT_MAX = {**dict.fromkeys(_POSITIVE_INTS, INT64_MAX), "n_agents": AGENTS_MAX,
            "total_env_steps": STEPS_MAX, "learning_starts": STEPS_MAX}
_INT_MAX_WHY = {INT64_MAX: "2**63 - 1: sizes and counters are int64",
                STEPS_MAX: "2**48: the run would never end",
                AGENTS_MAX: "2**16: a process each"}
# Numbers that must be finite and > 0 (max_grad_norm may be inf: never clip).
_POSITIVE_FLOATS = ("kappa", "learning_rate", "adam_eps", "max_grad_norm", "updates_per_step",
                    "stall_timeout_s")
_TYPES = {
    "env_id": str, "mode": str, "device": str, "learner_path": str, "inject_fault": str,
    "replay_obs_dtype": str,
    "dueling": bool, "noisy": bool, "double_dqn": bool,
}


def _fail(name: str, message: str) -> None:
    raise ConfigError(f"{name}: {message}")


def shown(v) -> str:
    """``v`` for a one-line message: short. An integer of hundreds of digits is shown by its size
    (and str() of one past 4300 digits raises ValueError)."""
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 10**21:
        sign, kind = ("-", "a negative") if v < 0 else ("", "an")
        try:
            digits = str(abs(v))
        except ValueError:  # past sys.get_int_max_str_digits()
            return f"{kind} integer of about {int(abs(v).bit_length() * math.log10(2))} digits"
        return f"{sign}{digits[0]}.{digits[1:3]}e+{len(digits) - 1} (a {len(digits)}-digit integer)"
    text = repr(v)
    return text if len(text) <= 80 else f"{text[:60]}... ({len(text)} characters)"


def _finite(v) -> bool:
    try:
        return math.isfinite(v)
    except OverflowError:  # an int too large for a float
        return False


def validate(c: Config) -> None:
    """Raise ConfigError naming the first bad field. Checks only what needs no environment."""
    for f in dataclasses.fields(c):
        v = getattr(c, f.name)
        if f.name in _TYPES and not isinstance(v, _TYPES[f.name]):
            _fail(f.name, f"expected {_TYPES[f.name].__name__}, got {v!r}")
        is_int_field = f.name in _POSITIVE_INTS or f.name in ("seed", "learning_starts")
        if is_int_field and (isinstance(v, bool) or not isinstance(v, int)):
            _fail(f.name, f"expected an integer, got {v!r}")
        if f.type == "float" and (isinstance(v, bool) or not isinstance(v, (int, float))):
            _fail(f.name, f"expected a number, got {v!r}")
    for name in _POSITIVE_INTS:
        if getattr(c, name) <= 0:
            _fail(name, f"must be > 0, got {shown(getattr(c, name))}")
    if c.seed < 0:
        _fail("seed", f"must be >= 0, got {shown(c.seed)}")
    if c.seed >= 2**64:  # torch.manual_seed takes 64 bits
        _fail("seed", f"must be < 2**64, got {shown(c.seed)}")
    if c.learning_starts < 0:
        _fail("learning_starts", f"must be >= 0, got {shown(c.learning_starts)}")
    for name, high in _INT_MAX.items():
        if getattr(c, name) > high:
            _fail(name, f"must be <= {high} ({_INT_MAX_WHY[high]}), got {shown(getattr(c, name))}")
    if c.mode not in MODES:
        _fail("mode", f"must be one of {'|'.join(MODES)}, got {c.mode!r}")
    if c.device not in DEVICES:
        _fail("device", f"must be one of {'|'.join(DEVICES)}, got {c.device!r}")
    if c.learner_path not in LEARNER_PATHS:
        _fail("learner_path", f"must be one of {'|'.join(LEARNER_PATHS)}, got {c.learner_path!r}")
    if c.replay_obs_dtype not in ("float32", "float64"):
        _fail("replay_obs_dtype", f"must be float32|float64, got {c.replay_obs_dtype!r}")
    # Written so that nan fails them too (every comparison with nan is False).
    if not 0.0 <= c.dropout < 1.0:
        _fail("dropout", f"must be in [0, 1), got {shown(c.dropout)}")
    if not 0.0 < c.gamma <= 1.0:
        _fail("gamma", f"must be in (0, 1], got {shown(c.gamma)}")
    if not 0.0 < c.tau <= 1.0:
        _fail("tau", f"must be in (0, 1], got {shown(c.tau)}")
    for name in _POSITIVE_FLOATS:
        v = getattr(c, name)
        if not (v > 0 and _finite(v)) and not (name == "max_grad_norm" and v == math.inf):
            _fail(name, f"must be a finite number > 0, got {shown(v)}")
    for name in ("epsilon_start", "epsilon_end"):
        if not 0.0 <= getattr(c, name) <= 1.0:
            _fail(name, f"must be in [0, 1], got {shown(getattr(c, name))}")
    if c.epsilon_end > c.epsilon_start:
        _fail("epsilon_end", f"must be <= epsilon_start ({c.epsilon_start}), got {c.epsilon_end}")
    if c.batch_size > c.buffer_size:
        _fail("batch_size", f"must be <= buffer_size ({c.buffer_size}), got {c.batch_size}")
    if c.learning_starts >= c.total_env_steps:
        _fail("learning_starts",
              f"must be < total_env_steps ({c.total_env_steps}), got {c.learning_starts}")
    # A run that can never train is a mistake, whichever setting makes it so.
    if c.batch_size > c.total_env_steps:
        _fail("batch_size", f"must be <= total_env_steps ({c.total_env_steps}), got "
                            f"{c.batch_size}: no update could run")
    # A float product: inf for 1e308, never the OverflowError of floor(inf) in updates_owed.
    updates = c.updates_per_step * (c.total_env_steps - c.learning_starts)
    if updates > STEPS_MAX:
        _fail("updates_per_step", f"{c.updates_per_step} x (total_env_steps - learning_starts "
                                  f"= {c.total_env_steps - c.learning_starts}) = {updates:.3g} "
                                  f"updates per agent, more than 2**48: the run would never end")
    if c.updates_owed(c.total_env_steps) == 0:
        _fail("updates_per_step", f"{c.updates_per_step} x (total_env_steps - learning_starts "
                                  f"= {c.total_env_steps - c.learning_starts}) < 1: no update")
    if c.inject_fault and re.fullmatch(r"(actor|learner)@\d+", c.inject_fault) is None:
        _fail("inject_fault",
              f"must be '' or 'actor@N' or 'learner@N', got {shown(c.inject_fault)}")
    if c.inject_fault:  # a fault the run never reaches would pass for a run without one
        kind, at = c.inject_fault.split("@")
        end = c.total_env_steps if kind == "actor" else c.updates_owed(c.total_env_steps)
        if len(at) > 20 or int(at) >= end:  # int() of 4300+ digits raises: 20 is past int64
            unit = "env steps" if kind == "actor" else "updates"
            _fail("inject_fault", f"{shown(c.inject_fault)} never fires: the {kind} does {end} "
                                  f"{unit}")
    if not isinstance(c.env_kwargs, dict) or not all(isinstance(k, str) for k in c.env_kwargs):
        _fail("env_kwargs", f"expected a dict with str keys, got {c.env_kwargs!r}")
    try:  # the actor process receives them
        pickle.dumps(c.env_kwargs)
    except Exception as e:
        _fail("env_kwargs", f"must be picklable (the actor process gets them): "
                            f"{str(e).splitlines()[0] if str(e) else type(e).__name__}")
    if not isinstance(c.fixes, Fixes):
        _fail("fixes", f"expected a Fixes, got {type(c.fixes).__name__}")
    for name, v in c.fixes.to_dict().items():  # a truthy string would pass for True
        if not isinstance(v, bool):
            _fail(f"fixes.{name}", f"expected a bool, got {v!r}")
