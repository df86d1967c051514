"""Training step counter: the catalogue entry, the mechanism check, the scenarios behind data/ and
the experiments its notebook runs.

The plan's training step counter, three ways, as small exact experiments.

* ``schedules``: the kit's own learner (inline, the ``step_counter`` switch on and off): a
  counter never incremented keeps ``0 % interval == 0`` true, so every update publishes and
  advances the epsilon schedule.
* ``plan_learner_loop``: a counter never initialised. In the plan the counter lives in the
  ``learner_process`` function, so ``training_step += 1`` raises ``UnboundLocalError`` (a
  ``NameError``) at the first update.
* ``learner_death``: that loop in a real learner process beside the kit's real ``Actor``. With a
  parent that does not watch its children, the learner dies and the actor goes on acting with
  the initial weights and epsilon; a parent that watches raises the learner's traceback.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import time
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import torch

from mplearn.core.actor import EPISODE, Actor
from mplearn.core.channels import AgentChannel
from mplearn.core.config import Config
from mplearn.core.fixes import Fixes
from mplearn.core.learner import Learner
from mplearn.core.replay import ReplayBuffer
from mplearn.core.system import WorkerError, train
from mplearn.core.weights import (
    create_shared_model,
)
from mplearn.core.workers import ERROR, worker_main
from mplearn.envs import env_spec
from mplearn.issues import measures
from mplearn.issues.base import (
    BASE,
    CARTPOLE_MARGIN,
    CheckResult,
    Issue,
    Manipulation,
    Scenario,
    fix_on_and_off,
    learner_with_rows,
)

ENTRY = Issue(
    "step_counter", "Training step counter",
    claim="training_step = 0 is initialised and incremented (marked fixed).",
    mechanism="Uninitialised: NameError at first use, the learner dies. Never incremented: "
              "0 % interval == 0 is always true, so every step publishes and every step "
              "advances the epsilon schedule.",
    where="the learner's schedules: publish, epsilon decay",
    symptom="publishes and epsilon decays on every update (premature exploitation, slow)",
    diagnostic="Monitor: publishes and epsilon against their schedules; a learner stuck "
               "with updates owed",
    notebook="08_step_counter")


def check() -> CheckResult:
    def experiment(fixes: Fixes) -> float:
        config = BASE.replace(learner_path="copy", publish_interval=10, fixes=fixes)
        with learner_with_rows(config) as learner:
            for _ in range(20):
                learner.update()
            return float(learner.publisher.publishes)

    return fix_on_and_off(
        "step_counter", "publishes in 20 updates (schedule: every 10)", experiment,
        lambda publishes: publishes != 2)


def publishes_per_update(record: dict) -> float | None:
    """Publishes per learner update at the end of the run (schedule: one per 10)."""
    publishes, updates = (measures.last(record, "learner", f) for f in ("publishes", "update"))
    return None if not updates else publishes / updates


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "step_counter",
        "The training step counter never incremented: every update publishes and advances the "
        "epsilon schedule. With the default epsilon_decay_freq = 1 the schedule is the same "
        "either way, so the schedule advances every 10 updates here (decay over 5000 updates "
        "fixed, over 500 broken), on the copy path where publishes happen.",
        "inline", overrides={"learner_path": "copy", "epsilon_decay_freq": 10},
        margin=CARTPOLE_MARGIN,
        manipulation=Manipulation(
            "publishes per update at the end (schedule: 0.1)", publishes_per_update,
            lambda ratio: ratio > 0.5),
        diagnostics=("learner.epsilon", "learner.publishes", "learner.loss")),
)



# --- the experiments its notebook runs --------------------------------------------------------

# Small and fast: CartPole, a tiny network, learners on the CPU.
SMALL = Config(device="cpu", batch_size=16, hidden_dim=16, embedding_dim=16, buffer_size=2_000,
               log_interval=10, seed=0)


# --- never incremented: the kit's learner, fix on and off ---------------------------------------

def schedules(updates: int = 200, epsilon_decay_freq: int = 10, publish_interval: int = 10,
              epsilon_decay_updates: int = 500) -> dict[str, list[dict]]:
    """"fixed"/"broken" -> the learner's records (every 10 updates: update, epsilon, publishes)
    of a short inline run on the copy path, where publishes happen."""
    out = {}
    for name, fixes in (("fixed", Fixes()), ("broken", Fixes().without("step_counter"))):
        config = SMALL.replace(mode="inline", learner_path="copy", learning_starts=100,
                               total_env_steps=100 + updates, publish_interval=publish_interval,
                               epsilon_decay_freq=epsilon_decay_freq,
                               epsilon_decay_updates=epsilon_decay_updates, fixes=fixes)
        out[name] = [{k: r[k] for k in ("update", "epsilon", "publishes")}
                     for r in train(config).learner[0]]
    return out


# --- never initialised: the plan's loop -------------------------------------------------------

def plan_learner_loop(initialise: bool, learner, owed, stopped=lambda: False) -> None:
    """The plan's learner loop around one update: ``training_step`` drives its schedules.
    ``owed()``: updates allowed now (None: the run is over)."""
    if initialise:
        training_step = 0
    while not stopped():
        n = owed()
        if n is None:
            return
        if n <= 0:
            time.sleep(0.0005)  # wait for data
            continue
        training_step += 1  # unbound when not initialised: the bug shown here
        learner.update()


def uninitialised_counter(initialise: bool, updates: int = 5) -> tuple[int, str]:
    """Run the plan's loop for ``updates`` updates in this process: (updates done, the error
    raised as "Type: message", or "")."""
    done = SimpleNamespace(updates=0)

    def update() -> None:
        done.updates += 1

    def owed():
        return None if done.updates >= updates else 1

    try:
        plan_learner_loop(initialise, SimpleNamespace(update=update), owed)
    except NameError as e:  # UnboundLocalError is a NameError
        return done.updates, f"{type(e).__name__}: {e}"
    return done.updates, ""


# --- a learner process that dies ---------------------------------------------------------------

def plan_learner_main(config: Config, spec, channel: AgentChannel, seed: int, initialise: bool,
                      ready, *, records) -> None:
    """Process entry point: the kit's Learner driven by the plan's loop and counter."""
    learner = Learner(config, spec, channel, seed)
    total = config.updates_owed(config.total_env_steps)
    ready.set()

    def owed():
        return None if learner.updates >= total else learner.updates_owed()

    plan_learner_loop(initialise, learner, owed)


@dataclass(frozen=True)
class DeathReport:
    watched: bool
    env_steps: int  # env steps the actor acted
    learner_updates: int  # updates the learner did
    learner_exitcode: int | None
    actor_epsilon: float  # the epsilon the actor read at its last step
    actor_weights_version: int  # the version of the weights it acted with at its last step
    mean_return: float  # over the episodes the actor finished
    episodes: int
    noticed_at: int | None  # env step at which the parent raised the learner's error
    error: WorkerError | None  # what the parent raised (watched only)

    def __str__(self) -> str:
        seen = (f"raised the learner's error at env step {self.noticed_at}" if self.error
                else "saw no error")
        return (f"parent {'watching' if self.watched else 'not watching'} its learner: "
                f"{seen}\n"
                f"  actor: {self.env_steps} env steps, epsilon {self.actor_epsilon:.2f}, weights "
                f"version {self.actor_weights_version}, {self.episodes} episodes, mean return "
                f"{self.mean_return:.1f}\n"
                f"  learner: {self.learner_updates} updates, exit code {self.learner_exitcode}")


def _failed(records) -> tuple[str, str] | None:
    """The first error record in the queue, if any."""
    while True:
        try:
            rec = records.get_nowait()
        except queue.Empty:
            return None
        if rec[0] == ERROR:
            return rec[1], rec[2]


def learner_death(watch: bool, total_env_steps: int = 2_000, learning_starts: int = 500,
                  initialise: bool = False) -> DeathReport:
    """The plan's learner (counter initialised or not) in a spawned worker, the kit's Actor in
    this process. ``watch``: check the learner's error queue before every env step and raise
    its error (a ``WorkerError`` with its traceback) as the System does; else only act."""
    config = SMALL.replace(mode="async", total_env_steps=total_env_steps,
                           learning_starts=learning_starts)
    spec = env_spec(config.env_id)
    ctx = mp.get_context("spawn")
    with torch.random.fork_rng():
        torch.manual_seed(config.seed)
        model = create_shared_model(config, spec=spec)
    buffer = ReplayBuffer(config.buffer_size, spec.obs_shape, ctx, config.fixes)
    channel = AgentChannel(0, model, buffer, epsilon=ctx.Value("d", config.epsilon_start),
                           env_steps=ctx.Value("q", 0), updates=ctx.Value("q", 0))
    records, ready = ctx.Queue(), ctx.Event()
    learner = ctx.Process(target=worker_main, name="learner-0", daemon=True, args=(
        "learner-0", records, config.fixes, plan_learner_main, config, spec, channel, 1,
        initialise, ready))
    actor = None
    try:
        learner.start()
        # Both start together in a real system: act once the learner is up.
        while not ready.wait(0.1):
            if not learner.is_alive():
                raise RuntimeError(f"the learner exited with code {learner.exitcode} at start")
        with torch.random.fork_rng():
            torch.manual_seed(config.seed)
            actor = Actor(config, spec, [channel], seeds=[0])
        actor.first_pull()
        episodes: queue.SimpleQueue = queue.SimpleQueue()
        error, noticed_at = None, None
        while actor.env_steps < total_env_steps:
            if watch and (failed := _failed(records)) is not None:
                error, noticed_at = WorkerError(*failed), actor.env_steps
                break
            actor.step(episodes)
        epsilon, version = float(channel.epsilon.value), actor.subscribers[0].version
        learner.join(timeout=60)  # what became of it
        if watch and error is None and (failed := _failed(records)) is not None:
            error, noticed_at = WorkerError(*failed), actor.env_steps
        returns = []
        while not episodes.empty():
            kind, _, rec = episodes.get()
            if kind == EPISODE:
                returns.append(rec["ret"])
        return DeathReport(
            watch, actor.env_steps, int(channel.updates.value), learner.exitcode, epsilon,
            version,
            float(np.mean(returns)) if returns else float("nan"), len(returns), noticed_at,
            error)
    finally:
        if learner.pid is not None:  # started
            if learner.is_alive():
                learner.terminate()
            learner.join(timeout=10)
        if actor is not None:
            actor.close()
        records.close()
        records.join_thread()
        buffer.close()
        buffer.unlink()
