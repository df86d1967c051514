"""The per-issue scenarios behind ``data/``: for every learning issue whose effect is on
learning, the setting chosen to show that effect (or honestly its absence), its variants and
what to keep.

Every scenario runs the fixed and the broken system (one switch off) under one or more
conditions, over paired seeds. Runs with identical configuration are shared between issues:
``mplearn.experiments`` addresses each run by the hash of what defines it.

``single_thread`` is left out: its effect is on speed, not on learning (``benchmarks/``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

STEPS = 25_000  # CartPole-v1 env steps per run: the default config solves it at 20k to 45k
SEEDS = 5
CPU = {"device": "cpu"}  # learners on the CPU everywhere: a GPU machine would pick cuda
PLAN_SOFT = {"tau": 0.005, "target_update_period": 1}  # the plan's soft update, every update
EXPLOIT = {"epsilon_start": 0.01, "epsilon_end": 0.01}  # a resumed learner's exploration
NOISY_ONLY = {"noisy": True, "epsilon_start": 0.0, "epsilon_end": 0.0}  # explore by noise alone
DEEP_SEA = {"env_id": "mplearn/DeepSea-v0", "env_kwargs": {"size": 8}}


@dataclass(frozen=True)
class Condition:
    """A setting under which fixed and broken are compared; ``label`` names it ('' alone)."""

    label: str = ""
    overrides: dict = field(default_factory=dict)


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


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "optimizer_binding",
        "The train copy keeps the shared model's optimizer: does anything learn? It bites only "
        "on the copy path (the plan's accelerator path), so both variants train a copy.",
        "inline", overrides={"learner_path": "copy"},
        diagnostics=("learner.loss", "learner.mean_q", "learner.grad_norm")),
    Scenario(
        "target_sync",
        "Publishing only the local network leaves the shared target stale; acting never reads "
        "it, so the effect shows when a new learner resumes from the shared model: train 15k "
        "steps, restart (new actor, learner and replay, epsilon 0.01) for 10k. With the "
        "default hard copy every 100 updates the resumed learner's target is the stale one "
        "for its first 100 updates.",
        "inline", overrides={"learner_path": "copy"},
        restart=Restart(15_000, EXPLOIT), metric=Window(15_000, 20_000),
        diagnostics=("learner.loss", "learner.mean_q"), extras=("target_distance",)),
    Scenario(
        "train_mode",
        "A learner left in eval mode trains NoisyLinear layers on their means only (sigma "
        "frozen, no noise in training). It matters only with noisy layers, so exploration is by "
        "noise alone (epsilon 0): CartPole and the DeepSea chain (size 8).",
        "inline", overrides=NOISY_ONLY,
        conditions=(Condition("CartPole"), Condition("DeepSea 8", DEEP_SEA)),
        diagnostics=("learner.loss", "learner.train_mode"), extras=("sigma",)),
    Scenario(
        "shared_epsilon",
        "Epsilon set as an attribute on the shared model never reaches the actor process "
        "(lockstep: real processes, reproducible).",
        "lockstep", diagnostics=("actor.epsilon", "learner.epsilon", "learner.loss")),
    Scenario(
        "grad_clip",
        "Clipping at norm 1.0 removed. The quantile Huber loss bounds each element's "
        "gradient, and Adam rescales steps anyway; the default learning rate and a 10x higher "
        "one (the stress case).",
        "inline",
        conditions=(Condition("lr 1e-3"), Condition("lr 1e-2", {"learning_rate": 1e-2})),
        diagnostics=("learner.grad_norm", "learner.clip_fraction", "learner.loss")),
    Scenario(
        "batch_to_device",
        "torch.from_numpy keeps numpy's dtype: a replay that stores observations as numpy's "
        "default float64 (as the plan's did) meets float32 weights. The broken learner dies "
        "at its first update; the System raises its error (a crash by design, with its "
        "partial curve). The fixed conversion is exact, so the fixed system runs the same "
        "with either replay dtype, bit for bit (tests/test_experiments.py checks it): its "
        "runs are the default ones.",
        "inline", broken_overrides={"replay_obs_dtype": "float64"},
        diagnostics=("learner.loss",)),
    Scenario(
        "step_counter",
        "The training step counter never incremented: every update publishes and advances the "
        "epsilon schedule. With the default epsilon_decay_freq = 1 the schedule is the same "
        "either way, so the schedule advances every 10 updates here (decay over 5000 updates "
        "fixed, over 500 broken), on the copy path where publishes happen.",
        "inline", overrides={"learner_path": "copy", "epsilon_decay_freq": 10},
        diagnostics=("learner.epsilon", "learner.publishes", "learner.loss")),
    Scenario(
        "single_target_update",
        "The target updated twice per period. A repeated hard copy is the same copy, exactly "
        "(lerp with weight 1 returns its end point), so the default config is unaffected by "
        "construction and is not rerun; a repeated soft update makes tau 1 - (1 - tau)^2, "
        "about twice as large: the plan's soft update, tau 0.005 every update.",
        "inline", overrides=PLAN_SOFT,
        diagnostics=("learner.target_updates", "learner.loss", "learner.mean_q")),
    Scenario(
        "initial_state",
        "An actor that acts before its first pull uses its own random init until the first "
        "publish. From scratch epsilon is 1.0 then, so the net is never used; it bites when "
        "the system resumes from trained weights with little exploration: train 15k steps, "
        "restart with epsilon 0.01 (lockstep: real processes).",
        "lockstep", restart=Restart(15_000, EXPLOIT), metric=Window(15_000, 20_000),
        diagnostics=("actor.version", "actor.unpulled_steps", "learner.loss")),
    Scenario(
        "replay_by_name",
        "A replay pickled by value under spawn: the learner process samples its own copy, all "
        "zeros, while the counter it shares says rows exist (lockstep: real processes).",
        "lockstep", diagnostics=("learner.loss", "learner.batch_abs_obs", "learner.mean_q")),
    Scenario(
        "worker_seeding",
        "Every worker seeded alike: two agents draw the same exploration decisions and replay "
        "indices (lockstep, 2 agents; the value compared is the mean over agents).",
        "lockstep", overrides={"n_agents": 2}, diagnostics=("learner.loss",),
        extras=("equal_actions",)),
    Scenario(
        "truncation_bootstrap",
        "Truncation at CartPole-v1's 500-step limit stored as terminal: no bootstrap there. "
        "It acts only once episodes reach 500 steps, late in a 25k-step run.",
        "inline", diagnostics=("learner.mean_q", "learner.loss")),
    Scenario(
        "versioned_publish",
        "Plain load_state_dict reads while the learner writes: torn copies (async only).",
        "async", diagnostics=("actor.sync_retries", "actor.policy_lag")),
    Scenario(
        "write_before_publish",
        "The replay counts a row before writing it: the sampler can read an unwritten row "
        "(async only).",
        "async", diagnostics=("learner.loss", "actor.policy_lag")),
    Scenario(
        "throttle",
        "The learner not held to the update-to-data ratio (the actor still waits for a learner "
        "that falls behind). An update costs about 17 actor steps, so the learner can run "
        "ahead only when the ratio asked is low: 0.05 updates per env step. Async (2 agents on "
        "one actor), where timing decides whether it ever gets ahead, and lockstep rounds, "
        "where the unthrottled learner updates at least once per 10-step round (ratio 0.1).",
        "async", overrides={"updates_per_step": 0.05},
        conditions=(Condition("async, 2 agents", {"n_agents": 2}),
                    Condition("lockstep", {"mode": "lockstep"})),
        diagnostics=("learner.update", "actor.policy_lag", "learner.loss")),
)

BY_NAME: dict[str, Scenario] = {s.issue: s for s in SCENARIOS}


def scenario(name: str) -> Scenario:
    if name not in BY_NAME:
        raise ValueError(f"name: no scenario for {name!r}; known: {', '.join(BY_NAME)}")
    return BY_NAME[name]
