"""The learner: one per agent. Trains IQN on its agent's replay, updates the target network,
publishes weights and epsilon to the actor.

``Learner.update()`` is one full learner step and runs in any process; ``learner_main`` is the
process entry point for the lockstep and async modes.
"""

from __future__ import annotations

import time
from contextlib import nullcontext

import numpy as np
import torch
from torch import nn

from mplearn.core import iqn
from mplearn.core.channels import ACTOR_PARTY, AgentChannel, Rendezvous, learner_party
from mplearn.core.config import Config, InjectedFault
from mplearn.core.replay import Batch
from mplearn.core.weights import WeightPublisher, make_train_copy
from mplearn.envs import EnvSpec

LEARNER = "learner"


def resolve_device(name: str) -> torch.device:
    """``auto``: cuda, then mps, then cpu. A named device must be present."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: 'cuda' requested but torch.cuda.is_available() is False")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device: 'mps' requested but torch.backends.mps.is_available() is False")
    return torch.device(name)


def resolve_path(name: str, device: torch.device) -> str:
    """``auto``: train a device copy and publish it on an accelerator, train in place on cpu."""
    if name != "auto":
        return name
    return "in_place" if device.type == "cpu" else "copy"


@torch.no_grad()
def update_target(target: nn.Module, online: nn.Module, tau: float) -> None:
    """Polyak update theta' <- tau * theta + (1 - tau) * theta' (tau = 1: hard copy)."""
    for p_target, p in zip(target.parameters(), online.parameters(), strict=True):
        p_target.lerp_(p, tau)


class Learner:
    def __init__(self, config: Config, spec: EnvSpec, channel: AgentChannel, seed: int):
        self.config = config
        self.channel = channel
        self.device = resolve_device(config.device)
        self.path = resolve_path(config.learner_path, self.device)
        shared = channel.model
        self.model = shared if self.path == "in_place" else make_train_copy(
            shared, config, spec, self.device)
        self.fixes = config.fixes
        self.publisher = WeightPublisher(shared, self.fixes)
        self.rng = np.random.default_rng(seed)  # replay sampling
        self.generator = torch.Generator(device=self.device).manual_seed(seed)  # taus, noise
        # One multi-tensor kernel per norm and clip instead of one op per parameter tensor
        # (torch only picks it by itself on accelerators); the same values on the CPU.
        self._foreach = True if self.device.type in ("cpu", "cuda") else None
        self.updates = 0  # optimizer steps: the update-to-data bookkeeping
        self.training_step = 0  # the plan's counter: drives the publish and epsilon schedules
        self.epsilon = config.epsilon_start  # the learner's schedule value
        self._epsilon_steps = 0  # decay steps taken
        self.target_updates = 0
        self._fault_at = config.fault_at("learner")
        # loss, grad norm, mean Q, clipped, train mode, mean |obs|: sums since the last record
        self._totals = np.zeros(6)
        self._applied_norm_max = 0.0  # the largest gradient norm stepped with since then
        self._recorded_at = 0
        self._weights_recorded = self._online_weights()  # for the weight change per record
        # The networks' modules and the online parameters, listed once: walking the module tree
        # (nn.Module.modules(), .parameters()) on every update cost ~43 us of a ~1.8 ms step.
        online, target = self.model.qnetwork_local, self.model.qnetwork_target
        self._modules = (tuple(online.modules()), tuple(target.modules()))
        self._params = tuple(online.parameters())

    # --- one update --------------------------------------------------------------------------
    def to_tensors(self, batch: Batch) -> dict[str, torch.Tensor]:
        """The batch as tensors on the model's device, observations in the model's dtype."""
        dtype = self._params[0].dtype  # live: .double() or .to() converts in place

        # FIX(batch_to_device): tensors on the model's device, in the model's dtype.
        if self.fixes.batch_to_device:
            def as_tensor(x: np.ndarray, dtype=None) -> torch.Tensor:
                return torch.as_tensor(x, device=self.device, dtype=dtype)
        else:  # torch.from_numpy: the array's own dtype, on the CPU, whatever the model's
            def as_tensor(x: np.ndarray, dtype=None) -> torch.Tensor:
                return torch.from_numpy(np.asarray(x))

        return dict(
            obs=as_tensor(batch.obs, dtype),
            actions=as_tensor(batch.actions, torch.int64),
            rewards=as_tensor(batch.rewards, dtype),
            next_obs=as_tensor(batch.next_obs, dtype),
            terminated=as_tensor(batch.terminated, dtype),
            discounts=self.config.gamma ** as_tensor(batch.steps, dtype),  # gamma^n, n-step
        )

    def loss(self, t: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The IQN loss of the model on the tensors of a batch, and the mean chosen quantile."""
        c, model = self.config, self.model
        return iqn.iqn_loss(
            model.qnetwork_local, model.qnetwork_target,
            t["obs"], t["actions"], t["rewards"], t["next_obs"], t["terminated"],
            gamma=t["discounts"], num_tau_samples=c.num_tau_samples,
            num_tau_prime_samples=c.num_tau_prime_samples,
            num_quantile_samples=c.num_quantile_samples, kappa=c.kappa,
            double_dqn=c.double_dqn, generator=self.generator,
        )

    def train_step(self, batch: Batch) -> tuple[float, float, float]:
        """One optimizer step on ``batch``; returns (loss, pre-clip grad norm, mean Q)."""
        c, model = self.config, self.model
        t = self.to_tensors(batch)
        # FIX(train_mode): train mode for the update (noise, dropout, batch-norm statistics).
        if self.fixes.train_mode:
            _set_mode(self._modules, True)
        else:  # as left by an eval()-then-train() helper that returned early
            _set_mode(self._modules, False)
        model.qnetwork_local.reset_noise(self.generator)
        model.qnetwork_target.reset_noise(self.generator)
        loss, mean_q = self.loss(t)
        model.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        params = self._params
        # FIX(grad_clip): clip the gradient norm before the step (returns the pre-clip norm).
        if self.fixes.grad_clip:
            grad_norm = nn.utils.clip_grad_norm_(params, c.max_grad_norm, foreach=self._foreach)
        else:  # clipping commented out, as in the origin's final learner: measure only
            grad_norm = _total_norm(params, self._foreach)
        # In place, the optimizer step is the write the actor must not see half done.
        writing = self.publisher.writing(self.updates + 1) if self.path == "in_place" \
            else nullcontext()
        with writing:
            model.optimizer.step()
            self.updates += 1
            if self.updates % c.target_update_period == 0:
                update_target(model.qnetwork_target, model.qnetwork_local, c.tau)
                self.target_updates += 1
                # FIX(single_target_update): exactly one target update per period.
                if not self.fixes.single_target_update:  # the learner loop updates it again
                    update_target(model.qnetwork_target, model.qnetwork_local, c.tau)
                    self.target_updates += 1
        self._applied_norm_max = max(self._applied_norm_max,
                                     _total_norm(self._params, self._foreach).item())
        return loss.item(), grad_norm.item(), mean_q.item()

    def update(self) -> None:
        """Sample, train, then publish weights and epsilon on their schedules."""
        c, ch = self.config, self.channel
        if self.updates == self._fault_at:
            raise InjectedFault(f"learner-{ch.agent_id}: injected fault at update {self.updates}")
        batch = ch.buffer.sample(c.batch_size, self.rng)
        loss, grad_norm, mean_q = self.train_step(batch)
        # What the monitor watches: observed state, whatever the switches say.
        self._totals += (loss, grad_norm, mean_q, grad_norm > c.max_grad_norm,
                         self.model.qnetwork_local.training, np.abs(batch.obs).mean())
        # FIX(step_counter): the schedule counter advances with every update.
        if self.fixes.step_counter:
            self.training_step += 1
        else:  # never incremented: `0 % interval == 0` holds on every update
            pass
        if self.path == "copy" and self.training_step % c.publish_interval == 0:
            self.publisher.publish(self.model, self.updates)
        if self.training_step % c.epsilon_decay_freq == 0:
            self._epsilon_steps += 1
            self.publish_epsilon(c.epsilon_at(self._epsilon_steps * c.epsilon_decay_freq))
        ch.updates.value = self.updates

    def publish_epsilon(self, epsilon: float) -> None:
        self.epsilon = epsilon
        # FIX(shared_epsilon): through shared memory the actor reads.
        if self.fixes.shared_epsilon:
            self.channel.epsilon.value = epsilon
        else:  # an attribute on the shared model: share_memory() shares tensor storages only
            self.channel.model.epsilon = epsilon

    def updates_owed(self, env_steps: int | None = None) -> int:
        """Updates to do now: what the update-to-data ratio allows, minus those done."""
        c = self.config
        if env_steps is None:
            env_steps = self.channel.env_steps.value
        owed = c.updates_owed(env_steps) - self.updates
        # FIX(throttle): enforce the update-to-data ratio.
        if self.fixes.throttle:
            return owed
        else:  # free-running while the actor runs: one more update whenever data exists
            running = c.updates_owed(env_steps) > 0 and env_steps < c.total_env_steps
            return max(owed, 1) if running else owed

    def train_owed(self, records) -> int:
        """Do every update the update-to-data ratio allows now (inline and lockstep rounds)."""
        n = self.updates_owed()
        for _ in range(n):
            self.update()
            self.maybe_record(records)
        return n

    def finish(self, records) -> None:
        """Publish the final weights and flush the last record."""
        if self.path == "copy" and int(self.channel.model.weights_version) != self.updates:
            self.publisher.publish(self.model, self.updates)
        self.maybe_record(records, force=True)

    # --- records -----------------------------------------------------------------------------
    @torch.no_grad()
    def _online_weights(self) -> torch.Tensor:
        return torch.cat([p.reshape(-1) for p in self.model.qnetwork_local.parameters()]).cpu()

    def maybe_record(self, records, force: bool = False) -> None:
        """Send the averages since the last record, every ``log_interval`` updates."""
        pending = self.updates - self._recorded_at
        if pending == 0 or (pending < self.config.log_interval and not force):
            return
        loss, grad_norm, mean_q, clipped, train_mode, batch_abs_obs = self._totals / pending
        self._totals[:] = 0
        applied, self._applied_norm_max = self._applied_norm_max, 0.0
        self._recorded_at = self.updates
        weights = self._online_weights()
        # Did training move the weights the learner trains? (0 when an optimizer is bound to
        # other parameters: the optimizer_binding bug.)
        weight_change = float((weights - self._weights_recorded).norm())
        self._weights_recorded = weights
        records.put((LEARNER, self.channel.agent_id, dict(
            update=self.updates, env_step=int(self.channel.env_steps.value), time=time.time(),
            loss=loss, grad_norm=grad_norm, mean_q=mean_q, clip_fraction=clipped,
            epsilon=self.epsilon, publishes=self.publisher.publishes,
            target_updates=self.target_updates, grad_norm_applied_max=applied,
            train_mode=train_mode, batch_abs_obs=batch_abs_obs, threads=torch.get_num_threads(),
            weight_change=weight_change,
            unwritten_sampled=self.channel.buffer.unwritten_sampled,
        )))


