"""Diagnostics for your own actor/learner code: plain ``nn.Module``s, optimizers and tensors.

Each function measures one thing and returns a ``Finding``: whether it is fine, what was
measured, and, when it is not, the learning issue it points to (``python -m mplearn issues``)
with a one-line hint. They judge behaviour, not names: a layer is mode-dependent when its output
or gradient changes between train and eval mode on the same input and seed; the target network
is the one the optimizer does not step, whatever it is called. None needs an mplearn model::

    from mplearn.diagnose import checks
    print(checks.optimizer_bound_to(optimizer, agent))        # agent: a wrapper is fine
    print(checks.module_modes(agent, "train", optimizer=optimizer))

``mplearn.diagnose.watch`` applies the same rules over a whole loop of yours, and
``mplearn.diagnose.monitor.Monitor`` to a running ``System`` (``rules.py`` holds them once).
"""

from __future__ import annotations

import copy
import numbers
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from mplearn.diagnose import rules
from mplearn.diagnose.errors import explain_error
from mplearn.diagnose.rules import NOT_CATALOGUED, Finding
from mplearn.diagnose.tensors import batch_matches, empty_fraction, fields, optimizer_state_device

__all__ = ["NOT_CATALOGUED", "Finding", "WeightChange", "batch_matches", "explain_error",
           "gradient_clipped", "gradient_norm", "mode_dependent", "module_modes",
           "optimizer_bound_to", "optimizer_state_device", "plain_attributes", "replay_batch",
           "report", "shared_memory", "split_trained", "target_in_sync", "thread_count",
           "idle_parameters", "noisy_sigma_gradients"]


def report(findings: Sequence[Finding]) -> str:
    """Problems first, one block per finding."""
    return "\n".join(str(f) for f in sorted(findings, key=lambda f: f.ok))


# --- which part is trained, which is the target ------------------------------------------------

def find_optimizer(model: nn.Module) -> torch.optim.Optimizer | None:
    """An optimizer held by the model or one of its modules (a wrapper's ``self.optimizer``),
    found by its type."""
    for m in model.modules():
        for value in vars(m).values():
            if isinstance(value, torch.optim.Optimizer):
                return value
    return None


def _signature(m: nn.Module) -> tuple:
    return tuple((k, tuple(p.shape)) for k, p in m.named_parameters())


def split_trained(model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
                  target: nn.Module | None = None) -> tuple[set[int], set[int], list[str]]:
    """(ids of the parameters the optimizer steps, ids of the target's parameters, the names of
    the target's modules). The target: ``target`` if given, else every module the optimizer
    does not step that has the same parameter shapes as a module it steps (a copy of the
    trained network). Without an optimizer (given or held by the model), everything is
    trained."""
    optimizer = optimizer or find_optimizer(model)
    if optimizer is None:
        stepped = {id(p) for p in model.parameters() if p.requires_grad}
    else:
        stepped = {id(p) for g in optimizer.param_groups for p in g["params"]}
    if target is not None:
        ids = {id(p) for p in target.parameters()}
        names = [n for n, m in model.named_modules() if m is target]
        return stepped - ids, ids, names
    modules = [(n, m) for n, m in model.named_modules() if any(True for _ in m.parameters())]
    trained_sigs = {_signature(m) for _, m in modules
                    if all(id(p) in stepped for p in m.parameters())}
    target_ids: set[int] = set()
    names = []
    for name, m in modules:  # outermost first
        ids = {id(p) for p in m.parameters()}
        if ids & target_ids or ids & stepped:
            continue
        if _signature(m) in trained_sigs:
            target_ids |= ids
            names.append(name)
    return stepped, target_ids, names


# --- optimizer --------------------------------------------------------------------------------

def optimizer_bound_to(optimizer: torch.optim.Optimizer, model: nn.Module,
                       target: nn.Module | None = None) -> Finding:
    """Every parameter the optimizer steps belongs to ``model`` (the trained network or a
    wrapper holding it), and every trainable parameter of ``model`` is stepped, except those of
    its target network (``target``, or a copy of the trained network the optimizer leaves
    alone)."""
    stepped, target_ids, target_names = split_trained(model, optimizer, target)
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    ours = stepped & trainable
    foreign = len(stepped - {id(p) for p in model.parameters()})
    missing = len(trainable - stepped - target_ids)
    ok = foreign == 0 and missing == 0 and bool(ours)
    note = f" (target left alone: {', '.join(target_names)})" if target_names else ""
    return Finding(
        "optimizer_binding", ok,
        f"the optimizer steps {len(ours)} of the model's {len(trainable - target_ids)} trained "
        f"parameters; {foreign} of its parameters belong to something else; {missing} "
        f"trainable parameters are not stepped{note}",
        "" if ok else "create the optimizer from the parameters of the model you train "
        "(after copying or moving it): make_optimizer(train_copy.parameters())")


