"""Train an agent on a probe environment through the real system and compare what it learned
with the probe's known answers (``mplearn.envs.probes``): a test of the whole learning path.
"""

from __future__ import annotations

import time

from mplearn.core.config import Config
from mplearn.core.system import System
from mplearn.envs.probes import PROBES, ProbeResult, compare


def probe_config(env_id: str, seed: int = 0, **overrides):
    """The config a probe is trained with: inline, 1-step returns (gamma exact), uniform random
    behaviour (every action's value is learned), a short run."""
    base = dict(
        env_id=env_id, mode="inline", seed=seed, device="cpu", gamma=PROBES[env_id].gamma,
        n_step=1, total_env_steps=1000, learning_starts=100, buffer_size=1000, batch_size=128,
        hidden_dim=32, epsilon_start=1.0, epsilon_end=1.0, target_update_period=50,
        log_interval=500,
    )
    return Config(**{**base, **overrides})


def probe_check(env_id: str, seed: int = 0, **overrides) -> ProbeResult:
    """Train on probe ``env_id`` through the real system and compare with ``PROBES[env_id]``.

    ``overrides`` change the probe's config (``probe_config``), e.g. ``fixes=Fixes().without(...)``
    to see which probe a learning issue breaks.
    """
    if env_id not in PROBES:
        raise ValueError(f"env_id: not a probe: {env_id!r} (probes: {', '.join(PROBES)})")
    config = probe_config(env_id, seed, **overrides)
    start = time.perf_counter()
    with System(config) as system:
        system.run()
        net = system.shared_models[0].qnetwork_local
        result = ProbeResult(env_id, seed, compare(PROBES[env_id], net, config.kappa),
                             system.env_steps,
                             system.updates[0])
    result.wall_s = time.perf_counter() - start
    return result


def check_all(seed: int = 0, **overrides) -> list[ProbeResult]:
    """``probe_check`` on every probe, in the order of ``PROBES``."""
    return [probe_check(env_id, seed, **overrides) for env_id in PROBES]
