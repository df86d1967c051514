"""Each user-facing diagnostic passes correct code and catches the broken version, on plain
modules (no mplearn model)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from mplearn.core.networks import IQNNetwork
from mplearn.diagnose import checks


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.1), nn.Linear(8, 2))


def step(model: nn.Module, optimizer: torch.optim.Optimizer, max_norm: float | None = None):
    optimizer.zero_grad()
    (model(torch.randn(16, 4)) ** 2).mean().mul(100).backward()
    if max_norm is not None:
        nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    optimizer.step()


def test_optimizer_bound_to_the_trained_copy():
    shared = mlp()
    copy_ = copy.deepcopy(shared)
    good = torch.optim.Adam(copy_.parameters())
    assert checks.optimizer_bound_to(good, copy_).ok
    stale = torch.optim.Adam(shared.parameters())  # the shared model's optimizer, kept
    finding = checks.optimizer_bound_to(stale, copy_)
    assert not finding.ok and finding.issue == "optimizer_binding" and finding.hint
    assert "steps 0 of the model's 4" in finding.measured


class Agent(nn.Module):
    """A wrapper as users write them: online and target networks, the optimizer inside."""

    def __init__(self):
        super().__init__()
        self.qnetwork_local, self.qnetwork_target = mlp(), mlp()
        self.qnetwork_target.load_state_dict(self.qnetwork_local.state_dict())
        self.qnetwork_target.eval()  # only computes targets: a choice, not a bug
        self.optimizer = torch.optim.Adam(self.qnetwork_local.parameters())


def test_the_readme_forms_on_a_wrapper_leave_its_target_alone():
    agent = Agent()
    bound = checks.optimizer_bound_to(agent.optimizer, agent)
    assert bound.ok and "target left alone: qnetwork_target" in bound.measured
    modes = checks.module_modes(agent, "train")
    assert modes.ok and "target not judged" in modes.measured
    agent.qnetwork_local.eval()
    assert not checks.module_modes(agent, "train").ok
    copy_ = copy.deepcopy(agent)  # the train copy keeps the original's optimizer: caught
    assert not checks.optimizer_bound_to(agent.optimizer, copy_).ok


def test_weight_change_is_zero_when_the_optimizer_steps_other_parameters():
    shared = mlp()
    trained = copy.deepcopy(shared)
    watch = checks.WeightChange(trained)
    step(trained, torch.optim.Adam(trained.parameters()))
    assert watch.check().ok
    step(trained, torch.optim.Adam(shared.parameters()))  # grads land on `trained`
    assert not watch.check().ok


def test_optimizer_state_left_behind_by_a_move():
    model = mlp()
    optimizer = torch.optim.Adam(model.parameters())
    step(model, optimizer)
    assert checks.optimizer_state_device(optimizer).ok
    model.double()
    finding = checks.optimizer_state_device(optimizer)
    assert not finding.ok and "float32" in finding.measured


def test_module_modes_names_the_mode_dependent_layers():
    model = mlp().train()
    assert checks.module_modes(model, "train").ok
    model.eval()
    finding = checks.module_modes(model, "train")
    assert not finding.ok and finding.issue == "train_mode" and "2" in finding.measured
    plain = nn.Sequential(nn.Linear(2, 2)).eval()  # no mode-dependent layer: nothing changes
    finding = checks.module_modes(plain, "train")
    assert finding.ok and "no module here changes behaviour" in finding.measured


class Jitter(nn.Module):
    """Noise by a layer whose parameters are named nothing like sigma."""

    def __init__(self):
        super().__init__()
        self.centre, self.spread = nn.Parameter(torch.randn(3, 4)), nn.Parameter(torch.ones(3, 4))

    def forward(self, x):
        w = self.centre + (self.spread * torch.randn_like(self.spread) if self.training else 0)
        return x @ w.t()


class GatedByMode(nn.Module):
    """A composite that reads self.training itself: seen only with an example input."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(x * 0.5 if self.training else x)


def test_mode_dependence_is_measured_not_named():
    net = nn.Sequential(nn.Linear(4, 4), Jitter(), nn.BatchNorm1d(3), nn.Tanh())
    assert checks.mode_dependent(net) == ["1", "2"]
    gated = nn.Sequential(GatedByMode(), nn.ReLU())
    assert checks.mode_dependent(gated) == []  # nothing to feed the composite
    assert checks.mode_dependent(gated, example=(torch.randn(5, 4),)) == ["0"]