class WeightChange:
    """Largest absolute change of any trained parameter between two ``measure()`` calls: zero
    after an optimizer step means nothing is learning (an optimizer bound to other
    parameters)."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer | None = None):
        self.model = model
        stepped, target_ids, _ = split_trained(model, optimizer)
        trained = [p for p in model.parameters() if id(p) in stepped and id(p) not in target_ids]
        # An optimizer that steps none of them (bound elsewhere): watch all of them, and see
        # that none moves.
        self.params = trained or [p for p in model.parameters()
                                  if p.requires_grad and id(p) not in target_ids]
        self._last = self._snapshot()

    def _snapshot(self) -> list[torch.Tensor]:
        return [p.detach().clone() for p in self.params]

    def measure(self) -> float:
        now = self._snapshot()
        change = max(((a - b).abs().max().item() for a, b in zip(now, self._last, strict=True)
                      if a.numel()), default=0.0)
        self._last = now
        return change

    def check(self, updates: int = 1) -> Finding:
        """Call after ``updates`` optimizer steps since the last measure."""
        return rules.weights_moved(self.measure(), updates)


# --- modes: measured, not named -----------------------------------------------------------------

def _guess_inputs(m: nn.Module) -> list[tuple]:
    """Inputs to try on a module, from the shapes of its own parameters (a layer's weight says
    its input width); a module without parameters gets a generic batch."""
    own = [p for p in m.parameters(recurse=False)]
    out = []
    for p in own:
        if p.dim() == 2:
            out.append((torch.randn(4, p.shape[1]),))
        elif p.dim() == 4:
            out.append((torch.randn(2, p.shape[1], 8, 8),))
        elif p.dim() == 1:
            out.append((torch.randn(4, p.shape[0]),))
    return out or [(torch.randn(4, 8),), (torch.randn(2, 3, 8, 8),)]


def _flat(out) -> list[torch.Tensor]:
    if torch.is_tensor(out):
        return [out]
    if isinstance(out, Mapping):
        out = list(out.values())
    if isinstance(out, Sequence) and not isinstance(out, str):
        return [t for o in out for t in _flat(o)]
    return []


def _run(m: nn.Module, args: tuple, training: bool, seed: int) -> tuple[list, list] | None:
    probe = copy.deepcopy(m)
    for sub in probe.modules():  # a copy keeps the original's hooks (a watch's): not here
        sub._forward_pre_hooks.clear()
        sub._forward_hooks.clear()
    probe.training = training  # its own flag only: the children keep theirs
    for p in probe.parameters():
        p.grad = None
    with torch.random.fork_rng(devices=[]), torch.enable_grad():
        torch.manual_seed(seed)
        try:
            outs = [o for o in _flat(probe(*args)) if o.is_floating_point()]
        except Exception:  # an input this module does not take: no verdict from it
            return None
        loss = sum((o * torch.linspace(-1, 1, o.numel()).reshape(o.shape)).sum() for o in outs
                   if o.requires_grad)
        if torch.is_tensor(loss):
            loss.backward()
    grads = [torch.zeros_like(p) if p.grad is None else p.grad for p in probe.parameters()]
    return [o.detach() for o in outs], grads


def _reads_mode(m: nn.Module, inputs: Iterable[tuple]) -> bool | None:
    for args in inputs:
        a, b = _run(m, args, True, 0), _run(m, args, False, 0)
        if a is None or b is None:
            continue
        same = len(a[0]) == len(b[0]) and all(
            x.shape == y.shape and torch.allclose(x, y) for x, y in zip(a[0], b[0], strict=True))
        same = same and all(torch.allclose(x, y) for x, y in zip(a[1], b[1], strict=True))
        return not same
    return None


def record_inputs(model: nn.Module, *example) -> dict[str, tuple]:
    """Each module's input in one forward pass of ``model(*example)``."""
    seen: dict[str, tuple] = {}
    handles = [m.register_forward_pre_hook(
        lambda mod, args, name=name: seen.setdefault(name, tuple(
            a.detach() if torch.is_tensor(a) else a for a in args)))
        for name, m in model.named_modules()]
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            model(*example)
    finally:
        for h in handles:
            h.remove()
    return seen


def mode_dependent(model: nn.Module, example: tuple | None = None,
                   inputs: Mapping[str, tuple] | None = None) -> list[str]:
    """The modules whose own output or gradient changes between train and eval mode on the
    same input and seed (dropout, batch norm, noisy layers, anything reading ``self.training``).
    Inputs: those seen in a forward pass of ``model(*example)`` (or ``inputs`` recorded
    already); else guessed from each module's parameter shapes."""
    if inputs is None and example is not None:
        inputs = record_inputs(model, *example)
    found = []
    for name, m in model.named_modules():
        tries = [inputs[name]] if inputs and name in inputs else []
        if not tries and not any(True for _ in m.children()):
            tries = _guess_inputs(m)  # a leaf never seen: a guessed input
        if tries and _reads_mode(m, tries):
            found.append(name)
    return found