def _set_mode(networks: tuple[tuple[nn.Module, ...], ...], training: bool) -> None:
    """``net.train(training)`` for each network, given as its modules (``net.modules()``, the
    root first); skipped when every module is in that mode already: train() sets each module's
    flag through nn.Module.__setattr__, a cost on every update."""
    for modules in networks:
        if any(m.training != training for m in modules):
            modules[0].train(training)


def _total_norm(params, foreach: bool | None) -> torch.Tensor:
    """The 2-norm of all gradients together (0 when none), as clip_grad_norm_ computes it."""
    grads = [p.grad for p in params if p.grad is not None]
    return nn.utils.get_total_norm(grads, foreach=foreach) if grads else torch.zeros(())


def learner_main(config: Config, spec: EnvSpec, channel: AgentChannel, seed: int,
                 rendezvous: Rendezvous, *, records) -> None:
    """Process entry point: one agent's learner, in lockstep rounds or free-running."""
    party = learner_party(channel.agent_id)
    rendezvous.attach(party)
    learner = Learner(config, spec, channel, seed)
    total = config.total_env_steps
    if config.mode == "lockstep":
        last_round = False
        while not last_round:
            rendezvous.wait(party)  # the actor finished its round and waits for us
            # Read now, while the actor waits: after the next wait it races ahead.
            last_round = channel.env_steps.value >= total
            learner.train_owed(records)
            rendezvous.wait(party)  # the round is over
    else:
        while not rendezvous.stopped():
            env_steps = channel.env_steps.value  # read once: the actor may step in between
            if learner.updates_owed(env_steps) > 0:
                learner.update()
                learner.maybe_record(records)
                rendezvous.ring(ACTOR_PARTY)  # the actor may wait for this learner to catch up
            elif env_steps >= total:
                break
            else:  # the update-to-data ratio says wait for data: sleep until the next step
                rendezvous.sleep_until(
                    party, lambda seen=env_steps: channel.env_steps.value != seen)
    learner.finish(records)
