import gc
import multiprocessing as mp
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from mplearn.core.replay import Batch, ReplayBuffer, _test_row, _write_rows_main

REPO = Path(__file__).resolve().parents[1]
SHM = Path("/dev/shm")


def _row_ids(batch: Batch) -> list[int]:
    return [int(o.flat[0]) for o in batch.obs]


def _assert_rows_match(batch: Batch, obs_shape, seed: int) -> None:
    """Every sampled row must equal the _test_row its obs identifies, field by field."""
    for k, i in enumerate(_row_ids(batch)):
        obs, action, reward, next_obs, term, trunc, version, eps = _test_row(i, obs_shape, seed)
        np.testing.assert_array_equal(batch.obs[k], obs)
        np.testing.assert_array_equal(batch.next_obs[k], next_obs)
        assert batch.actions[k] == action
        assert batch.rewards[k] == np.float32(reward)
        assert batch.terminated[k] == term
        assert batch.truncated[k] == trunc
        assert batch.versions[k] == version
        assert batch.epsilons[k] == np.float32(eps)


@pytest.fixture
def make_buffer():
    made = []

    def make(*args, **kwargs):
        buf = ReplayBuffer(*args, **kwargs)
        made.append(buf)
        return buf

    yield make
    for buf in made:
        buf.close()
        buf.unlink()


def test_round_trip_values_and_dtypes(make_buffer):
    buf = make_buffer(16, (3, 2))
    for i in range(10):
        buf.add(*_test_row(i, (3, 2), seed=1))
    batch = buf.sample(64, np.random.default_rng(0))

    assert batch.obs.shape == (64, 3, 2) and batch.next_obs.shape == (64, 3, 2)
    assert batch.obs.dtype == np.float32 and batch.next_obs.dtype == np.float32
    assert batch.actions.dtype == np.int64 and batch.versions.dtype == np.int64
    assert batch.rewards.dtype == np.float32 and batch.epsilons.dtype == np.float32
    assert batch.terminated.dtype == np.bool_ and batch.truncated.dtype == np.bool_
    for field in ("actions", "rewards", "terminated", "truncated", "versions", "epsilons"):
        assert getattr(batch, field).shape == (64,)
    _assert_rows_match(batch, (3, 2), seed=1)
    assert set(_row_ids(batch)) == set(range(10))


def test_terminated_and_truncated_kept_apart(make_buffer):
    buf = make_buffer(4, (1,))
    buf.add([0.0], 0, 0.0, [0.0], True, False, 0, 0.0)
    buf.add([1.0], 0, 0.0, [1.0], False, True, 0, 0.0)
    batch = buf.sample(32, np.random.default_rng(0))
    ids = np.array(_row_ids(batch))
    np.testing.assert_array_equal(batch.terminated, ids == 0)
    np.testing.assert_array_equal(batch.truncated, ids == 1)


def test_sample_returns_copies(make_buffer):
    buf = make_buffer(4, (2,))
    buf.add(*_test_row(3, (2,), seed=0))
    batch = buf.sample(1, np.random.default_rng(0))
    batch.obs[:] = -1.0
    assert _row_ids(buf.sample(1, np.random.default_rng(0))) == [3]


def test_circular_overwrite(make_buffer):
    buf = make_buffer(4, ())
    assert len(buf) == 0 and buf.count == 0
    for i in range(6):
        buf.add(*_test_row(i, (), seed=0))
    assert buf.count == 6 and len(buf) == 4 and buf.capacity == 4
    batch = buf.sample(200, np.random.default_rng(0))
    assert set(_row_ids(batch)) == {2, 3, 4, 5}
    _assert_rows_match(batch, (), seed=0)


def test_empty_sample_and_bad_inputs(make_buffer):
    buf = make_buffer(4, (2,))
    with pytest.raises(ValueError):
        buf.sample(1, np.random.default_rng(0))
    with pytest.raises(ValueError):
        buf.add([1.0, 2.0, 3.0], 0, 0.0, [1.0, 2.0, 3.0], False, False, 0, 0.0)
    for capacity in (0, -3):
        with pytest.raises(ValueError, match="capacity"):
            ReplayBuffer(capacity, (2,))


