"""A monitor for a running ``System``: it watches invariants and names the learning issue behind
each violation, with a one-line hint::

    system = System(config)
    monitor = Monitor(system)
    try:
        system.run(progress=monitor)  # checks every ``every`` polls
    except WorkerError as e:
        monitor.saw_error(e)  # a dead learner: which issue killed it?
    print(monitor.report())

What it watches (from the records the workers send and from the shared memory it can read):
weights that never change while the learner updates; a shared target that never changes while the
target is updated and published; the learner's mode; the gradient norm it stepped with; the
epsilon the actor reads against the learner's; publishes, target updates and epsilon against
their schedules; updates against the update-to-data ratio; rows the learner samples that were
never written; time-limit rows stored as terminal; actions identical across agents; copies the
actor never validates; acting before the first pull; thread counts; a learner that stalls.
A replay counter bumped before its row is written (write_before_publish) leaves no trace at rest:
only a concurrent stress shows it (``python -m mplearn check write_before_publish``).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from mplearn.core.learner import resolve_device, resolve_path
from mplearn.diagnose import rules
from mplearn.diagnose.checks import Finding, explain_error, report


def _fingerprint(net: torch.nn.Module) -> torch.Tensor:
    return torch.cat([t.detach().flatten().float().cpu().clone()
                      for t in net.state_dict().values()])


class Monitor:
    def __init__(self, system, every: int = 10, stall_s: float = 30.0):
        self.system = system
        self.stall_s = stall_s
        self.config = system.config
        self.every = every
        self.findings: dict[str, Finding] = {}  # first violation per issue
        self._polls = 0
        self._path = resolve_path(self.config.learner_path, resolve_device(self.config.device))
        self._snapshots: dict[int, tuple[int, torch.Tensor, torch.Tensor]] = {}
        self._stall: dict[int, tuple[int, float]] = {}  # updates, since when

    # --- use as a progress callback -----------------------------------------------------------
    def __call__(self, system=None) -> None:
        self._polls += 1
        if self._polls % self.every == 0 or self.system.done:  # done: the last look before stop
            self.check()

    def saw_error(self, error: BaseException) -> Finding:
        """Record the learning issue a worker's error points to (``NOT_CATALOGUED`` when it is
        none of the catalogue's: recorded too, a dead worker is never "no problems")."""
        finding = explain_error(str(error))
        self._add(finding)
        return finding

    def report(self) -> str:
        if not self.findings:
            return "no problems found"
        return report(list(self.findings.values()))

    @property
    def issues(self) -> list[str]:
        return sorted(self.findings)

    # --- the invariants ---------------------------------------------------------------------------
    def _add(self, finding: Finding) -> None:
        if not finding.ok:
            self.findings.setdefault(finding.issue, finding)

    def check(self) -> list[Finding]:
        """Check every invariant now; returns the new violations."""
        before = set(self.findings)
        s = self.system
        if not getattr(s, "_started", False) or not hasattr(s, "channels"):
            return []
        for i in range(self.config.n_agents):
            updates = s.channels[i].updates.value  # before env steps: never ahead of them
            env_steps = s.channels[i].env_steps.value
            learner = s._collector.learner[i]
            actor = s._collector.actor[i]
            self._weights(i, updates)
            self._schedules(i, updates, env_steps, learner)
            self._learner_records(learner)
            self._actor_records(actor, learner)
            self._stalled(i, updates, env_steps)
        self._replay()
        return [f for name, f in self.findings.items() if name not in before]

    def _weights(self, i: int, updates: int) -> None:
        c, model = self.config, self.system.shared_models[i]
        local, target = _fingerprint(model.qnetwork_local), _fingerprint(model.qnetwork_target)
        if i not in self._snapshots:
            self._snapshots[i] = (updates, local, target)
            return
        u0, local0, target0 = self._snapshots[i]
        done = updates - u0
        publish = c.publish_interval if self._path == "copy" else 1
        if done > 2 * publish:
            change = (local - local0).abs().max().item()
            self._add(rules.weights_moved(change, done, f"agent {i}: shared weights: "))
        if done > 2 * (c.target_update_period + publish):
            moved = (local - local0).abs().max().item() > 0.0  # else a target cannot move
            change = (target - target0).abs().max().item()
            self._add(Finding(
                "target_sync", change > 0.0 or not moved,
                f"agent {i}: the shared target did not change over {done} updates "
                "(target updated and published in between)",
                "publish the whole state (both networks), not the local network's parameters"))
            self._snapshots[i] = (updates, local, target)

    def _schedules(self, i: int, updates: int, env_steps: int, learner: list[dict]) -> None:
        c = self.config
        owed = c.updates_owed(env_steps)
        self._add(Finding(
            "throttle", updates <= owed,
            f"agent {i}: {updates} updates at {env_steps} env steps; the ratio "
            f"{c.updates_per_step} allows {owed}",
            "make the learner wait for data: updates <= ratio x (env steps - learning_starts)"))
        if not learner:
            return
        r = learner[-1]
        n = r["update"]
        where = f"agent {i}: "
        self._add(rules.target_updates(r["target_updates"], n, c.target_update_period, where))
        if self._path == "copy":
            self._add(rules.publishes(r["publishes"], n, c.publish_interval, where))
        self._add(rules.epsilon_schedule(r["epsilon"], c.epsilon_at(n), n, where))

    def _learner_records(self, learner: list[dict]) -> None:
        c = self.config
        for r in learner[-3:]:
            # The learner records its mode for every update; only mode-dependent layers
            # (noisy, dropout) make eval mode matter, so a plain network is not judged.
            if c.noisy or c.dropout:
                self._add(rules.trained_mode(1 - r.get("train_mode", 1.0), "the learner: "))
            self._add(rules.stepped_norm(r.get("grad_norm_applied_max", 0.0), c.max_grad_norm,
                                         where="the learner: "))
            # The learner records the mean |observation| of its batches: zero is every row
            # empty (observations of a written row are never all zero in these environments).
            if r.get("batch_abs_obs", 1.0) == 0.0:
                self._add(rules.empty_batches(1.0, where="the learner's batches: "))
            if c.mode != "inline":
                self._add(rules.threads(r.get("threads", 1), "a learner"))

    def _actor_records(self, actor: list[dict], learner: list[dict]) -> None:
        c = self.config
        if not actor:
            return
        r = actor[-1]
        if r.get("unpulled_steps", 0) > 0:
            self._add(Finding(
                "initial_state", False,
                f"the actor acted {r['unpulled_steps']} steps with weights it never pulled",
                "one blocking pull of the shared weights before the first step"))
        if r.get("syncs", 0) > 0 and r.get("checked_syncs", 1) == 0:
            self._add(Finding(
                "versioned_publish", False,
                f"the actor made {r['syncs']} copies and validated none against the publisher's "
                "sequence number: a copy during a publish mixes two versions",
                "versioned publish: seqlock (odd while writing; readers retry) or double buffer"))
        if c.mode != "inline":
            self._add(rules.threads(r.get("threads", 1), "the actor"))
        if learner:
            lrn = learner[-1]
            # The actor still at the initial epsilon, after the learner had decayed it: records
            # of the two are taken at different times, so compare only that way round.
            if lrn["epsilon"] < c.epsilon_start - 0.1 and lrn["env_step"] <= r["env_step"]:
                self._add(rules.actor_epsilon(lrn["epsilon"], r["epsilon"], c.epsilon_start,
                                              "the actor: "))

    def _stalled(self, i: int, updates: int, env_steps: int) -> None:
        """Updates owed while the count stays put for ``stall_s`` seconds: the learner is
        stopped, hung or dead, whatever the cause (a busy machine delays a learner by seconds,
        not by half a minute). A stall, not a learning issue: the System's watchdog raises it
        as a WorkerError too."""
        owed = self.config.updates_owed(env_steps) - updates
        now = time.monotonic()
        last_updates, since = self._stall.get(i, (updates, now))
        if updates != last_updates or owed <= 0:
            self._stall[i] = (updates, now)
            return
        self._stall[i] = (last_updates, since)
        if now - since >= self.stall_s:
            self._add(rules.stalled(now - since, owed, f"agent {i}: "))

    def _replay(self) -> None:
        buffers = self.system.buffers
        samples = []
        for buf in buffers:
            n = len(buf)
            if n == 0 or buf._arrays is None:  # empty, or closed by stop()
                return
            views = buf._views()
            samples.append(views)
            truncated = views["truncated"][:n]
            both = int(np.sum(truncated & views["terminated"][:n]))
            self._add(rules.terminal_time_limits(both, int(truncated.sum())))
        if len(samples) > 1:
            # Rows collected while exploring at random (stored epsilon >= 0.9): there the
            # actions come from the workers' random streams alone, not from their networks.
            n = min(min(len(b) for b in buffers), 1000)
            random = np.all([s["epsilons"][:n] >= 0.9 for s in samples], axis=0)
            if random.sum() >= 50:
                same = np.mean([np.mean(samples[0]["actions"][:n][random]
                                        == s["actions"][:n][random]) for s in samples[1:]])
                self._add(Finding(
                    "worker_seeding", same < 0.9,
                    f"{same:.0%} of {int(random.sum())} random exploration actions are the same "
                    "across agents",
                    "seed every worker's random streams differently (SeedSequence.spawn)"))