def test_idle_parameters_of_noisy_layers_in_eval_mode():
    net = IQNNetwork(obs_dim=4, n_actions=2, hidden_dim=8, embedding_dim=8, noisy=True)
    for mode, ok in ((True, True), (False, False)):
        net.train(mode)
        net.zero_grad(set_to_none=True)
        net.reset_noise(torch.Generator().manual_seed(0))
        net(torch.randn(3, 4), torch.rand(3, 5)).sum().backward()
        finding = checks.idle_parameters(net)
        assert finding.ok is ok and finding.issue == "train_mode"


def test_gradient_clipped():
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    step(model, optimizer, max_norm=0.5)
    assert checks.gradient_clipped(model, 0.5).ok
    step(model, optimizer)
    finding = checks.gradient_clipped(model, 0.5)
    assert not finding.ok and finding.issue == "grad_clip"


def test_batch_matches_dtype_and_kind():
    model = mlp()
    good = {"obs": torch.zeros(2, 4), "actions": torch.zeros(2, dtype=torch.int64)}
    assert checks.batch_matches(good, model).ok
    finding = checks.batch_matches({"obs": torch.from_numpy(np.zeros((2, 4)))}, model)
    assert not finding.ok and "float64" in finding.measured
    assert not checks.batch_matches([np.zeros((2, 4), np.float32)], model).ok


def test_replay_batch_tells_unwritten_from_sparse_from_past_the_count():
    rng = np.random.default_rng(0)
    written = dict(obs=rng.normal(size=(8, 4)), reward=rng.normal(size=8),
                   terminated=np.zeros(8, bool), truncated=np.eye(8, dtype=bool)[0])
    assert all(f.ok for f in checks.replay_batch(written, terminated="terminated",
                                                 truncated="truncated"))
    unwritten = {k: np.zeros_like(v) for k, v in written.items()}
    assert {f.issue for f in checks.replay_batch(unwritten) if not f.ok} == {"replay_by_name"}
    as_tuple = tuple(torch.as_tensor(v) for v in unwritten.values())
    assert {f.issue for f in checks.replay_batch(as_tuple) if not f.ok} == {"replay_by_name"}
    sparse = dict(written, obs=np.zeros((8, 4)))  # zero observations in written rows
    assert all(f.ok for f in checks.replay_batch(sparse))
    some = {k: np.concatenate([v[:4], np.zeros_like(v[4:])]) for k, v in written.items()}
    assert all(f.ok for f in checks.replay_batch(some))  # could be legitimate all-zero rows
    past = checks.replay_batch(some, indices=np.arange(8), filled=4)
    assert [f.issue for f in past if not f.ok] == [checks.NOT_CATALOGUED]
    done = dict(written, terminated=written["truncated"].copy())
    found = checks.replay_batch(done, terminated="terminated", truncated="truncated")
    assert {f.issue for f in found if not f.ok} == {"truncation_bootstrap"}


def test_shared_memory_judges_changed_or_named_attributes_only():
    model = mlp()
    assert not checks.shared_memory(model).ok  # not shared yet
    model.gamma = 0.99  # a constant hyper-parameter: plain, and harmless
    model.share_memory()
    before = checks.plain_attributes(model)
    assert checks.shared_memory(model, before=before).ok
    model.epsilon = 0.5  # the plan's "publication" of epsilon, after sharing
    finding = checks.shared_memory(model, before=before)
    assert not finding.ok and finding.issue == "shared_epsilon" and "epsilon" in finding.measured
    assert "gamma" not in finding.measured
    assert not checks.shared_memory(model, reads=("epsilon",)).ok


def test_target_in_sync_sees_the_stale_target():
    class Agent(nn.Module):
        def __init__(self):
            super().__init__()
            self.local, self.target = mlp(), mlp()

    trained, published = Agent(), Agent()
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(1.0)
    published.load_state_dict(trained.state_dict())
    assert checks.target_in_sync(published, trained).ok
    published = Agent()
    with torch.no_grad():  # the review's publish: the local network's parameters only
        for a, b in zip(published.local.parameters(), trained.local.parameters(), strict=True):
            a.copy_(b)
    finding = checks.target_in_sync(published, trained)
    assert not finding.ok and "target." in finding.measured and "local." not in finding.measured


