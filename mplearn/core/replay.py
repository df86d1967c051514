"""Replay buffer in shared memory: one writer process (actor), one sampler process (learner)."""

from __future__ import annotations

import contextlib
import math
import multiprocessing as mp
import os
import weakref
from dataclasses import dataclass
from multiprocessing import shared_memory

import numpy as np

from mplearn.core.fixes import Fixes

_ALIGN = 64  # cache-line alignment, so no field starts mid-line or misaligned


@dataclass(frozen=True)
class Batch:
    obs: np.ndarray  # [B, *obs_shape] float32 (or the configured replay_obs_dtype)
    actions: np.ndarray  # [B] int64
    rewards: np.ndarray  # [B] float32
    next_obs: np.ndarray  # [B, *obs_shape] like obs
    terminated: np.ndarray  # [B] bool
    truncated: np.ndarray  # [B] bool
    versions: np.ndarray  # [B] int64, weight version the actor acted with
    epsilons: np.ndarray  # [B] float32, epsilon the actor used
    steps: np.ndarray  # [B] int64, rewards summed in `rewards` (n-step); bootstrap with gamma^steps


def _fields(obs_shape: tuple[int, ...], obs_dtype: str = "float32"
            ) -> list[tuple[str, np.dtype, tuple[int, ...]]]:
    """(name, dtype, per-row shape) of every stored field, in Batch order."""
    return [
        ("obs", np.dtype(obs_dtype), obs_shape),
        ("actions", np.dtype(np.int64), ()),
        ("rewards", np.dtype(np.float32), ()),
        ("next_obs", np.dtype(obs_dtype), obs_shape),
        ("terminated", np.dtype(np.bool_), ()),
        ("truncated", np.dtype(np.bool_), ()),
        ("versions", np.dtype(np.int64), ()),
        ("epsilons", np.dtype(np.float32), ()),
        ("steps", np.dtype(np.int64), ()),
    ]


