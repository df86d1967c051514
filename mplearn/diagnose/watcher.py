"""``watch``: the invariants of ``Monitor`` on your own training loop, in plain PyTorch::

    w = watch(q_net, optimizer, target=q_target, shared=shared_net, max_grad_norm=10.0,
              target_every=100, publish_every=10, epsilon=lambda: agent.epsilon)
    with w:                                  # an exception inside is explained, then raised
        for batch in loader:
            ...; loss.backward(); clip; optimizer.step(); maybe copy the target, publish
            w.step(batch)                    # once per update (the batch is optional)
    print(w.report())

It measures, through hooks and snapshots (never through names): the trained parameters' change,
the mode of every mode-dependent layer in the training forward passes (the ones run with
gradients), the gradient norm before clipping (as it is accumulated) and the one the optimizer
stepped with (at its step), how often the target and the shared model change against the
declared schedules, the distance between the shared model and the trainer right after each
publish, the plain attributes the learner changes on the shared model, epsilon against its
schedule and (``probe=True``) the epsilon a process started at the beginning reads. Each
violation is judged by the rule ``Monitor`` uses (``rules.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from mplearn.diagnose import checks, rules
from mplearn.diagnose.rules import Finding
from mplearn.diagnose.tensors import empty_fraction


def _value(source) -> float | None:
    """A number from a callable, an mp.Value, a tensor or a number."""
    if source is None:
        return None
    if callable(source):
        source = source()
    if hasattr(source, "value") and not isinstance(source, int | float):
        return float(source.value)
    if torch.is_tensor(source):
        return float(source.item())
    return float(source)


def _snapshot(params: dict[str, nn.Parameter]) -> dict[str, torch.Tensor]:
    return {k: p.detach().cpu().clone() for k, p in params.items()}


def _dist(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return max(((a[k] - b[k]).abs().max().item() for k in a.keys() & b.keys()
                if a[k].numel() and a[k].shape == b[k].shape), default=0.0)


def _norm(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return math.sqrt(sum(((a[k] - b[k]) ** 2).sum().item() for k in a.keys() & b.keys()
                         if a[k].shape == b[k].shape))


class Watch:
    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, *,
                 target: nn.Module | None = None, shared: nn.Module | None = None,
                 source: nn.Module | None = None, max_grad_norm: float | None = None,
                 target_every: int | None = None, target_tau: float | None = None,
                 publish_every: int | None = None, epsilon=None,
                 epsilon_schedule: Callable[[int], float] | None = None,
                 actor_epsilon=None, probe: bool = False):
        if target_every is not None and target_tau is not None:
            raise ValueError("watch: declare target_every (hard copies) or target_tau (soft "
                             "updates), not both")
        self.model, self.optimizer, self.shared = model, optimizer, shared
        self.max_grad_norm, self.target_every, self.target_tau = (max_grad_norm, target_every,
                                                                  target_tau)
        self.publish_every, self.epsilon, self.epsilon_schedule = (publish_every, epsilon,
                                                                   epsilon_schedule)
        self.actor_epsilon = actor_epsilon
        stepped, target_ids, target_names = checks.split_trained(model, optimizer, target)
        self._trained = {n: p for n, p in model.named_parameters() if id(p) not in target_ids}
        if target is None and target_names:  # the wrapper's own copy, found by the optimizer
            target = model.get_submodule(target_names[0])
        # Where the target sits inside the model (None: outside it).
        self._target_prefix = (target_names[0] + "." if target_names[0] else "") \
            if target_names else None
        self.target = target
        # The trained network the target copies (the model, or its copy inside a wrapper).
        sig = None if target is None else checks._signature(target)
        self._twin = None if target is None else next(
            (m for m in model.modules() if m is not target and checks._signature(m) == sig), None)
        self._target_params = {} if target is None else dict(target.named_parameters())
        # What a publish copies from: the trainer with the shared model's names.
        self._source = source or (model if shared is not None and set(
            shared.state_dict()) == set(model.state_dict()) else None)
        self.updates = 0
        self._mode_names = {n for n, _ in model.named_modules()
                            if not any(n == t or n.startswith(t + ".") for t in target_names
                                       if t)}
        self._mode_dependent: set[str] | None = None
        self._inputs: dict[str, tuple] = {}
        self._modes: list[tuple[str, bool]] = []  # (module, training) of training passes
        self._pre: dict[int, float] = {}
        self.pre_clip: list[float] = []
        self.applied: list[float] = []
        self._hooks = []
        for name, m in model.named_modules():
            if name in self._mode_names:
                self._hooks.append(m.register_forward_pre_hook(self._forward(name)))
        for p in self._trained.values():
            if p.requires_grad:
                self._hooks.append(p.register_post_accumulate_grad_hook(self._accumulated))
        self._hooks.append(optimizer.register_step_pre_hook(self._stepping))
        self._first = _snapshot(self._trained)
        self._last_trained = self._first
        self._last_target = _snapshot(self._target_params)
        self._prev_target = self._last_target
        self.target_changes = 0
        self.soft_rates: list[float] = []
        self._shared_params = {} if shared is None else dict(shared.named_parameters())
        self._last_shared = _snapshot(self._shared_params)
        self.publishes = 0
        self.publish_distance = 0.0
        self._attributes = {} if shared is None else checks.plain_attributes(shared)
        self.epsilon_start = _value(epsilon)
        self._empty_rows: list[float] = []
        self._past_filled: list[float] = []
        self._batch_finding: Finding | None = None
        self.errors: list[Finding] = []
        self._probe = None
        if probe and shared is not None and actor_epsilon is not None:
            from mplearn.diagnose.probe import Probe

            self._probe = Probe(shared, actor_epsilon)
        self.actor_seen: float | None = None

    # --- hooks --------------------------------------------------------------------------------
    def _forward(self, name: str):
        def hook(module, args):
            if not torch.is_grad_enabled():  # acting, or the target's forward: not training
                return
            if name not in self._inputs:
                self._inputs[name] = tuple(a.detach() if torch.is_tensor(a) else a
                                           for a in args)
            self._modes.append((name, module.training))
        return hook

    def _accumulated(self, p: torch.Tensor) -> None:
        self._pre[id(p)] = p.grad.detach().norm().item() ** 2

    def _stepping(self, optimizer, args, kwargs) -> None:
        grads = [p.grad for g in optimizer.param_groups for p in g["params"]
                 if p.grad is not None]
        self.applied.append(math.sqrt(sum(g.detach().norm().item() ** 2 for g in grads)))
        if self._pre:
            self.pre_clip.append(math.sqrt(sum(self._pre.values())))
        self._pre = {}

    # --- once per update ----------------------------------------------------------------------
    def step(self, batch=None, indices=None, filled: int | None = None) -> None:
        """Once per update, after it (and after any target copy or publish). ``batch``: the
        batch it trained on; ``indices`` and ``filled``: the replay rows sampled and the count
        of rows written then."""
        self.updates += 1
        now = _snapshot(self._trained)
        if self._target_params:
            target = _snapshot(self._target_params)
            moved = _dist(target, self._last_target)
            if moved > 0.0:
                self.target_changes += 1
                trained = {} if self._twin is None else _snapshot(
                    dict(self._twin.named_parameters()))
                gap = _norm(trained, self._last_target) if trained else 0.0
                if gap > 0.0:
                    self.soft_rates.append(_norm(target, self._last_target) / gap)
            self._prev_target, self._last_target = self._last_target, target
        if self._shared_params:
            shared = _snapshot(self._shared_params)
            if _dist(shared, self._last_shared) > 0.0:
                self.publishes += 1
                self.publish_distance = max(self.publish_distance, self._published(shared, now))
            self._last_shared = shared
        self._last_trained = now
        if batch is not None:
            if self._batch_finding is None:
                self._batch_finding = checks.batch_matches(batch, self.model)
            self._empty_rows.append(empty_fraction(batch))
        if indices is not None and filled is not None:
            self._past_filled.append(float(np.mean(np.asarray(indices) >= filled)))

    def _published(self, shared: dict[str, torch.Tensor], now: dict[str, torch.Tensor]) -> float:
        """|shared - trainer| right after a publish, tensor by tensor against the trainer now or
        before this update (a publish may come before the step or the target copy of its
        update)."""
        if self._source is not None:
            cur = _snapshot(dict(self._source.named_parameters()))
            before = dict(cur)
            if self._source is self.model and self._target_prefix is not None:
                before.update(self._last_trained)
                cur.update(now)
                before.update({self._target_prefix + k: v for k, v in self._prev_target.items()})
                cur.update({self._target_prefix + k: v for k, v in self._last_target.items()})
            return _either(shared, cur, before)
        if self.target is None:
            return 0.0
        # The shared model holds a copy of the trained network and one of its target (the same
        # shapes): the copy closest to the trained network is its; the other is the target's.
        sig = checks._signature(self.target)
        copies = [_snapshot(dict(m.named_parameters())) for m in self.shared.modules()
                  if sig and checks._signature(m) == sig]
        if len(copies) < 2 or self._twin is None:
            return 0.0
        twin = _snapshot(dict(self._twin.named_parameters()))
        local = min(range(len(copies)), key=lambda i: _dist(copies[i], twin))
        return max(_either(c, self._last_target, self._prev_target)
                   for i, c in enumerate(copies) if i != local)

    # --- errors and the end -------------------------------------------------------------------
    def saw_error(self, error: BaseException | str) -> Finding:
        finding = checks.explain_error(error, optimizer=self.optimizer)
        self.errors.append(finding)
        return finding

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, kind, error, tb) -> bool:
        if error is not None:
            self.saw_error(error)
        self.close()
        return False

    def close(self) -> None:
        """Remove the hooks; read the probe process's epsilon and stop it."""
        for h in self._hooks:
            h.remove()
        self._hooks = []
        if self._probe is not None:
            seen = self._probe.value()
            self.actor_seen = seen if isinstance(seen, float) else None
            self._probe.close()
            self._probe = None

    # --- verdicts ------------------------------------------------------------------------------
    def mode_dependent(self) -> set[str]:
        if self._mode_dependent is None or not self._mode_dependent and self._inputs:
            found = checks.mode_dependent(self.model, inputs=self._inputs)
            self._mode_dependent = {n for n in found if n in self._mode_names}
        return self._mode_dependent

    def findings(self) -> list[Finding]:
        """Every rule that has what it needs, ok or not."""
        out: list[Finding] = list(self.errors)
        if self.updates == 0:
            return out
        moved = rules.weights_moved(_dist(self._last_trained, self._first), self.updates)
        out.append(moved)
        dependent = self.mode_dependent()
        passes = [training for name, training in self._modes if name in dependent]
        if passes:
            out.append(rules.trained_mode(1 - sum(passes) / len(passes)))
        if self.applied and self.max_grad_norm is not None:
            out.append(rules.stepped_norm(max(self.applied), self.max_grad_norm,
                                          max(self.pre_clip) if self.pre_clip else None))
        if not moved.ok:  # nothing trains: nothing to copy or publish, no schedule to judge
            return out + self._epsilon() + self._batch()
        if self.target_every is not None and self._target_params:
            out.append(rules.target_updates(self.target_changes, self.updates,
                                            self.target_every))
        if self.target_tau is not None and self.soft_rates:
            out.append(rules.soft_update_rate(float(np.median(self.soft_rates)),
                                              self.target_tau))
        if self.publish_every is not None and self._shared_params:
            out.append(rules.publishes(self.publishes, self.updates, self.publish_every))
        if self.publishes and (self._source is not None or self.target is not None):
            out.append(rules.published_target(self.publish_distance, self.publishes))
        return out + self._epsilon() + self._batch()

    def _batch(self) -> list[Finding]:
        out = [] if self._batch_finding is None else [self._batch_finding]
        if self._empty_rows or self._past_filled:
            out.append(rules.empty_batches(
                float(np.mean(self._empty_rows)) if self._empty_rows else 0.0,
                float(np.mean(self._past_filled)) if self._past_filled else None))
        return out

    def _epsilon(self) -> list[Finding]:
        out = []
        eps = _value(self.epsilon)
        if eps is not None and self.epsilon_schedule is not None:
            out.append(rules.epsilon_schedule(eps, self.epsilon_schedule(self.updates),
                                              self.updates))
        if self.shared is None:
            return out
        if self._probe is not None:  # still running: ask it now
            seen = self._probe.value()
            self.actor_seen = seen if isinstance(seen, float) else None
        if self.actor_seen is not None and eps is not None:
            out.append(rules.actor_epsilon(eps, self.actor_seen, self.epsilon_start))
        now = checks.plain_attributes(self.shared)
        changed = sorted(k for k, v in now.items() if self._attributes.get(k) != v)
        if isinstance(self.actor_epsilon, str):  # named: that one is judged
            out.append(rules.changing_attributes([k for k in changed
                                                  if k == self.actor_epsilon]))
        elif self.shared is not self.model and self._source is not self.shared:
            # The learner writes values onto the model it publishes through: for the readers.
            out.append(rules.changing_attributes(changed))
        return out

    def report(self) -> str:
        findings = self.findings()
        bad = [f for f in findings if not f.ok]
        if not bad:
            return f"no problems found ({len(findings)} checks over {self.updates} updates)"
        return checks.report(bad)

    @property
    def issues(self) -> list[str]:
        return sorted({f.issue for f in self.findings() if not f.ok})


def _either(shared: dict[str, torch.Tensor], a: dict[str, torch.Tensor],
            b: dict[str, torch.Tensor]) -> float:
    """max over tensors of min(|shared - a|, |shared - b|)."""
    worst = 0.0
    for k, x in shared.items():
        ds = [(x - y[k]).abs().max().item() for y in (a, b)
              if k in y and y[k].shape == x.shape and x.numel()]
        if ds:
            worst = max(worst, min(ds))
    return worst


def watch(model: nn.Module, optimizer: torch.optim.Optimizer, **kwargs) -> Watch:
    """Watch a training loop of your own: see ``Watch`` and this module's docstring."""
    return Watch(model, optimizer, **kwargs)