def test_thread_count():
    assert checks.thread_count(processes=2, cores=2).ok is (torch.get_num_threads() <= 1)
    assert checks.thread_count(processes=1, cores=64).ok


OPTIM_FRAME = '  File "/venv/lib/python3.11/site-packages/torch/optim/adam.py", line 456, in step\n'


@pytest.mark.parametrize(("text", "issue"), [
    ("RuntimeError: mat1 and mat2 must have the same dtype, but got Double and Float",
     "batch_to_device"),
    ("RuntimeError: Found dtype Double but expected Float", "batch_to_device"),
    ("RuntimeError: Expected all tensors to be on the same device, but found at least two "
     "devices, cuda:0 and cpu!", "batch_to_device"),
    (OPTIM_FRAME + "RuntimeError: Expected all tensors to be on the same device, but found at "
     "least two devices, cuda:0 and cpu!", "optimizer_binding"),
    (OPTIM_FRAME + "RuntimeError: expected dtype float for `end` but got dtype double",
     "optimizer_binding"),
    ("NameError: name 'training_step' is not defined", "step_counter"),
    ('  File "agent.py", line 40, in step\n    if step % 4 == 0:\n'
     "NameError: name 'step' is not defined", "step_counter"),
    ('  File "agent.py", line 51, in step\n    self.t_step = (t_step + 1) % UPDATE_EVERY\n'
     "UnboundLocalError: cannot access local variable 't_step' where it is not associated with "
     "a value", "step_counter"),
    ('  File "dqn.py", line 60, in learn\n    if self.learn_step_counter % 100 == 0:\n'
     "AttributeError: 'DQN' object has no attribute 'learn_step_counter'", "step_counter"),
    ('  File "dqn.py", line 70, in learn\n    self.optimiser.step()\n'
     "AttributeError: 'DQN' object has no attribute 'optimiser'", checks.NOT_CATALOGUED),
    ('  File "learner.py", line 9, in training_step\n    q = net(obs)\n'
     "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
     checks.NOT_CATALOGUED),
    ('  File "learner.py", line 9, in training_step\n'
     "RuntimeError: The size of tensor a (32) must match the size of tensor b (64)",
     checks.NOT_CATALOGUED),
])
def test_explain_error(text, issue):
    finding = checks.explain_error("Traceback (most recent call last):\n" + text)
    last = text.splitlines()[-1]
    assert finding.issue == issue and not finding.ok and last[:40] in finding.measured


def test_explain_error_reads_the_source_of_a_live_exception():
    def schedule():
        if counter % 10 == 0:  # noqa: F821 (never defined: the point)
            return True

    with pytest.raises(NameError) as caught:
        schedule()
    assert checks.explain_error(caught.value).issue == "step_counter"

    def typo():
        return undefined_thing + 1  # noqa: F821

    with pytest.raises(NameError) as caught:
        typo()
    assert checks.explain_error(caught.value).issue == checks.NOT_CATALOGUED


def test_explain_error_asks_the_objects():
    model = mlp()
    optimizer = torch.optim.Adam(model.parameters())
    step(model, optimizer)
    model.double()  # Adam's state stays float32
    error = RuntimeError("expected dtype float for `end` but got dtype double")
    assert checks.explain_error(error, optimizer=optimizer).issue == "optimizer_binding"
    fresh = torch.optim.Adam(model.parameters())
    batch = {"obs": torch.zeros(2, 4)}  # float32 into a float64 model
    found = checks.explain_error(error, optimizer=fresh, model=model, batch=batch)
    assert found.issue == "batch_to_device"


def test_explain_error_unknown():
    finding = checks.explain_error(ValueError("something else"))
    assert finding.issue == checks.NOT_CATALOGUED and "not one of the catalogue" in \
        finding.measured


def test_report_puts_problems_first():
    ok = checks.Finding("grad_clip", True, "fine")
    bad = checks.Finding("train_mode", False, "eval mode", "call train()")
    text = checks.report([ok, bad])
    assert text.index("PROBLEM") < text.index("[ok]") and "hint: call train()" in text
