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
    assert "0 of the model's 4" in finding.measured


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
    assert finding.ok and "none of them changes behaviour" in finding.measured


def test_noisy_sigma_gradients_vanish_in_eval_mode():
    net = IQNNetwork(obs_dim=4, n_actions=2, hidden_dim=8, embedding_dim=8, noisy=True)
    for mode, ok in ((True, True), (False, False)):
        net.train(mode)
        net.zero_grad(set_to_none=True)
        net.reset_noise(torch.Generator().manual_seed(0))
        net(torch.randn(3, 4), torch.rand(3, 5)).sum().backward()
        assert checks.noisy_sigma_gradients(net).ok is ok


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


def test_replay_batch_zero_rows_and_terminal_time_limits():
    rng = np.random.default_rng(0)
    written = dict(obs=rng.normal(size=(8, 4)), terminated=np.zeros(8, bool),
                   truncated=np.eye(8, dtype=bool)[0])
    assert all(f.ok for f in checks.replay_batch(written))
    unwritten = dict(written, obs=np.zeros((8, 4)))
    assert {f.issue for f in checks.replay_batch(unwritten) if not f.ok} == {"replay_by_name"}
    done = dict(written, terminated=written["truncated"].copy())
    assert {f.issue for f in checks.replay_batch(done) if not f.ok} == {"truncation_bootstrap"}


def test_shared_memory_and_plain_attributes():
    model = mlp()
    assert not checks.shared_memory(model).ok  # not shared yet
    model.share_memory()
    assert checks.shared_memory(model).ok
    model.epsilon = 0.5  # the plan's "publication" of epsilon
    finding = checks.shared_memory(model)
    assert not finding.ok and finding.issue == "shared_epsilon" and "epsilon" in finding.measured


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


@pytest.mark.parametrize(("text", "issue"), [
    ("RuntimeError: mat1 and mat2 must have the same dtype, but got Double and Float",
     "batch_to_device"),
    ("RuntimeError: Expected all tensors to be on the same device, but found at least two "
     "devices, cuda:0 and cpu!", "batch_to_device"),
    ("NameError: name 'training_step' is not defined", "step_counter"),
])
def test_explain_error(text, issue):
    finding = checks.explain_error("Traceback (most recent call last):\n  ...\n" + text)
    assert finding.issue == issue and not finding.ok and text[:40] in finding.measured


def test_explain_error_unknown():
    assert checks.explain_error(ValueError("something else")) is None


def test_report_puts_problems_first():
    ok = checks.Finding("grad_clip", True, "fine")
    bad = checks.Finding("train_mode", False, "eval mode", "call train()")
    text = checks.report([ok, bad])
    assert text.index("PROBLEM") < text.index("[ok]") and "hint: call train()" in text
