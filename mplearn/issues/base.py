"""What every issue module is made of: its catalogue entry (``Issue``), its mechanism check
(``CheckResult`` and the small learner it runs on) and its scenarios (``Scenario``: the
conditions under which fixed and broken are compared, over paired seeds, for ``data/``).

Runs with identical configuration are shared between issues: ``mplearn.lab.experiments``
addresses each run by the hash of what defines it.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch

from mplearn.core.channels import AgentChannel
from mplearn.core.config import Config
from mplearn.core.fixes import Fixes
from mplearn.core.learner import Learner
from mplearn.core.replay import ReplayBuffer
from mplearn.core.weights import create_shared_model
from mplearn.envs import env_spec

# --- the catalogue entry --------------------------------------------------------------------------

REVIEW = "the plan's review (Learning Issues Evaluation Report)"


@dataclass(frozen=True)
class Issue:
    name: str  # the Fixes field
    title: str
    claim: str  # what the review says ("" for issues beyond the review)
    mechanism: str
    where: str  # where it bites
    symptom: str
    diagnostic: str
    notebook: str
    # No verdict here: verdicts are measured, by mplearn.lab.verdict, never written by hand.

    def to_dict(self) -> dict:
        return asdict(self)




# --- the mechanism check -------------------------------------------------------------------------

# Small and fast: CartPole shapes, a few updates, cpu.
BASE = Config(device="cpu", batch_size=16, buffer_size=256, learning_starts=16,
              total_env_steps=400, log_interval=10_000, seed=0)


@dataclass(frozen=True)
class CheckResult:
    name: str
    measure: str  # what the numbers are
    fixed: float  # the measure with the fix on
    broken: float  # ... and off
    shows_fixed: bool  # the mechanism shows with the fix on (it must not)
    shows_broken: bool  # ... with it off (it must)

    @property
    def passed(self) -> bool:
        return self.shows_broken and not self.shows_fixed

    def __str__(self) -> str:
        return (f"{self.name}: {self.measure}\n  fix on : {self.fixed:.6g}  "
                f"(mechanism shows: {self.shows_fixed})\n  fix off: {self.broken:.6g}  "
                f"(mechanism shows: {self.shows_broken})\n  "
                f"{'PASS' if self.passed else 'FAIL'}")


# --- helpers -----------------------------------------------------------------------------------

@contextmanager
def learner_with_rows(config: Config, rows: int = 64):
    """A Learner in this process, its replay filled with random CartPole-shaped rows."""
    ctx = mp.get_context("spawn")
    spec = env_spec(config.env_id)
    rng = np.random.default_rng(0)
    buffer = ReplayBuffer(config.buffer_size, spec.obs_shape, ctx, config.fixes)
    for _ in range(rows):
        obs = rng.normal(size=spec.obs_shape)
        buffer.add(obs, int(rng.integers(spec.n_actions)), float(rng.normal()),
                   rng.normal(size=spec.obs_shape), False, False, 0, 1.0)
    with torch.random.fork_rng():
        torch.manual_seed(config.seed)
        model = create_shared_model(config, spec=spec)
    channel = AgentChannel(0, model, buffer, epsilon=ctx.Value("d", config.epsilon_start),
                           env_steps=ctx.Value("q", rows), updates=ctx.Value("q", 0))
    try:
        yield Learner(config, spec, channel, seed=config.seed)
    finally:
        buffer.close()
        buffer.unlink()


def max_abs_diff(a: torch.nn.Module, b: torch.nn.Module) -> float:
    return max((x.detach().cpu() - y.detach().cpu()).abs().max().item()
               for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def fix_on_and_off(name: str, measure: str, experiment: Callable[[Fixes], float],
          shows: Callable[[float], bool]) -> CheckResult:
    fixed = experiment(Fixes())
    broken = experiment(Fixes().without(name))
    return CheckResult(name, measure, fixed, broken, shows(fixed), shows(broken))




# --- the scenarios --------------------------------------------------------------------------------

STEPS = 25_000  # CartPole-v1 env steps per run: the default config solves it at 20k to 45k
SEEDS = 20  # paired seeds per arm: below that the interval is too wide to call "no effect"
MAX_SEEDS = 40  # the cap, stated in advance, for adding seeds to an inconclusive arm
CPU = {"device": "cpu"}  # learners on the CPU everywhere: a GPU machine would pick cuda
# the plan's soft update: tau 0.001, every update
PLAN_SOFT = {"tau": 0.001, "target_update_period": 1}
EXPLOIT = {"epsilon_start": 0.01, "epsilon_end": 0.01}  # a resumed learner's exploration
NOISY_ONLY = {"noisy": True, "epsilon_start": 0.0, "epsilon_end": 0.0}  # explore by noise alone
DEEP_SEA = {"env_id": "mplearn/DeepSea-v0", "env_kwargs": {"size": 8}}


@dataclass(frozen=True)
class Margin:
    """The smallest effect of interest, in the metric's units (return points for a return),
    declared before any run, with a one-line reason (a share of the task's range, of the fixed
    arm's spread, or what a practitioner would notice). ``lab.verdict`` calls an interval
    inside (-value, +value) "no effect"."""

    value: float
    reason: str

    def __post_init__(self):
        if not self.value > 0:
            raise ValueError(f"margin: must be > 0, got {self.value!r}")


@dataclass(frozen=True)
class Manipulation:
    """The manipulation check: the recorded quantity proving the broken arm did what the bug
    does. ``measure(run_record)`` reads one stored run record (``lab.experiments.run_one``'s
    dict: ``learner``, ``actor`` (per agent, columns of records), ``extras``, ``status``,
    ``episodes``, ...) and returns that quantity, or None when it cannot be read;
    ``acted(value)`` says whether the value shows the bug acting. The check passes when
    ``acted`` holds in at least 90% of the broken arm's runs (``lab.verdict``). Both are
    module-level functions, so that scenarios stay picklable."""

    description: str  # what is measured, e.g. "target distance after the restart"
    measure: Callable[[dict], float | None]
    acted: Callable[[float], bool]
    unit: str = ""


@dataclass(frozen=True)
class Condition:
    """A setting under which fixed and broken are compared; ``label`` names it ('' alone).
    ``margin``, when given, replaces the scenario's (tasks differ in their return range)."""

    label: str = ""
    overrides: dict = field(default_factory=dict)
    margin: Margin | None = None


@dataclass(frozen=True)
class Restart:
    """Train ``at`` env steps, then start a new system (actor, learner, replay) whose shared
    models resume from the first one's (both networks), configured with ``overrides``."""

    at: int
    overrides: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Window:
    """The per-run value compared: the learning curve averaged over env steps start..end."""

    start: int
    end: int


@dataclass(frozen=True)
class Variant:
    name: str  # "fixed", "broken", or "fixed, <condition>"
    condition: str
    broken: bool  # the scenario's issue switched off
    overrides: dict  # config fields, beyond the defaults


@dataclass(frozen=True)
class Scenario:
    issue: str  # a Fixes field
    question: str  # what this setting measures, and why this setting
    mode: str  # inline | lockstep | async
    conditions: tuple[Condition, ...] = (Condition(),)
    overrides: dict = field(default_factory=dict)  # config fields common to every variant
    broken_overrides: dict = field(default_factory=dict)  # ... for the broken variants only
    steps: int = STEPS
    seeds: int = SEEDS
    restart: Restart | None = None
    metric: Window | None = None  # None: final return (mean of the last 20 episodes)
    diagnostics: tuple[str, ...] = ("learner.loss",)  # "<learner|actor>.<record field>"
    extras: tuple[str, ...] = ()  # per-run measurements (experiments.EXTRAS)
    margin: Margin | None = None  # the smallest effect of interest (a condition may override)
    manipulation: Manipulation | None = None  # proof that the broken arm's bug acted
    max_seeds: int = MAX_SEEDS  # the cap for adding seeds to an inconclusive condition

    def margin_of(self, condition: str) -> Margin | None:
        """The margin declared for ``condition`` (its own, else the scenario's)."""
        own = next((c.margin for c in self.conditions if c.label == condition), None)
        return own or self.margin

    def variants(self) -> list[Variant]:
        out = []
        for cond in self.conditions:
            overrides = {**CPU, "mode": self.mode, **self.overrides, **cond.overrides}
            for broken in (False, True):
                name = "broken" if broken else "fixed"
                out.append(Variant(f"{name}, {cond.label}" if cond.label else name,
                                   cond.label, broken,
                                   {**overrides, **self.broken_overrides} if broken
                                   else overrides))
        return out

    def pairs(self) -> list[tuple[str, str, str]]:
        """(condition, fixed variant, broken variant) for each condition."""
        v = self.variants()
        return [(f.condition, f.name, b.name) for f, b in zip(v[::2], v[1::2], strict=True)]

    def scaled(self, steps: int | None = None, seeds: int | None = None) -> Scenario:
        """The same scenario at another length (restart point and window scaled alike)."""
        out = replace(self, seeds=seeds or self.seeds)
        if steps is None or steps == self.steps:
            return out

        def scale(x: int) -> int:
            return max(1, round(x * steps / self.steps))

        return replace(
            out, steps=steps,
            restart=replace(self.restart, at=scale(self.restart.at)) if self.restart else None,
            metric=Window(scale(self.metric.start), scale(self.metric.end))
            if self.metric else None)

    @property
    def metric_label(self) -> str:
        if self.metric is None:
            return "final return (mean of the last 20 episodes)"
        return (f"return (mean of the last 20 episodes) averaged over env steps "
                f"{self.metric.start} to {self.metric.end}")


# Margins declared before any run (the smallest effect of interest, lab.verdict).
CARTPOLE_MARGIN = Margin(
    25.0, "5% of CartPole-v1's 0-500 return range; the same seeds and config on two machines "
          "already differ by about 21 points per seed")
DEEP_SEA_MARGIN = Margin(0.1, "10% of DeepSea's 0-1 return range: finding the treasure or not")
