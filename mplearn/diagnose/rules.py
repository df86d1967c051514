"""The invariants, once: each rule takes numbers already measured and returns a ``Finding``
(ok or not, what was measured, the learning issue behind a violation and a one-line hint).

``watch`` (a user's own loop) and ``Monitor`` (a running ``System``) measure the same
quantities in different ways (hooks on the user's objects; the records mplearn's workers send)
and judge them here, so that the two cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Finding:
    issue: str  # the learning issue this is about (a Fixes field name), or NOT_CATALOGUED
    ok: bool
    measured: str  # what was measured, with the numbers
    hint: str = ""  # one line: what to do, when not ok

    def __str__(self) -> str:
        status = "ok" if self.ok else "PROBLEM"
        line = f"[{status}] {self.issue}: {self.measured}"
        return line if self.ok or not self.hint else f"{line}\n    hint: {self.hint}"


# A violation that is real but none of the catalogue's issues: said so, never guessed.
NOT_CATALOGUED = "not_in_catalogue"
# A process that stopped making progress (stopped, hung, dead): no learning issue either.
STALL = "stall"


def stalled(seconds: float, owed: int, where: str = "") -> Finding:
    """A learner whose update count stayed put for ``seconds`` with ``owed`` updates to do."""
    return Finding(STALL, False,
                   f"{where}the learner made no update for {seconds:.0f} s with {owed} updates "
                   "owed",
                   "its process is stopped, hung or dead: System's watchdog raises a WorkerError "
                   "naming it and its state (stopped, sleeping, running) after stall_timeout_s")


def weights_moved(change: float, updates: int, where: str = "") -> Finding:
    ok = change > 0.0
    return Finding("optimizer_binding", ok,
                   f"{where}max |weight change| of the trained parameters over {updates} "
                   f"update(s): {change:.3g}",
                   "" if ok else "the optimizer steps parameters other than the ones trained: "
                   "create it from the train copy's parameters (after copying or moving it)")


def trained_mode(eval_fraction: float, where: str = "") -> Finding:
    """``eval_fraction``: of the training forward passes of mode-dependent modules, the share
    run in eval mode."""
    ok = eval_fraction == 0.0
    return Finding("train_mode", ok,
                   f"{where}mode-dependent layers ran in eval mode in {eval_fraction:.0%} of "
                   "the training forward passes",
                   "" if ok else "call .train() on the trained network at the start of the "
                   "update: an eval() ... train() pair that returned early left it in eval mode")


def stepped_norm(applied: float, max_norm: float | None, before_clip: float | None = None,
                 where: str = "") -> Finding:
    """``applied``: the gradient norm the optimizer stepped with."""
    if max_norm is None:
        return Finding("grad_clip", True, f"{where}gradient norm stepped with: {applied:.4g} "
                       "(no limit declared)")
    ok = applied <= max_norm * (1 + 1e-3)
    extra = "" if before_clip is None else f", before clipping {before_clip:.4g}"
    return Finding("grad_clip", ok,
                   f"{where}largest gradient norm stepped with: {applied:.4g}{extra} "
                   f"(limit {max_norm})",
                   "" if ok else "call nn.utils.clip_grad_norm_(params, max_norm) between "
                   "backward() and optimizer.step()")


def target_updates(count: int, updates: int, period: int, where: str = "") -> Finding:
    """Hard copies against their schedule (one every ``period`` updates, one extra allowed for
    a count that starts at 0)."""
    allowed = updates // period + 1
    if period >= 2 and updates >= 2 * period and count >= updates:
        return Finding("step_counter", False,
                       f"{where}the target changed on every one of {updates} updates (schedule: "
                       f"every {period})",
                       "the counter of `step % period == 0` stays at 0: increment it every "
                       "update")
    ok = count <= allowed
    return Finding("single_target_update", ok,
                   f"{where}{count} target updates in {updates} updates (schedule: "
                   f"{updates // period}, every {period})",
                   "" if ok else "update the target in one place only: the loop and the train "
                   "step both do it")


def soft_update_rate(rate: float, tau: float, where: str = "") -> Finding:
    """``rate``: how far the target moved toward the trained network in one update."""
    ok = rate <= 1.5 * tau
    return Finding("single_target_update", ok,
                   f"{where}the target moves {rate:.4g} of the way to the trained network per "
                   f"update (declared tau {tau})",
                   "" if ok else "the soft update runs twice per update (loop and train step): "
                   "keep one")


def publishes(count: int, updates: int, interval: int, where: str = "") -> Finding:
    """Publishes against their schedule: far more (a counter stuck at 0 makes ``step % n == 0``
    true every update) or none at all after two intervals (a counter stuck elsewhere)."""
    expected = updates // interval
    ok = count <= expected + 1 and not (updates >= 2 * interval and count == 0)
    return Finding("step_counter", ok,
                   f"{where}{count} publishes in {updates} updates (schedule: {expected}, "
                   f"every {interval})",
                   "" if ok else "the step counter that drives the schedules does not advance "
                   "once per update: initialise it before the loop and increment it every update")


def epsilon_schedule(epsilon: float, expected: float, updates: int, where: str = "") -> Finding:
    ok = epsilon >= expected - 1e-9
    return Finding("step_counter", ok,
                   f"{where}learner epsilon {epsilon:.3f} after {updates} updates; the schedule "
                   f"says {expected:.3f}",
                   "" if ok else "epsilon decays faster than its schedule: the decay counter "
                   "advances wrongly")


def published_target(distance: float, publishes_seen: int, where: str = "") -> Finding:
    """``distance``: the largest |shared - trainer| over the target's parameters right after
    a publish (the largest over the publishes seen)."""
    ok = distance == 0.0
    return Finding("target_sync", ok,
                   f"{where}max |shared - trainer| right after a publish: "
                   f"{distance:.3g} (over {publishes_seen} publishes)",
                   "" if ok else "publish the whole state_dict() (both networks), not the "
                   "local network's parameters")


def actor_epsilon(learner: float, actor: float, start: float, where: str = "") -> Finding:
    """The epsilon another process reads against the learner's, once the learner decayed it."""
    ok = not (learner < start - 1e-6 and abs(actor - learner) > 1e-6 and actor == start)
    return Finding("shared_epsilon", ok,
                   f"{where}another process reads epsilon {actor:.3f}; the learner's is "
                   f"{learner:.3f}",
                   "" if ok else "share epsilon through shared memory (an mp.Value or a shared "
                   "tensor), not a plain attribute: a process keeps the value it started with")


