import multiprocessing as mp
import queue

import numpy as np
import pytest
import torch

from mplearn.core.actor import NStepWindow
from mplearn.core.channels import AgentChannel
from mplearn.core.config import Config, InjectedFault
from mplearn.core.learner import LEARNER, Learner, resolve_device, resolve_path
from mplearn.core.replay import ReplayBuffer
from mplearn.core.weights import create_shared_model
from mplearn.envs import env_spec

SMALL = dict(
    env_id="CartPole-v1", device="cpu", hidden_dim=16, embedding_dim=8, num_tau_samples=4,
    num_tau_prime_samples=4, num_quantile_samples=4, batch_size=8, buffer_size=64,
    learning_starts=0, n_step=1, learning_rate=1e-2, log_interval=1000,
    target_update_period=1000, publish_interval=1000,
)
PATHS = ["in_place", "copy"]
RECORD_KEYS = {"update", "loss", "grad_norm", "mean_q", "clip_fraction", "epsilon", "publishes",
               "target_updates"}


@pytest.fixture(scope="module")
def spec():
    return env_spec("CartPole-v1")


@pytest.fixture
def make_learner(spec):
    """make_learner(**config changes) -> Learner on a channel whose buffer holds 64 random
    CartPole-shaped rows and whose env_steps says 64."""
    ctx = mp.get_context("spawn")
    buffers = []

    def make(seed: int = 0, epsilon: float | None = None, **changes) -> Learner:
        cfg = Config(**{**SMALL, **changes})
        torch.manual_seed(seed)
        buffer = ReplayBuffer(cfg.buffer_size, spec.obs_shape, ctx)
        buffers.append(buffer)
        rng = np.random.default_rng(seed)
        for i in range(64):
            obs = rng.normal(size=spec.obs_shape)
            buffer.add(obs, int(rng.integers(spec.n_actions)), float(rng.normal()),
                       obs + 0.1 * rng.normal(size=spec.obs_shape), i % 10 == 9, i % 13 == 12,
                       0, 1.0, 1 + i % 3)
        channel = AgentChannel(
            0, create_shared_model(cfg, spec=spec), buffer,
            epsilon=ctx.Value("d", cfg.epsilon_start if epsilon is None else epsilon,
                              lock=False),
            env_steps=ctx.Value("q", 64, lock=False),
            updates=ctx.Value("q", 0, lock=False),
        )
        return Learner(cfg, spec, channel, seed)

    yield make
    for buffer in buffers:
        buffer.close()
        buffer.unlink()


def _snapshot(net: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in net.parameters()]


