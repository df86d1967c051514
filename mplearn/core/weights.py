"""Shared models and versioned weight transfer between the learner and the actor.

``create_shared_model`` builds the plan's model wrapper (online net, target net, optimizer) and
places its tensors in shared memory. Two counters travel with it, also in shared memory:

* ``weights_seq``: a seqlock. The writer makes it odd before writing and even after; a reader
  copies only when it saw the same even value before and after its copy, so it never keeps a
  mix of two versions (``load_state_dict`` alone copies tensor by tensor, with no lock).
* ``weights_version``: the learner's update count when the weights were written.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager

import torch
from torch import nn

from mplearn.core.config import Config
from mplearn.core.fixes import Fixes
from mplearn.core.networks import IQNNetwork
from mplearn.envs import EnvSpec, env_spec


def build_network(spec: EnvSpec, config: Config) -> IQNNetwork:
    return IQNNetwork(
        obs_dim=math.prod(spec.obs_shape),
        n_actions=spec.n_actions,
        hidden_dim=config.hidden_dim,
        embedding_dim=config.embedding_dim,
        dueling=config.dueling,
        noisy=config.noisy,
        dropout=config.dropout,
    )


def make_optimizer(net: nn.Module, config: Config) -> torch.optim.Optimizer:
    # Fused Adam: one kernel for all parameters instead of ~25 ops per parameter tensor (the
    # CPU default is the per-tensor loop); ~4x faster a step here. Its arithmetic differs from
    # the loop's in the last bits only (~1e-7 after 200 steps).
    params = list(net.parameters())
    fused = bool(params) and all(p.device.type in ("cpu", "cuda") for p in params)
    return torch.optim.Adam(params, lr=config.learning_rate, eps=config.adam_eps,
                            fused=fused or None)


class IQNAgent(nn.Module):
    """The plan's model wrapper: ``qnetwork_local``, ``qnetwork_target`` and ``optimizer``."""

    def __init__(self, spec: EnvSpec, config: Config):
        super().__init__()
        self.qnetwork_local = build_network(spec, config)
        self.qnetwork_target = build_network(spec, config)
        self.qnetwork_target.load_state_dict(self.qnetwork_local.state_dict())
        self.qnetwork_target.requires_grad_(False)  # only ever moved by target updates
        self.optimizer = make_optimizer(self.qnetwork_local, config)


def create_shared_model(
    config: Config, source_model: nn.Module | None = None, spec: EnvSpec | None = None
) -> IQNAgent:
    """Build an agent, optionally copy a source's weights into it, and share its memory.

    Copying weights after the optimizer exists is harmless: Adam creates its state lazily at the
    first ``step()``, and ``load_state_dict`` copies in place into the parameters the optimizer
    already holds (the stale-optimizer notebook measures this).
    """
    model = IQNAgent(spec or env_spec(config.env_id, config.env_kwargs), config)
    if source_model is not None:
        model.load_state_dict(source_model.state_dict())
    model.share_memory()
    model.weights_seq = torch.zeros((), dtype=torch.int64).share_memory_()
    model.weights_version = torch.zeros((), dtype=torch.int64).share_memory_()
    return model


def make_train_copy(shared_model: IQNAgent, config: Config, spec: EnvSpec,
                    device: torch.device) -> IQNAgent:
    """A private copy of the shared model on ``device``, for the learner to train and publish."""
    trainer = IQNAgent(spec, config)
    trainer.load_state_dict(shared_model.state_dict())
    trainer.to(device)
    # FIX(optimizer_binding): the copy needs an optimizer bound to ITS parameters.
    if config.fixes.optimizer_binding:
        trainer.optimizer = make_optimizer(trainer.qnetwork_local, config)
    else:  # keeps the shared model's: it steps parameters whose .grad is None, so nothing moves
        trainer.optimizer = shared_model.optimizer
    return trainer


