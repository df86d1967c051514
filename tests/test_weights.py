import threading

import pytest
import torch

from mplearn.core.config import Config
from mplearn.core.weights import (
    WeightPublisher,
    WeightSubscriber,
    build_network,
    create_shared_model,
    make_train_copy,
)
from mplearn.envs import env_spec

SMALL = dict(env_id="CartPole-v1", hidden_dim=16, embedding_dim=8, device="cpu")
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def spec():
    return env_spec("CartPole-v1")


def _cfg(**changes) -> Config:
    return Config(**{**SMALL, **changes})


def _tensors(module: torch.nn.Module) -> list[torch.Tensor]:
    return list(module.parameters()) + list(module.buffers())


def _assert_state_equal(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for name in sa:
        assert torch.equal(sa[name], sb[name]), name


def _state_differs(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return any(not torch.equal(sa[n], sb[n]) for n in sa)


def _train(trainer, spec, steps: int = 3, seed: int = 0) -> None:
    """A few Adam steps on an arbitrary loss; also move the target so it differs too."""
    g = torch.Generator().manual_seed(seed)
    net = trainer.qnetwork_local
    for _ in range(steps):
        obs = torch.randn(8, *spec.obs_shape, generator=g)
        taus = torch.rand(8, 4, generator=g)
        loss = net(obs, taus).pow(2).mean()
        trainer.optimizer.zero_grad()
        loss.backward()
        trainer.optimizer.step()
    with torch.no_grad():
        for p in trainer.qnetwork_target.parameters():
            p.add_(torch.randn(p.shape, generator=g))


# --- create_shared_model ---------------------------------------------------------------------


@pytest.mark.parametrize("noisy", [False, True])
def test_create_shared_model_is_in_shared_memory(spec, noisy):
    model = create_shared_model(_cfg(noisy=noisy), spec=spec)
    for net in (model.qnetwork_local, model.qnetwork_target):
        tensors = _tensors(net)
        assert len(tensors) > 0
        assert all(t.is_shared() for t in tensors)
    if noisy:
        assert any("epsilon" in n for n, _ in model.qnetwork_local.named_buffers())
    assert model.weights_seq.is_shared() and model.weights_version.is_shared()
    assert int(model.weights_seq) == 0 and int(model.weights_version) == 0
    _assert_state_equal(model.qnetwork_local, model.qnetwork_target)
    assert all(not p.requires_grad for p in model.qnetwork_target.parameters())
    assert all(p.requires_grad for p in model.qnetwork_local.parameters())


def test_create_shared_model_optimizer_holds_the_local_parameters(spec):
    model = create_shared_model(_cfg(), spec=spec)
    opt_params = [p for group in model.optimizer.param_groups for p in group["params"]]
    local = list(model.qnetwork_local.parameters())
    assert len(opt_params) == len(local)
    assert all(a is b for a, b in zip(opt_params, local, strict=True))
    assert opt_params[0].is_shared()


def test_create_shared_model_copies_a_source(spec):
    torch.manual_seed(1)
    source = create_shared_model(_cfg(noisy=True), spec=spec)
    with torch.no_grad():  # make target and local differ, so both copies are checked
        for p in source.qnetwork_target.parameters():
            p.add_(1.0)
    torch.manual_seed(2)
    fresh = create_shared_model(_cfg(noisy=True), spec=spec)
    assert _state_differs(fresh, source)  # a different seed: otherwise the test proves nothing
    torch.manual_seed(2)
    copy = create_shared_model(_cfg(noisy=True), source_model=source, spec=spec)
    _assert_state_equal(copy, source)
    assert all(t.is_shared() for t in _tensors(copy))
    opt_params = [p for group in copy.optimizer.param_groups for p in group["params"]]
    assert all(a is b for a, b in
               zip(opt_params, copy.qnetwork_local.parameters(), strict=True))
    # a copy, not an alias
    with torch.no_grad():
        next(source.qnetwork_local.parameters()).add_(1.0)
    assert _state_differs(copy, source)


# --- WeightPublisher -------------------------------------------------------------------------


def test_make_train_copy_is_private(spec):
    shared = create_shared_model(_cfg(), spec=spec)
    trainer = make_train_copy(shared, _cfg(), spec, CPU)
    _assert_state_equal(trainer, shared)
    for a, b in zip(_tensors(trainer), _tensors(shared), strict=True):
        assert a.data_ptr() != b.data_ptr()
    opt_params = [p for group in trainer.optimizer.param_groups for p in group["params"]]
    assert all(a is b for a, b in
               zip(opt_params, trainer.qnetwork_local.parameters(), strict=True))


def test_publish_copies_both_networks_and_buffers(spec):
    cfg = _cfg(noisy=True)
    shared = create_shared_model(cfg, spec=spec)
    trainer = make_train_copy(shared, cfg, spec, CPU)
    _train(trainer, spec)
    g = torch.Generator().manual_seed(5)
    trainer.qnetwork_local.reset_noise(g)
    trainer.qnetwork_target.reset_noise(g)
    for net in ("qnetwork_local", "qnetwork_target"):
        assert _state_differs(getattr(trainer, net), getattr(shared, net))
    shared_bufs = dict(shared.named_buffers())
    assert any(not torch.equal(b, shared_bufs[n]) for n, b in trainer.named_buffers())

    params_before = list(trainer.parameters())
    ptrs_before = [t.data_ptr() for t in _tensors(trainer)]
    shared_ptrs = [t.data_ptr() for t in _tensors(shared)]
    publisher = WeightPublisher(shared)
    publisher.publish(trainer, 3)

    _assert_state_equal(shared.qnetwork_local, trainer.qnetwork_local)
    _assert_state_equal(shared.qnetwork_target, trainer.qnetwork_target)
    for name, b in trainer.named_buffers():
        assert torch.equal(shared_bufs[name], b), name
    # the trainer is not moved or shared; the shared model keeps its storage
    assert all(a is b for a, b in zip(trainer.parameters(), params_before, strict=True))
    assert [t.data_ptr() for t in _tensors(trainer)] == ptrs_before
    assert all(t.device == CPU and not t.is_shared() for t in _tensors(trainer))
    assert [t.data_ptr() for t in _tensors(shared)] == shared_ptrs
    assert all(t.is_shared() for t in _tensors(shared))
    assert int(shared.weights_version) == 3
    assert int(shared.weights_seq) == 2
    assert publisher.publishes == 1


def test_publish_seq_and_versions_over_several_publishes(spec):
    cfg = _cfg()
    shared = create_shared_model(cfg, spec=spec)
    trainer = make_train_copy(shared, cfg, spec, CPU)
    publisher = WeightPublisher(shared)
    seqs, versions = [], []
    for k, version in enumerate((10, 20, 30), start=1):
        _train(trainer, spec, steps=1, seed=k)
        publisher.publish(trainer, version)
        _assert_state_equal(shared, trainer)
        seqs.append(int(shared.weights_seq))
        versions.append(int(shared.weights_version))
    assert seqs == [2, 4, 6]
    assert versions == [10, 20, 30]
    assert publisher.publishes == 3


def test_writing_makes_seq_odd_and_restores_it_on_error(spec):
    shared = create_shared_model(_cfg(), spec=spec)
    publisher = WeightPublisher(shared)
    with publisher.writing(4):
        assert int(shared.weights_seq) == 1
        assert int(shared.weights_version) == 0  # the version moves when the write ends
    assert int(shared.weights_seq) == 2 and int(shared.weights_version) == 4
    with pytest.raises(RuntimeError, match="boom"), publisher.writing(5):
        raise RuntimeError("boom")
    assert int(shared.weights_seq) % 2 == 0  # never left odd: readers would spin forever


# --- WeightSubscriber ------------------------------------------------------------------------


def test_subscriber_syncs_only_on_a_new_version(spec):
    cfg = _cfg()
    torch.manual_seed(0)
    shared = create_shared_model(cfg, spec=spec)
    trainer = make_train_copy(shared, cfg, spec, CPU)
    publisher = WeightPublisher(shared)
    torch.manual_seed(1)
    local = build_network(spec, cfg)
    assert _state_differs(local, shared.qnetwork_local)
    sub = WeightSubscriber(shared, local)
    assert sub.version == -1

    assert sub.sync() is True
    assert sub.version == 0
    _assert_state_equal(local, shared.qnetwork_local)

    with torch.no_grad():
        for p in local.parameters():
            p.zero_()
    assert sub.sync() is False  # same version: no copy
    assert all(torch.all(p == 0) for p in local.parameters())

    _train(trainer, spec)
    publisher.publish(trainer, 7)
    assert int(shared.weights_seq) == 2  # even: a sync below would spin forever otherwise
    assert sub.latest_version() == 7
    assert sub.sync() is True
    assert sub.version == 7
    _assert_state_equal(local, trainer.qnetwork_local)
    assert _state_differs(local, trainer.qnetwork_target)  # the online net, not the target

    with torch.no_grad():
        for p in local.parameters():
            p.zero_()
    assert sub.sync(force=True) is True
    _assert_state_equal(local, trainer.qnetwork_local)
    assert sub.sync(force=True) is True
    assert sub.retries == 0
    # the local copy keeps its own storage
    assert all(a.data_ptr() != b.data_ptr()
               for a, b in zip(local.parameters(), shared.qnetwork_local.parameters(),
                               strict=True))


@pytest.mark.parametrize("force", [False, True])
def test_subscriber_waits_while_a_write_is_in_progress(spec, force):
    cfg = _cfg()
    shared = create_shared_model(cfg, spec=spec)
    trainer = make_train_copy(shared, cfg, spec, CPU)
    _train(trainer, spec)
    publisher = WeightPublisher(shared)
    local = build_network(spec, cfg)
    sub = WeightSubscriber(shared, local)
    if force:
        assert sub.sync()  # up to date at version 0: only force makes it copy again

    started = threading.Event()
    result = {}

    def reader():
        started.set()
        result["synced"] = sub.sync(force=force)

    thread = threading.Thread(target=reader, daemon=True)
    with publisher.writing(9):
        assert int(shared.weights_seq) % 2 == 1
        shared.load_state_dict(trainer.state_dict())  # half of a "write"
        thread.start()
        assert started.wait(5.0)
        thread.join(0.2)
        assert thread.is_alive(), "sync completed while a write was in progress"
        assert "synced" not in result
    thread.join(5.0)
    assert not thread.is_alive()
    assert result["synced"] is True
    assert sub.version == 9
    _assert_state_equal(local, trainer.qnetwork_local)