def _equal(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def _assert_state_equal(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for name in sa:
        assert torch.equal(sa[name], sb[name]), name


def _drain(records: queue.SimpleQueue) -> list:
    out = []
    while not records.empty():
        out.append(records.get_nowait())
    return out


# --- training and publishing -----------------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
def test_updates_change_the_local_network_and_count(make_learner, path):
    learner = make_learner(learner_path=path)
    assert learner.path == path
    before = _snapshot(learner.model.qnetwork_local)
    target_before = _snapshot(learner.model.qnetwork_target)
    for k in range(1, 6):
        learner.update()
        assert learner.updates == k
        assert learner.channel.updates.value == k
    after = _snapshot(learner.model.qnetwork_local)
    assert all(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert all(torch.isfinite(p).all() for p in after)
    assert _equal(target_before, _snapshot(learner.model.qnetwork_target))  # period 1000


def test_in_place_trains_the_shared_model(make_learner):
    learner = make_learner(learner_path="in_place")
    shared = learner.channel.model
    assert learner.model is shared
    for k in range(1, 5):
        learner.update()
        assert int(shared.weights_version) == k
        assert int(shared.weights_seq) == 2 * k  # each optimizer step is one seqlock write
        assert learner.publisher.publishes == k


def test_copy_publishes_every_publish_interval(make_learner):
    learner = make_learner(learner_path="copy", publish_interval=3)
    shared, trainer = learner.channel.model, learner.model
    assert trainer is not shared
    assert all(not p.is_shared() for p in trainer.parameters())
    published = {k: v.clone() for k, v in shared.state_dict().items()}
    for k in range(1, 8):
        learner.update()
        if k % 3 == 0:
            _assert_state_equal(shared, trainer)
            assert int(shared.weights_version) == k
            published = {n: v.clone() for n, v in shared.state_dict().items()}
        else:
            state = shared.state_dict()
            assert all(torch.equal(state[n], published[n]) for n in state)
            assert not torch.equal(  # the trainer moved on without publishing
                state["qnetwork_local.psi.0.weight"],
                trainer.state_dict()["qnetwork_local.psi.0.weight"])
            assert int(shared.weights_version) == k // 3 * 3
    assert learner.publisher.publishes == 2
    assert int(shared.weights_seq) == 4


# --- target network --------------------------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
def test_target_updates_once_per_period_hard_copy(make_learner, path):
    learner = make_learner(learner_path=path, target_update_period=3, tau=1.0)
    model = learner.model
    changed_at = []
    for k in range(1, 11):
        target_before = _snapshot(model.qnetwork_target)
        learner.update()
        if not _equal(target_before, _snapshot(model.qnetwork_target)):
            changed_at.append(k)
        if k % 3 == 0:
            _assert_state_equal(model.qnetwork_target, model.qnetwork_local)
    assert changed_at == [3, 6, 9]
    assert learner.target_updates == 3


@pytest.mark.parametrize("path", PATHS)
def test_soft_target_update_moves_halfway(make_learner, path):
    learner = make_learner(learner_path=path, target_update_period=2, tau=0.5)
    model = learner.model
    learner.update()
    # Make the target differ from the local net, so "halfway" is not trivially "equal".
    with torch.no_grad():
        for p in model.qnetwork_target.parameters():
            p.mul_(-1.0).add_(0.25)
    target_before = _snapshot(model.qnetwork_target)
    learner.update()  # update 2: on the period
    local_after = _snapshot(model.qnetwork_local)
    target_after = _snapshot(model.qnetwork_target)
    for t0, w, t1 in zip(target_before, local_after, target_after, strict=True):
        torch.testing.assert_close(t1, 0.5 * t0 + 0.5 * w)
        assert not torch.allclose(t1, w) and not torch.allclose(t1, t0)
    assert learner.target_updates == 1


# --- epsilon, ratio, records -----------------------------------------------------------------


def test_epsilon_published_on_schedule(make_learner):
    learner = make_learner(epsilon=-1.0, epsilon_start=1.0, epsilon_end=0.1,
                           epsilon_decay_updates=10, epsilon_decay_freq=2)
    eps = learner.channel.epsilon
    seen = []
    for _ in range(13):
        learner.update()
        seen.append(eps.value)
    # published after updates 2, 4, ... only; the sentinel -1 stays until the first one
    expected = [-1.0, 0.82, 0.82, 0.64, 0.64, 0.46, 0.46, 0.28, 0.28, 0.1, 0.1, 0.1, 0.1]
    assert seen == pytest.approx(expected, abs=1e-12)


def test_train_owed_follows_the_update_to_data_ratio(make_learner):
    learner = make_learner(updates_per_step=0.5, learning_starts=10)
    env_steps = learner.channel.env_steps
    records = queue.SimpleQueue()
    env_steps.value = 9
    assert learner.train_owed(records) == 0 and learner.updates == 0
    env_steps.value = 31  # floor(0.5 * 21) = 10
    assert learner.updates_owed() == 10
    assert learner.train_owed(records) == 10
    assert learner.updates == 10 and learner.channel.updates.value == 10
    assert learner.train_owed(records) == 0 and learner.updates == 10
    env_steps.value = 35  # floor(12.5) = 12: two more
    assert learner.train_owed(records) == 2
    assert learner.train_owed(records) == 0
    assert learner.updates == 12


@pytest.mark.parametrize("path", PATHS)
def test_records_every_log_interval_and_finish_flushes(make_learner, path):
    learner = make_learner(learner_path=path, log_interval=5, publish_interval=3,
                           target_update_period=4, max_grad_norm=float("inf"))
    learner.channel.env_steps.value = 12  # ratio 1, learning_starts 0: 12 updates owed
    stats = []
    train_step = learner.train_step

    def spy(batch):
        out = train_step(batch)
        stats.append(out)
        return out

    learner.train_step = spy
    records = queue.SimpleQueue()
    assert learner.train_owed(records) == 12
    got = _drain(records)
    assert [r[:2] for r in got] == [(LEARNER, 0), (LEARNER, 0)]
    assert [r[2]["update"] for r in got] == [5, 10]
    learner.finish(records)
    got += _drain(records)
    assert [r[2]["update"] for r in got] == [5, 10, 12]
    learner.finish(records)  # nothing pending: no empty record
    assert records.empty()

    for rec in got:
        assert set(rec[2]) >= RECORD_KEYS
        assert rec[2]["clip_fraction"] == 0.0
    # default schedule 1.0 -> 0.01 over 5000 updates: 1 - 0.99 * u / 5000
    assert [r[2]["epsilon"] for r in got] == pytest.approx([0.99901, 0.99802, 0.997624],
                                                           abs=1e-12)
    stats = np.array(stats)
    for rec, (lo, hi) in zip(got, [(0, 5), (5, 10), (10, 12)], strict=True):
        loss, grad_norm, mean_q = stats[lo:hi].mean(axis=0)
        assert rec[2]["loss"] == pytest.approx(loss, rel=1e-9)
        assert rec[2]["grad_norm"] == pytest.approx(grad_norm, rel=1e-9)
        assert rec[2]["mean_q"] == pytest.approx(mean_q, rel=1e-9)
    assert [r[2]["target_updates"] for r in got] == [1, 2, 3]
    publishes = [5, 10, 12] if path == "in_place" else [1, 3, 4]
    assert [r[2]["publishes"] for r in got] == publishes


def test_finish_publishes_the_last_updates_copy_path(make_learner):
    learner = make_learner(learner_path="copy", publish_interval=3)
    records = queue.SimpleQueue()
    for _ in range(4):
        learner.update()
    shared = learner.channel.model
    assert int(shared.weights_version) == 3
    learner.finish(records)
    _assert_state_equal(shared, learner.model)
    assert int(shared.weights_version) == 4
    assert learner.publisher.publishes == 2


def test_finish_publishes_before_the_first_interval_copy_path(make_learner):
    learner = make_learner(learner_path="copy", publish_interval=10)
    for _ in range(4):
        learner.update()
    learner.finish(queue.SimpleQueue())
    shared = learner.channel.model
    assert int(shared.weights_version) == 4
    _assert_state_equal(shared, learner.model)


def test_finish_without_updates_publishes_nothing(make_learner):
    learner = make_learner(learner_path="copy")
    records = queue.SimpleQueue()
    learner.finish(records)
    assert records.empty()
    assert learner.publisher.publishes == 0 and int(learner.channel.model.weights_seq) == 0


# --- gradient clipping -----------------------------------------------------------------------


def test_grad_norm_is_reported_before_clipping(make_learner):
    learner = make_learner(max_grad_norm=1e-6, log_interval=4)
    optimizer = learner.model.optimizer
    step = optimizer.step
    norms_at_step = []

    def spy_step(*args, **kwargs):
        grads = [p.grad for p in learner.model.qnetwork_local.parameters() if p.grad is not None]
        norms_at_step.append(float(torch.linalg.vector_norm(
            torch.stack([torch.linalg.vector_norm(g) for g in grads]))))
        return step(*args, **kwargs)

    optimizer.step = spy_step
    records = queue.SimpleQueue()
    for _ in range(4):
        learner.update()
        learner.maybe_record(records)
    (rec,) = _drain(records)
    assert rec[2]["clip_fraction"] == 1.0
    assert rec[2]["grad_norm"] > 1e-3  # the pre-clip norm, far above the threshold
    assert len(norms_at_step) == 4
    assert max(norms_at_step) <= 1e-6 * 1.01  # ...while the optimizer saw clipped gradients


def test_no_clipping_with_infinite_threshold(make_learner):
    learner = make_learner(max_grad_norm=float("inf"), log_interval=3)
    records = queue.SimpleQueue()
    for _ in range(3):
        learner.update()
        learner.maybe_record(records)
    (rec,) = _drain(records)
    assert rec[2]["clip_fraction"] == 0.0 and rec[2]["grad_norm"] > 0


# --- n-step window ---------------------------------------------------------------------------


def _run_window(n, gamma, rewards, terminated_at_end):
    window = NStepWindow(n=n, gamma=gamma)
    rows, emitted_at = [], []
    last = len(rewards) - 1
    for t, r in enumerate(rewards):
        for row in window.push(f"s{t}", t, r, f"s{t + 1}", terminated_at_end and t == last,
                               not terminated_at_end and t == last, 100 + t, t / 10):
            rows.append(row)
            emitted_at.append(t)
    return rows, emitted_at, window


def test_n_step_window_truncated_episode():
    rows, emitted_at, window = _run_window(3, 0.5, [1.0, 2.0, 4.0, 8.0, 16.0], False)
    assert [r[0] for r in rows] == ["s0", "s1", "s2", "s3", "s4"]
    assert [r[1] for r in rows] == [0, 1, 2, 3, 4]  # actions
    # 1 + 2/2 + 4/4, 2 + 4/2 + 8/4, 4 + 8/2 + 16/4, 8 + 16/2, 16
    assert [r[2] for r in rows] == [3.0, 6.0, 12.0, 16.0, 16.0]
    assert [r[3] for r in rows] == ["s3", "s4", "s5", "s5", "s5"]  # bootstrap states
    assert [r[8] for r in rows] == [3, 3, 3, 2, 1]  # steps: gamma^steps at bootstrap
    assert [r[4] for r in rows] == [False] * 5
    assert [r[5] for r in rows] == [False, False, True, True, True]
    assert [r[6] for r in rows] == [100, 101, 102, 103, 104]  # each row's own version
    assert [r[7] for r in rows] == [0.0, 0.1, 0.2, 0.3, 0.4]
    assert emitted_at == [2, 3, 4, 4, 4]
    assert len(window.pending) == 0


def test_n_step_window_terminated_episode_then_next_episode():
    rows, _, window = _run_window(3, 0.5, [1.0, 2.0, 4.0, 8.0], True)
    assert [r[2] for r in rows] == [3.0, 6.0, 8.0, 8.0]  # 4 + 8/2, then 8
    assert [r[8] for r in rows] == [3, 3, 2, 1]
    assert [r[4] for r in rows] == [False, True, True, True]  # s1 bootstraps from s4: terminal
    assert [r[5] for r in rows] == [False] * 4
    # the next episode starts from an empty window: no reward leaks across the boundary
    nxt = list(window.push("x0", 0, 5.0, "x1", True, False, 7, 0.0))
    assert len(nxt) == 1 and nxt[0][2] == 5.0 and nxt[0][8] == 1


def test_n_step_window_short_episode_and_n_one():
    rows, _, _ = _run_window(3, 0.5, [1.0, 2.0], True)
    assert [r[2] for r in rows] == [2.0, 2.0] and [r[8] for r in rows] == [2, 1]
    assert [r[4] for r in rows] == [True, True]
    rows, emitted_at, _ = _run_window(1, 0.9, [1.0, 2.0, 3.0], False)
    assert [r[2] for r in rows] == [1.0, 2.0, 3.0] and [r[8] for r in rows] == [1, 1, 1]
    assert emitted_at == [0, 1, 2]


# --- devices and faults ----------------------------------------------------------------------


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present")
def test_resolve_device_cuda_absent():
    with pytest.raises(ValueError, match="device"):
        resolve_device("cuda")


@pytest.mark.skipif(torch.cuda.is_available() or torch.backends.mps.is_available(),
                    reason="an accelerator is present")
def test_resolve_device_auto_is_cpu_here():
    assert resolve_device("auto") == torch.device("cpu")


def test_resolve_path():
    cpu = torch.device("cpu")
    assert resolve_device("cpu") == cpu
    assert resolve_path("auto", cpu) == "in_place"
    assert resolve_path("auto", torch.device("cuda")) == "copy"
    assert resolve_path("copy", cpu) == "copy"
    assert resolve_path("in_place", torch.device("cuda")) == "in_place"


def test_injected_fault_at_update_three(make_learner):
    learner = make_learner(inject_fault="learner@3")
    for _ in range(3):
        learner.update()
    with pytest.raises(InjectedFault, match="update 3"):
        learner.update()
    assert learner.updates == 3 and learner.channel.updates.value == 3


def test_actor_fault_does_not_stop_the_learner(make_learner):
    learner = make_learner(inject_fault="actor@0")
    for _ in range(3):
        learner.update()
    assert learner.updates == 3