class WeightPublisher:
    """The learner's side: writes weights into the shared model under the seqlock."""

    def __init__(self, shared_model: IQNAgent, fixes: Fixes | None = None):
        self.fixes = fixes or Fixes()
        self._shared_model = shared_model
        # state_dict() tensors are views of the shared storage: copying into them publishes.
        self._shared = shared_model.state_dict()
        self._seq = shared_model.weights_seq
        self._version = shared_model.weights_version
        self.publishes = 0

    @contextmanager
    def writing(self, version: int):
        """Bracket a write: readers that overlap it retry."""
        self._seq.add_(1)  # odd: a write is in progress
        try:
            yield
        finally:
            self._version.fill_(version)
            self._seq.add_(1)  # even again: consistent
            self.publishes += 1

    @torch.no_grad()
    def publish(self, trainer: IQNAgent, version: int) -> None:
        """Copy the trainer's whole state (both networks, parameters and buffers) into shared
        memory, device to host, without moving the trainer."""
        with self.writing(version):
            # FIX(target_sync): copy the whole state (both networks, parameters and buffers).
            if self.fixes.target_sync:
                for name, tensor in trainer.state_dict().items():
                    self._shared[name].copy_(tensor)
            else:  # the local network's parameters only: the shared target goes stale
                for shared, trained in zip(self._shared_model.qnetwork_local.parameters(),
                                           trainer.qnetwork_local.parameters(), strict=True):
                    shared.copy_(trained)


def _backoff(waits: int) -> float:
    """Seconds a reader sleeps while a write is in progress: a yield for as long as a write
    lasts (an optimizer step), then longer and longer (5 ms at most), so that a writer that is
    stopped or hung does not cost the reader a whole core."""
    return 0.0 if waits < 64 else min(0.005, 1e-5 * 2 ** min(waits - 64, 10))


class WeightSubscriber:
    """The actor's side: keeps a local copy of the shared online network."""

    def __init__(self, shared_model: IQNAgent, local_net: nn.Module, fixes: Fixes | None = None):
        self.fixes = fixes or Fixes()
        self._source = shared_model.qnetwork_local.state_dict()
        self._local = local_net.state_dict()
        self._seq = shared_model.weights_seq
        self._version = shared_model.weights_version
        self.version = -1  # the version of the local copy; -1: never pulled
        self.copies = 0  # copies made from the shared model
        self.checked = 0  # copies validated against the seqlock (the monitor watches this)
        self.retries = 0  # copies discarded because a write overlapped them
        self.torn_kept = 0  # copies a write overlapped that were kept (unvalidated copies)

    def latest_version(self) -> int:
        return int(self._version)

    @torch.no_grad()
    def sync(self, force: bool = False) -> bool:
        """Copy the shared weights if their version changed (always when ``force``).

        Returns whether a copy was made. Spins while a write is in progress.
        """
        if not force and self.latest_version() == self.version:
            return False
        # FIX(versioned_publish): keep only a copy that no write overlapped (seqlock).
        if self.fixes.versioned_publish:
            self.version = self._copy_consistent()
        else:  # a plain load_state_dict: a write in progress leaves a mix of two versions
            self.version = self._copy_unvalidated()
        self.copies += 1
        return True

    def _copy_once(self) -> int:
        for name, tensor in self._source.items():
            self._local[name].copy_(tensor)
        return int(self._version)

    def _copy_unvalidated(self) -> int:
        """One plain copy, kept whatever happened; the seqlock is only read to count copies
        that a write overlapped (the proof that torn copies were acted on)."""
        before = int(self._seq)
        version = self._copy_once()
        self.torn_kept += before % 2 == 1 or int(self._seq) != before
        return version

    def _copy_consistent(self) -> int:
        waits = 0
        while True:
            before = int(self._seq)
            if before % 2 == 1:  # a write is in progress; let the writer finish
                time.sleep(_backoff(waits))
                waits += 1
                continue
            version = self._copy_once()
            self.checked += 1
            if int(self._seq) == before:
                return version
            self.retries += 1