@pytest.mark.parametrize("n_rows", [50, 100])  # 100 > capacity: the child wraps around
def test_spawn_child_writes_into_shared_memory(make_buffer, n_rows):
    buf = make_buffer(64, (3, 2))
    ctx = mp.get_context("spawn")
    p = ctx.Process(target=_write_rows_main, args=(buf, n_rows, 7))
    p.start()
    p.join(timeout=60)
    assert p.exitcode == 0

    assert buf.count == n_rows
    assert len(buf) == min(n_rows, 64)
    batch = buf.sample(2000, np.random.default_rng(0))
    _assert_rows_match(batch, (3, 2), seed=7)
    assert set(_row_ids(batch)) == set(range(max(0, n_rows - 64), n_rows))


def test_getstate_has_no_arrays(make_buffer):
    buf = make_buffer(10_000, (84, 84))
    state = buf.__getstate__()
    assert not any(isinstance(v, (np.ndarray, memoryview, bytes)) for v in state.values())
    assert state["name"] == buf.name


def test_attached_copy_shares_memory_and_does_not_unlink(make_buffer):
    # What a spawn child does, in-process: rebuild from the state, re-attach by name.
    buf = make_buffer(8, (2,))
    clone = ReplayBuffer.__new__(ReplayBuffer)
    clone.__setstate__(buf.__getstate__())
    clone.add(*_test_row(5, (2,), seed=0))
    assert buf.count == 1
    assert _row_ids(buf.sample(1, np.random.default_rng(0))) == [5]
    with pytest.raises(RuntimeError, match="only the process that created"):
        clone.unlink()
    clone.close()
    assert (SHM / buf.name).exists()


def test_close_unlink_removes_segment():
    buf = ReplayBuffer(8, (2,))
    assert (SHM / buf.name).exists()
    buf.close()
    buf.close()  # idempotent
    assert (SHM / buf.name).exists()  # close only detaches
    buf.unlink()
    buf.unlink()  # idempotent
    assert not (SHM / buf.name).exists()
    with pytest.raises(ValueError, match="closed"):
        buf.sample(1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="closed"):
        buf.add(*_test_row(0, (2,), seed=0))


def test_garbage_collected_owner_leaves_no_segment():
    buf = ReplayBuffer(8, (2,))
    buf.add(*_test_row(0, (2,), seed=0))
    name = buf.name
    del buf
    gc.collect()
    assert not (SHM / name).exists()


_SCRIPT = """
import multiprocessing as mp
import sys
import numpy as np
from mplearn.core.replay import ReplayBuffer, _write_rows_main

if __name__ == "__main__":
    buf = ReplayBuffer(32, (4,))
    p = mp.get_context("spawn").Process(target=_write_rows_main, args=(buf, 40, 0))
    p.start()
    p.join()
    assert p.exitcode == 0 and buf.count == 40
    buf.sample(8, np.random.default_rng(0))
    buf.close()
    buf.unlink()
    dropped = ReplayBuffer(32, (4,))  # never closed: cleaned up by its finalizer
    kept = ReplayBuffer(32, (4,))  # still alive at exit: cleaned up at interpreter exit
    sys.stdout.write(" ".join([buf.name, dropped.name, kept.name]))
    del dropped
"""


def test_clean_interpreter_exit_without_warnings(tmp_path):
    # The resource tracker and SharedMemory.__del__ complain on stderr only at exit,
    # so the whole life cycle runs in a fresh interpreter.
    script = tmp_path / "replay_script.py"
    script.write_text(textwrap.dedent(_SCRIPT))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, str(script)],
        check=False,  # the assertions below report stderr on failure
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    names = result.stdout.split()
    assert len(names) == 3
    assert not any((SHM / name).exists() for name in names)