def changing_attributes(names: list[str], where: str = "") -> Finding:
    """Plain (unshared) values of a shared object that changed after it was shared."""
    ok = not names
    return Finding("shared_epsilon", ok,
                   f"{where}plain attributes of the shared model changed during training: "
                   f"{', '.join(names)}" if names else
                   f"{where}no plain attribute of the shared model changed during training",
                   "" if ok else "share_memory() shares tensor storages only: a process that "
                   "holds the model keeps these values as they were when it started; use an "
                   "mp.Value or a shared tensor")


def empty_batches(fraction: float, past_filled: float | None = None, where: str = "") -> Finding:
    """``fraction``: of the sampled rows, those whose every field is zero; ``past_filled``: of
    the sampled indices, those at or past the count of rows written (None: not known)."""
    if past_filled:
        return Finding(NOT_CATALOGUED, False,
                       f"{where}{past_filled:.0%} of the sampled indices are past the count of "
                       "rows written",
                       "sample indices below the number of rows written, not below the capacity")
    if fraction == 1.0:
        return Finding("replay_by_name", False,
                       f"{where}every sampled row is all zeros (observation, action, reward, "
                       "next observation, done)",
                       "the learner samples memory nobody wrote: the buffer reached this process "
                       "by value; re-attach its shared memory by name in __setstate__")
    # Some empty rows alone prove nothing: a start state encoded as zeros with action 0 and
    # reward 0 is a legitimate all-zero transition.
    note = "" if past_filled is not None or not fraction else (
        " (sparse transitions, or rows past the filled count: pass the indices and the count "
        "written to tell)")
    return Finding("replay_by_name", True,
                   f"{where}{fraction:.0%} of the sampled rows are all zeros{note}")


def terminal_time_limits(both: int, truncated: int, where: str = "") -> Finding:
    ok = both == 0
    return Finding("truncation_bootstrap", ok,
                   f"{where}{both} of {truncated} time-limit rows stored as terminal",
                   "" if ok else "store terminated, not `terminated or truncated`: a time limit "
                   "must still bootstrap")


def threads(count: int, who: str) -> Finding:
    ok = count <= 1
    return Finding("single_thread", ok, f"{who} runs {count} torch threads",
                   "" if ok else "torch.set_num_threads(1) in every worker")
