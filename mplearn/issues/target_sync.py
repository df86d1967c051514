"""Target network not synced on publish: the catalogue entry, the mechanism check, the scenarios
behind data/ and the experiments its notebook runs.

The target-sync claim, measured: what the review's publish copies, what ``.cpu()`` does to the
trainer, and what a stale shared target does to a learner that restarts from it.

* ``zip_publish``: the review's publish, ``zip(shared.parameters(), trainer.parameters())``, on
  the wrapper that holds both networks: it copies both networks' parameters and misses the
  buffers; zipping ``qnetwork_local.parameters()`` alone leaves the shared target stale.
* ``apply_is_in_place``: ``Module.cpu()``, ``.to()``, ``.double()`` convert the module itself
  (``Module._apply``) and return it: the review's ``train_model.cpu()`` moves the trainer.
* ``restart``: train, then start a new system (actor, learner, replay) from the shared models,
  as a learner that resumes after a crash does; the new learner's target is the shared one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mplearn.core.config import Config
from mplearn.core.fixes import Fixes
from mplearn.core.system import System
from mplearn.core.weights import (
    IQNAgent,
)
from mplearn.envs import env_spec
from mplearn.issues import measures
from mplearn.issues.base import (
    BASE,
    CARTPOLE_MARGIN,
    EXPLOIT,
    PLAN_SOFT,
    CheckResult,
    Condition,
    Issue,
    Manipulation,
    Restart,
    Scenario,
    Window,
    fix_on_and_off,
    learner_with_rows,
    max_abs_diff,
)

ENTRY = Issue(
    "target_sync", "Target network not synced on publish",
    claim="Publishing by zipping the shared model's parameters() with the trainer's copies "
          "only the local network, leaving the shared target stale.",
    mechanism="When the wrapper is an nn.Module holding both networks, parameters() yields "
              "both, so that zip copies both; it misses buffers (noise, batch-norm "
              "statistics). Copying qnetwork_local.parameters() alone does leave the shared "
              "target stale.",
    where="anything that reads the shared target: a learner that restarts from the shared "
          "model, an evaluator, a checkpoint; acting uses only the local network",
    symptom="loss spike after a learner restart; shared target far from the trainer's",
    diagnostic="checks.target_in_sync(published, trainer) after a publish; Monitor: "
               "shared target unchanged while the target is updated and published",
    notebook="03_target_network_sync")


def check() -> CheckResult:
    def experiment(fixes: Fixes) -> float:
        config = BASE.replace(learner_path="copy", target_update_period=5, publish_interval=10,
                              fixes=fixes)
        with learner_with_rows(config) as learner:
            for _ in range(10):  # two target updates, then a publish
                learner.update()
            return max_abs_diff(learner.channel.model.qnetwork_target,
                                 learner.model.qnetwork_target)

    return fix_on_and_off("target_sync", "max |shared target - trainer target| after a publish",
                 experiment, lambda distance: distance > 0.0)


def target_moved(record: dict) -> float | None:
    """How far the shared target moved (relative) while the first learner trained."""
    return measures.extra(record, "target_moved", phase=0)


def _restart_scenario(question: str, conditions) -> Scenario:
    return Scenario(
        "target_sync", question, "inline", conditions=conditions,
        overrides={"learner_path": "copy"},
        restart=Restart(15_000, EXPLOIT), metric=Window(15_000, 20_000),
        margin=CARTPOLE_MARGIN,
        manipulation=Manipulation(
            "relative distance the shared target moved before the restart (0: never published)",
            target_moved, lambda moved: moved == 0.0),
        diagnostics=("learner.loss", "learner.mean_q"), extras=("target_distance",))


SCENARIOS: tuple[Scenario, ...] = (
    _restart_scenario(
        "Publishing only the local network leaves the shared target stale; acting never reads "
        "it, so the effect shows when a new learner resumes from the shared model: train 15k "
        "steps, restart (new actor, learner and replay, epsilon 0.01) for 10k. With the "
        "default hard copy every 100 updates the resumed learner's stale target is replaced "
        "after 100 updates; with the plan's soft update (tau 0.001 every update, a time "
        "constant of 1,000 updates) it pulls the resumed learner's targets for thousands.",
        (Condition("hard copy /100"), Condition("plan soft update", PLAN_SOFT))),
)



# --- the experiments its notebook runs --------------------------------------------------------

# --- the review's publish, on plain modules ---------------------------------------------------


def _agents(noisy: bool = True, seed: int = 0) -> tuple[IQNAgent, IQNAgent]:
    """(shared, trainer): the same architecture, different weights and noise."""
    config = Config(noisy=noisy, hidden_dim=16, embedding_dim=8)
    spec = env_spec(config.env_id)
    torch.manual_seed(seed)
    shared, trainer = IQNAgent(spec, config), IQNAgent(spec, config)
    with torch.no_grad():  # the trainer has trained: its target differs from its local net
        for p in trainer.qnetwork_target.parameters():
            p.add_(0.1)
    return shared, trainer


GROUPS = ("local params", "target params", "buffers")
PUBLISHES = ("zip(shared.parameters(), trainer.parameters())",
             "zip over qnetwork_local.parameters() only",
             "the whole state_dict() (the fix)")


def _stale(shared: IQNAgent, trainer: IQNAgent) -> dict[str, tuple[int, int]]:
    """Per group of tensors: (still different from the trainer's, all)."""
    params = {n for n, _ in trainer.named_parameters()}
    mine, theirs = shared.state_dict(), trainer.state_dict()
    out = {g: [0, 0] for g in GROUPS}
    for name, tensor in theirs.items():
        group = ("local params" if name.startswith("qnetwork_local") else
                 "target params") if name in params else "buffers"
        out[group][0] += int(not torch.equal(mine[name], tensor))
        out[group][1] += 1
    return {g: (s, n) for g, (s, n) in out.items()}


@dataclass(frozen=True)
class ZipPublish:
    wrapper_parameters: int  # tensors shared_model.parameters() yields
    local_parameters: int  # tensors shared_model.qnetwork_local.parameters() yields
    stale: dict[str, dict[str, tuple[int, int]]]  # publish -> group -> (stale, all)

    def __str__(self) -> str:
        lines = [f"shared_model.parameters() yields {self.wrapper_parameters} tensors, "
                 f"shared_model.qnetwork_local.parameters() {self.local_parameters}",
                 "tensors still different from the trainer's after the publish (stale / all):",
                 f"  {'publish':<48}" + "".join(f"{g:>15}" for g in GROUPS)]
        for publish, groups in self.stale.items():
            lines.append(f"  {publish:<48}" + "".join(
                f"{f'{s} / {n}':>15}" for s, n in groups.values()))
        return "\n".join(lines)


@torch.no_grad()
def zip_publish(noisy: bool = True) -> ZipPublish:
    """Publish a trainer into a shared model three ways (the review's zip read both ways, and
    the whole state), then count the tensors that still differ, by group."""
    stale = {}
    for publish in PUBLISHES:
        shared, trainer = _agents(noisy)
        if publish == PUBLISHES[2]:
            pairs = zip(shared.state_dict().values(), trainer.state_dict().values(), strict=True)
        elif publish == PUBLISHES[1]:
            pairs = zip(shared.qnetwork_local.parameters(), trainer.qnetwork_local.parameters(),
                        strict=True)
        else:
            pairs = zip(shared.parameters(), trainer.parameters(), strict=True)
        for mine, theirs in pairs:
            mine.copy_(theirs)
        stale[publish] = _stale(shared, trainer)
    shared, _ = _agents(noisy)
    return ZipPublish(len(list(shared.parameters())),
                      len(list(shared.qnetwork_local.parameters())), stale)


@dataclass(frozen=True)
class InPlace:
    returned_itself: bool  # module.to(x) is module
    same_parameter_objects: bool  # the Parameter objects survive (the optimizer stays bound)
    dtype_after: str  # where the trainer's parameters are now

    def __str__(self) -> str:
        return (f"trainer.to(torch.float64) is trainer: {self.returned_itself}\n"
                f"the same Parameter objects afterwards: {self.same_parameter_objects}\n"
                f"the trainer's parameters are now: {self.dtype_after}")


def apply_is_in_place() -> InPlace:
    """``.to(torch.float64)`` on a trainer: the same path (``Module._apply``) as ``.cpu()``,
    visible on a machine without an accelerator, where ``.cpu()`` has nothing to move."""
    _, trainer = _agents(noisy=False)
    before = [id(p) for p in trainer.parameters()]
    returned = trainer.to(torch.float64)
    return InPlace(returned is trainer, before == [id(p) for p in trainer.parameters()],
                   str(next(trainer.parameters()).dtype))


# --- a learner that restarts from the shared model ----------------------------------------------

CONDITIONS = {"hard copy /100": {}, "soft tau 0.005": {"tau": 0.005, "target_update_period": 1}}


@dataclass
class RestartRuns:
    """Paired restart runs, fixed and broken: per variant one run record per seed."""

    condition: str
    steps: int
    at: int  # env step of the restart
    records: dict[str, list[dict]]

    def series(self, key: str) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
        """Per variant, each run's learner record ``key`` over env steps."""
        return {v: [(np.asarray(r["learner"][0]["env_step"]), np.asarray(
            r["learner"][0][key], dtype=float)) for r in recs] for v, recs in self.records.items()}

    def mean_q(self, variant: str, seed: int, after: bool) -> float:
        """Mean Q over the last 5 records before the restart, or the lowest record after it."""
        steps, q = self.series("mean_q")[variant][seed]
        return float(q[steps <= self.at][-5:].mean()) if not after else float(
            q[steps > self.at].min())

    def target_distance(self, variant: str, seed: int) -> float:
        """||shared target - shared local|| / ||shared local|| at the restart."""
        return self.records[variant][seed]["extras"]["target_distance"][0][0]

    def table(self) -> str:
        """Per variant and seed: the shared target's distance at the restart, mean Q before
        and its lowest after (rounded: exact for a seed in inline mode)."""
        lines = [f"restart at env step {self.at} of {self.steps} ({self.condition}):",
                 f"  {'':<7} {'seed':>4} {'|target - local| / |local|':>27} "
                 f"{'mean Q before':>14} {'lowest after':>13}"]
        for v, recs in self.records.items():
            for seed in range(len(recs)):
                lines.append(f"  {v:<7} {seed:>4} {self.target_distance(v, seed):>27.2f} "
                             f"{self.mean_q(v, seed, False):>14.1f} "
                             f"{self.mean_q(v, seed, True):>13.1f}")
        return "\n".join(lines)


def _restart_run(config: Config, at: int) -> dict:
    """Train ``at`` env steps, then a new system resumes from the first one's shared models
    with ``EXPLOIT``'s epsilon: the learner record (env steps continued) and the shared
    target's relative distance from the shared local network at the restart."""
    torch.manual_seed(config.seed)  # inline mode builds the actor's nets in this process
    learner: dict[str, list] = {}
    with System(config.replace(total_env_steps=at)) as first:
        first.run()
        sources = first.shared_models
        with torch.no_grad():
            m = sources[0]
            local = torch.cat([p.reshape(-1) for p in m.qnetwork_local.parameters()])
            target = torch.cat([p.reshape(-1) for p in m.qnetwork_target.parameters()])
            distance = ((target - local).norm() / local.norm()).item()
        phases = [(first.result().learner[0], 0)]
        second = System(config.replace(total_env_steps=config.total_env_steps - at, **EXPLOIT),
                        sources)
        with second:
            second.run()
        phases.append((second.result().learner[0], at))
    for records, offset in phases:
        for r in records:
            learner.setdefault("env_step", []).append(int(r["env_step"]) + offset)
            for key in ("mean_q", "loss"):
                learner.setdefault(key, []).append(float(r[key]))
    return {"learner": [learner], "extras": {"target_distance": [[distance]]}}


def restart(condition: str = "hard copy /100", seeds: int = 2, steps: int = 1_600,
            at: int = 1_200, learning_starts: int = 200) -> RestartRuns:
    """Train ``at`` env steps (CartPole-v1, copy path, inline), then restart from the shared
    models with epsilon 0.01 (a new actor, learner and replay) until ``steps``; fixed and
    broken, paired by seed. A short ``learning_starts`` lets both phases learn."""
    if condition not in CONDITIONS:
        raise ValueError(f"condition: {condition!r} is not one of {list(CONDITIONS)}")
    records: dict[str, list[dict]] = {}
    for name, fixes in (("fixed", Fixes()), ("broken", Fixes().without("target_sync"))):
        records[name] = []
        for seed in range(seeds):
            config = Config(mode="inline", device="cpu", learner_path="copy", seed=seed,
                            total_env_steps=steps, learning_starts=learning_starts,
                            log_interval=20, fixes=fixes, **CONDITIONS[condition])
            records[name].append(_restart_run(config, at))
    return RestartRuns(condition, steps, at, records)