def module_modes(model: nn.Module, expected: str = "train",
                 optimizer: torch.optim.Optimizer | None = None,
                 target: nn.Module | None = None, example: tuple | None = None) -> Finding:
    """The mode of every mode-dependent module of the trained network. On a wrapper, the
    target network (``target``, or the copy the optimizer leaves alone; ``optimizer`` or one
    the wrapper holds) is not judged: keeping it in eval mode is a choice, not this bug."""
    want = expected == "train"
    stepped, target_ids, target_names = split_trained(model, optimizer, target)
    if target is None and not stepped & {id(p) for p in model.parameters()}:
        return Finding("train_mode", True, "not judged: the optimizer steps none of this model's "
                       "parameters, so the trained network and its target cannot be told apart "
                       "(see optimizer_bound_to)")
    dependent = [n for n in mode_dependent(model, example)
                 if not any(n == t or n.startswith(t + ".") for t in target_names if t)]
    modules = dict(model.named_modules())
    wrong = [n or "(root)" for n in dependent if modules[n].training != want]
    ok = not wrong
    measured = (f"{len(dependent)} mode-dependent modules in the trained network, {len(wrong)} "
                f"not in {expected} mode" + (f" ({', '.join(wrong[:4])})" if wrong else ""))
    if not dependent:
        measured += " (no module here changes behaviour with the mode)"
    if target_names:
        measured += f"; target not judged: {', '.join(target_names)}"
    return Finding("train_mode", ok, measured,
                   "" if ok else f"call .{expected}() on the trained network at the start of "
                   "the step: an eval() ... train() pair that returned early left it there")