def _layout(capacity: int, obs_shape: tuple[int, ...], obs_dtype: str = "float32"
            ) -> tuple[dict[str, int], int]:
    """Byte offset of each field inside the single segment, and the total size."""
    offsets, size = {}, 0
    for name, dtype, shape in _fields(obs_shape, obs_dtype):
        size = -(-size // _ALIGN) * _ALIGN
        offsets[name] = size
        size += capacity * math.prod(shape) * dtype.itemsize
    return offsets, max(size, 1)


def check_shared_memory(buffers: int, rows: int, obs_shape: tuple[int, ...],
                        obs_dtype: str = "float32", root: str = "/dev/shm") -> None:
    """ValueError naming buffer_size when ``buffers`` buffers of which ``rows`` rows get written
    cannot fit in ``root``. Creating a segment larger than the space left succeeds (its pages
    come on first write); the writer dies of SIGBUS later, mid-run."""
    if not os.path.isdir(root):
        return  # no /dev/shm (not Linux): shared memory lives elsewhere
    st = os.statvfs(root)
    free, need = st.f_bavail * st.f_frsize, buffers * _layout(rows, obs_shape, obs_dtype)[1]
    if need > free:
        raise ValueError(f"buffer_size: {buffers} replay buffer(s) of {rows} rows need "
                         f"{need / 2**20:.0f} MiB of shared memory, {root} has "
                         f"{free / 2**20:.0f} MiB free (lower buffer_size or enlarge {root})")


def _unlink_segment(shm: shared_memory.SharedMemory) -> None:
    # Takes the SharedMemory, not the buffer, so the finalizer does not keep the buffer alive.
    with contextlib.suppress(FileNotFoundError):
        shm.unlink()


class ReplayBuffer:
    """Fixed-capacity circular buffer; all fields live in one SharedMemory segment.

    Pass it to a spawn child as a Process argument: only the segment name and the shared
    counter are pickled, and the child re-attaches to the same memory, by name: so only until
    the owner unlinks the name (System does once every worker has attached; the memory stays
    until the last process using it closes it or exits).

    Accepted limitations, traded for an actor that never waits on a lock: once full, a
    sample can race with the writer overwriting the same slot and copy a half-written
    row (rare when capacity is much larger than the rows added during one sample()), and
    publish-after-write relies on stores becoming visible in order, as on x86.
    """

    def __init__(self, capacity: int, obs_shape: tuple[int, ...], ctx=None,
                 fixes: Fixes | None = None, obs_dtype: str = "float32"):
        if capacity <= 0:
            raise ValueError(f"capacity must be > 0, got {capacity}")
        ctx = ctx if ctx is not None else mp.get_context("spawn")
        self._capacity = int(capacity)
        self._obs_shape = tuple(int(d) for d in obs_shape)
        self._obs_dtype = str(np.dtype(obs_dtype))
        self._count = ctx.Value("q", 0, lock=False)  # total rows ever written
        self._fixes = fixes or Fixes()
        _, size = _layout(self._capacity, self._obs_shape, self._obs_dtype)
        self._attach(shared_memory.SharedMemory(create=True, size=size))
        self._owner = True
        self._finalizer = weakref.finalize(self, _unlink_segment, self._shm)

    def _attach(self, shm: shared_memory.SharedMemory) -> None:
        offsets, _ = _layout(self._capacity, self._obs_shape, self._obs_dtype)
        self._shm = shm
        self._arrays = {
            name: np.ndarray((self._capacity, *shape), dtype, shm.buf, offsets[name])
            for name, dtype, shape in _fields(self._obs_shape, self._obs_dtype)
        }

    def __getstate__(self) -> dict:
        state = {"name": self._shm.name, "capacity": self._capacity,
                 "obs_shape": self._obs_shape, "obs_dtype": self._obs_dtype,
                 "count": self._count, "fixes": self._fixes}
        # FIX(replay_by_name): pickle the segment's name, never the arrays: spawn would
        # pickle them by value and the child would write into a private copy.
        if not self._fixes.replay_by_name:
            state["arrays"] = self._arrays  # the naive buffer: arrays by value, counter shared
        if "arrays" not in state and self._owner and not self._finalizer.alive:
            # By name, after System unlinked it: a process could not attach to it any more.
            raise RuntimeError("ReplayBuffer: its name is unlinked, no other process can attach "
                               "to it now (System unlinks it once every worker has attached)")
        return state

    def __setstate__(self, state: dict) -> None:
        self._capacity = state["capacity"]
        self._obs_shape = state["obs_shape"]
        self._obs_dtype = state["obs_dtype"]
        self._count = state["count"]
        self._fixes = state["fixes"]
        if "arrays" in state:  # pickled by value: a private copy that nobody else sees
            self._shm, self._arrays = None, state["arrays"]
            self._owner, self._finalizer = False, None
            return
        # Attaching registers the name with the resource tracker again. Spawn children
        # share the parent's tracker, which keeps a set of names, so this is a no-op;
        # unregistering here would drop the owner's entry and make its unlink() fail
        # inside the tracker.
        self._attach(shared_memory.SharedMemory(name=state["name"]))
        self._owner = False
        self._finalizer = None

    # Rows this process sampled that were not written yet (the write_before_publish race):
    # process-local, read by the learner's records.
    unwritten_sampled = 0

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def obs_shape(self) -> tuple[int, ...]:
        return self._obs_shape

    @property
    def name(self) -> str:
        return self._shm.name

    @property
    def count(self) -> int:
        return self._count.value

    def __len__(self) -> int:
        return min(self.count, self._capacity)

    def _views(self) -> dict[str, np.ndarray]:
        if self._arrays is None:
            raise ValueError("ReplayBuffer is closed")
        return self._arrays

    def add(self, obs, action, reward, next_obs, terminated, truncated, version, epsilon,
            steps: int = 1) -> None:
        """Write one transition. Only one process may call this."""
        views = self._views()
        if np.shape(obs) != self._obs_shape or np.shape(next_obs) != self._obs_shape:
            raise ValueError(f"obs and next_obs must have shape {self._obs_shape}")
        n = self._count.value
        i = n % self._capacity
        # FIX(write_before_publish): publish the row (bump the counter) only after writing it:
        # a sampler trusts the counter and must never read a row that is not written yet.
        if not self._fixes.write_before_publish:
            self._count.value = n + 1  # the race: counted before it is written
        views["obs"][i] = obs
        views["actions"][i] = action
        views["rewards"][i] = reward
        views["next_obs"][i] = next_obs
        views["terminated"][i] = terminated
        views["truncated"][i] = truncated
        views["versions"][i] = version
        views["epsilons"][i] = epsilon
        views["steps"][i] = steps
        self._count.value = n + 1  # (a no-op repeat when counted before writing)

    def sample(self, batch_size: int, rng: np.random.Generator) -> Batch:
        """Uniform sample with replacement over the rows written so far (copies)."""
        views = self._views()
        n = min(self._count.value, self._capacity)  # read once: later rows are ignored
        if n == 0:
            raise ValueError("cannot sample from an empty ReplayBuffer")
        idx = rng.integers(0, n, size=batch_size)
        # Fancy indexing copies, so the batch stays valid after close() or overwrite.
        batch = Batch(**{name: arr[idx] for name, arr in views.items()})
        # `steps` is written last and is >= 1 in every written row: a 0 is a row the counter
        # admitted before it was written (exact until the ring wraps, a lower bound after).
        self.unwritten_sampled += int(np.count_nonzero(batch.steps == 0))
        return batch

    def close(self) -> None:
        """Detach this process from the segment; idempotent. Does not destroy it."""
        # numpy views hold no buffer export, so the mapping would close under them and a
        # later access would segfault: drop them first. Sampled batches are copies.
        self._arrays = None
        if self._shm is not None:
            self._shm.close()

    def unlink(self) -> None:
        """Remove the segment's name (owner only; idempotent). Processes that have it open
        keep using it; the memory is freed when the last of them closes it or exits."""
        if not self._owner:
            raise RuntimeError("only the process that created the ReplayBuffer may unlink it")
        self._finalizer()  # a finalizer runs at most once, which makes this idempotent


def _test_row(i: int, obs_shape: tuple[int, ...], seed: int) -> tuple:
    """Deterministic transition number i, shared by _write_rows_main and the tests."""
    obs = np.full(obs_shape, i, dtype=np.float64)
    return (obs, i % 7, float(i) * 0.5 + seed, obs + 1, i % 3 == 0, i % 5 == 0, i // 4, i / 1000)


def _write_rows_main(buffer: ReplayBuffer, n_rows: int, seed: int) -> None:
    """Spawn target for tests: write rows 0..n_rows-1 given by _test_row."""
    try:
        for i in range(n_rows):
            buffer.add(*_test_row(i, buffer.obs_shape, seed))
    finally:
        buffer.close()
