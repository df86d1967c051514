"""Another process that holds the shared model from the start, as an actor does, and reads a
value when asked: what a process started before training sees of the learner's epsilon.

Spawned (the house rule); a daemon that also leaves when its parent is gone.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os


def read(shared, spec):
    """``spec``: a dotted attribute path of ``shared``, an ``mp.Value`` or a tensor."""
    if isinstance(spec, str):
        value = shared
        for part in spec.split("."):
            value = getattr(value, part, None)
        return None if value is None else float(value)
    if hasattr(spec, "item"):
        return float(spec.item())
    return float(spec.value)


def probe_main(shared, spec, conn, parent: int) -> None:
    import torch

    torch.set_num_threads(1)
    conn.send("ready")
    while os.getppid() == parent:
        if not conn.poll(1.0):
            continue
        if conn.recv() is None:
            return
        try:
            conn.send(read(shared, spec))
        except Exception as e:  # a value this process cannot read: said, not raised here
            conn.send(f"{type(e).__name__}: {e}")


class Probe:
    def __init__(self, shared, spec, timeout: float = 120.0):
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.timeout = timeout
        self.process = ctx.Process(target=probe_main, args=(shared, spec, child, os.getpid()),
                                   daemon=True)
        self.process.start()
        child.close()
        if not self.conn.poll(timeout) or self.conn.recv() != "ready":
            self.close()
            raise RuntimeError("the probe process did not start")

    def value(self):
        self.conn.send(True)
        if not self.conn.poll(self.timeout):
            raise RuntimeError("the probe process did not answer")
        return self.conn.recv()

    def close(self) -> None:
        if self.process.is_alive():
            with contextlib.suppress(OSError):  # it may be leaving already
                self.conn.send(None)
            self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()
