"""Switches for the learning issues: one boolean field per issue, all True (fixed) by default.

Each field is read at exactly one site in the package, marked ``# FIX(<name>)``, where the
correct code and the broken code stand side by side. ``grep -n "FIX(" mplearn/`` is the index
of bugs; ``tests/test_fixes.py`` keeps it so.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class Fixes:
    """Which learning issues are fixed. ``Fixes()`` is the correct system.

    The catalogue (``mplearn.catalogue``, ``python -m mplearn issues``) explains each field.
    """

    # --- the review's issues ---
    optimizer_binding: bool = True  # the train copy gets its own optimizer
    target_sync: bool = True  # publish copies both networks, parameters and buffers
    train_mode: bool = True  # train_step puts both networks in train mode
    shared_epsilon: bool = True  # epsilon travels through shared memory, not an attribute
    grad_clip: bool = True  # clip_grad_norm_ before the optimizer step
    batch_to_device: bool = True  # the batch becomes tensors of the model's device and dtype
    step_counter: bool = True  # the learner's training_step counter is incremented
    single_target_update: bool = True  # one target update per schedule, not two
    initial_state: bool = True  # the actor pulls the shared weights before its first step
    # --- beyond the review ---
    replay_by_name: bool = True  # the replay re-attaches by name under spawn
    versioned_publish: bool = True  # the actor keeps only consistent (seqlock) copies
    write_before_publish: bool = True  # a replay row is written before it is counted
    truncation_bootstrap: bool = True  # truncation is not termination: bootstrap through it
    single_thread: bool = True  # workers run torch.set_num_threads(1)
    worker_seeding: bool = True  # every worker and agent draws from its own seed
    throttle: bool = True  # the update-to-data ratio is enforced

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def all(cls) -> Fixes:
        return cls()

    @classmethod
    def none(cls) -> Fixes:
        return cls(**{name: False for name in cls.names()})

    def without(self, *names: str) -> Fixes:
        """A copy with the named issues broken."""
        unknown = [n for n in names if n not in self.names()]
        if unknown:
            raise ValueError(f"fixes: unknown issue name(s) {unknown}; known: {list(self.names())}")
        return dataclasses.replace(self, **{n: False for n in names})

    def broken(self) -> tuple[str, ...]:
        return tuple(n for n in self.names() if not getattr(self, n))

    def to_dict(self) -> dict[str, bool]:
        return dataclasses.asdict(self)