def idle_parameters(model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> Finding:
    """After ``backward()``: trained parameters of mode-dependent modules with no gradient
    (None or zero), the noise scales of a noisy layer run in eval mode whatever they are
    called."""
    _, target_ids, target_names = split_trained(model, optimizer)
    dependent = set(mode_dependent(model))
    idle, total = [], 0
    for name, m in model.named_modules():
        if name not in dependent:
            continue
        for pname, p in m.named_parameters(recurse=False):
            if id(p) in target_ids or not p.requires_grad:
                continue
            total += 1
            if p.grad is None or not p.grad.any():
                idle.append(f"{name}.{pname}" if name else pname)
    ok = not idle
    return Finding("train_mode", ok,
                   f"{len(idle)} of {total} parameters of mode-dependent modules got no "
                   "gradient" + (f" ({', '.join(idle[:3])})" if idle else ""),
                   "" if ok else "those layers ran in eval mode: call .train() before the loss")


def noisy_sigma_gradients(model: nn.Module) -> Finding:
    """The name notebook 04 and the catalogue use: ``idle_parameters`` (found by behaviour,
    whatever the noise parameters are called)."""
    return idle_parameters(model)


# --- gradients -----------------------------------------------------------------------------------

def gradient_norm(model: nn.Module) -> float:
    grads = [p.grad.detach() for p in model.parameters() if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item() if grads \
        else 0.0


def gradient_clipped(model: nn.Module, max_norm: float) -> Finding:
    """Between clipping and ``optimizer.step()``: the gradient norm is at most ``max_norm``.
    (After the step this cannot tell a clip before the step from one after it: ``watch``
    records the norm the optimizer stepped with.)"""
    return rules.stepped_norm(gradient_norm(model), max_norm)


# --- data (batch_matches, fields: tensors.py) -------------------------------------------------

def replay_batch(batch, indices=None, filled: int | None = None, terminated: str | None = None,
                 truncated: str | None = None) -> list[Finding]:
    """A sampled replay batch (a mapping, a tuple, a namedtuple or one tensor whose rows are
    transitions). A row is empty when every field of it is zero (observation, action, reward,
    next observation, done): every row empty is memory nobody wrote (a buffer that reached the
    learner by value); an all-zero observation in a written row is a sparse observation, not a
    problem. Some empty rows may be either legitimate all-zero transitions or rows past the
    filled count: with the sampled ``indices`` and the count ``filled`` written, the second is
    told for certain. With the names of the ``terminated`` and ``truncated`` fields, time-limit
    rows stored as terminal too."""
    t = fields(batch)
    empty = empty_fraction(batch)
    past = None if indices is None or filled is None else float(
        np.mean(np.asarray(indices) >= filled))
    findings = [rules.empty_batches(empty, past)]
    if terminated is not None and truncated is not None:
        trunc = np.asarray(t[truncated], dtype=bool)
        both = int(np.sum(trunc & np.asarray(t[terminated], dtype=bool)))
        findings.append(rules.terminal_time_limits(both, int(trunc.sum())))
    return findings


# --- processes and sharing ----------------------------------------------------------------------

def plain_attributes(model: nn.Module) -> dict[str, object]:
    """The plain number attributes of every module (what ``share_memory()`` does not share),
    by dotted name: take it right after sharing and give it to ``shared_memory(before=...)``."""
    return {f"{prefix + '.' if prefix else ''}{k}": v for prefix, m in model.named_modules()
            for k, v in vars(m).items()
            if isinstance(v, numbers.Number) and not isinstance(v, bool)
            and not k.startswith("_")}


def shared_memory(model: nn.Module, reads: Sequence[str] = (),
                  before: Mapping[str, object] | None = None) -> Finding:
    """Every CPU parameter and buffer in shared memory; and, of the plain attributes, those
    that another process reads (``reads``, dotted names) or that changed since ``before`` (a
    ``plain_attributes`` snapshot taken when the model was shared). Constant hyper-parameters
    (gamma, a layer's width) are plain and harmless: they are not judged."""
    tensors = list(model.named_parameters()) + list(model.named_buffers())
    private = [n for n, t in tensors if not t.is_shared() and t.device.type == "cpu"]
    now = plain_attributes(model)
    named = [k for k in reads if k in now]
    changed = [] if before is None else sorted(
        k for k, v in now.items() if k not in before or before[k] != v)
    suspect = sorted(set(named) | set(changed))
    parts = [f"{len(tensors) - len(private)} of {len(tensors)} tensors shared"]
    if suspect:
        parts.append("plain attributes " + ("read by another process" if named else
                                            "changed after sharing") + f": {', '.join(suspect)}")
    else:
        parts.append(f"{len(now)} plain attributes, none changed or named as read elsewhere")
    ok = not private and not suspect
    hint = ""
    if suspect:
        hint = ("share_memory() shares tensor storages only: put values other processes read "
                "(epsilon) in an mp.Value or a shared tensor")
    elif private:
        hint = "call share_memory() before starting the processes that read the model"
    return Finding("shared_epsilon", ok, "; ".join(parts), hint)


def thread_count(processes: int, cores: int | None = None) -> Finding:
    """torch threads in this process against the cores shared by ``processes`` processes."""
    import os

    cores = cores or os.cpu_count() or 1
    threads = torch.get_num_threads()
    ok = threads * processes <= max(cores, processes)
    return Finding("single_thread", ok,
                   f"{threads} torch threads here x {processes} processes on {cores} cores",
                   "" if ok else "call torch.set_num_threads(1) at the start of every worker")


# --- target network -----------------------------------------------------------------------------

def distance(a: nn.Module, b: nn.Module, buffers: bool = False) -> float:
    """max |a - b| over the parameters (and buffers) the two have by the same name."""
    sa = dict(a.named_parameters())
    sb = dict(b.named_parameters())
    if buffers:
        sa.update(a.named_buffers())
        sb.update(b.named_buffers())
    worst = 0.0
    for k in sa.keys() & sb.keys():
        x, y = sa[k], sb[k]
        if x.is_floating_point() and x.numel() and x.shape == y.shape:
            worst = max(worst, (x.detach().cpu() - y.detach().cpu()).abs().max().item())
    return worst


def target_in_sync(published: nn.Module, trained: nn.Module, atol: float = 0.0) -> Finding:
    """Right after a publish: every parameter of the published copy (both networks) equals the
    trainer's. Buffers that differ alone (noise samples redrawn before each use) are reported,
    not flagged: the kit measured stale noise buffers harmless."""
    a, b = published.state_dict(), trained.state_dict()
    params = {k for k, _ in trained.named_parameters()}
    missing = sorted(set(b) - set(a))
    stale, stale_buffers = [], []
    worst = 0.0
    for name in sorted(set(a) & set(b)):
        x, y = a[name], b[name]
        if not (x.is_floating_point() and y.is_floating_point()) or x.shape != y.shape:
            continue
        d = (x.detach().cpu() - y.detach().cpu()).abs().max().item() if x.numel() else 0.0
        if d > atol:
            (stale if name in params else stale_buffers).append(name)
            worst = max(worst, d) if name in params else worst
    ok = not stale and not missing
    names = ", ".join(stale[:3]) + (" ..." if len(stale) > 3 else "")
    return Finding(
        "target_sync", ok,
        f"max |published - trained| = {worst:.3g} over {len(params)} parameters"
        + (f"; stale: {names}" if stale else "") + (f"; missing: {missing[:3]}" if missing else "")
        + (f"; {len(stale_buffers)} buffers differ (noise samples: measured harmless)"
           if stale_buffers else ""),
        "" if ok else "publish the whole state_dict() (both networks), not "
        "zip(shared.local.parameters(), trainer.local.parameters())")
