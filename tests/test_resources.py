"""What a config costs (mplearn.core.resources): the estimates against what a run really uses,
and each check refusing with the figure and the field that drives it.

The estimates are measured here again: a model's size against a built one, the open files
against a started System's /proc/PID/fd, a learner update's memory against its peak RSS.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mplearn import Config, System
from mplearn.core import resources
from mplearn.core.config import ConfigError
from mplearn.core.resources import (
    FILES_BASE,
    FILES_PER_AGENT_BEYOND_TENSORS,
    check_memory,
    check_open_files,
    check_replay_segment,
    memory_costs,
    network_floats,
    shared_tensors_per_agent,
    size,
    tau_batch_floats,
)
from mplearn.core.weights import IQNAgent, build_network
from mplearn.envs import EnvSpec, env_spec

REPO = Path(__file__).resolve().parents[1]
CARTPOLE = EnvSpec((4,), 2)
SMALL = dict(total_env_steps=300, learning_starts=32, batch_size=16, buffer_size=1_000,
             hidden_dim=16, device="cpu")


@pytest.mark.parametrize("changes", [
    {}, dict(noisy=True), dict(dueling=True), dict(noisy=True, dueling=True, dropout=0.2),
    dict(hidden_dim=7, embedding_dim=3),
])
@pytest.mark.parametrize("spec", [CARTPOLE, EnvSpec((3, 5), 4)], ids=["cartpole", "3x5-obs"])
def test_network_floats_match_a_built_network(changes, spec):
    config = Config(**changes)
    net = build_network(spec, config)
    params = sum(p.numel() for p in net.parameters())
    stored = params + sum(b.numel() for b in net.buffers())
    assert network_floats(config, spec) == (params, stored)


@pytest.mark.parametrize("changes", [{}, dict(noisy=True, dueling=True)])
def test_shared_tensors_are_counted_on_a_model_of_width_one(changes):
    config = Config(**changes)
    model = IQNAgent(CARTPOLE, config)
    tensors = len(list(model.parameters())) + len(list(model.buffers()))
    assert shared_tensors_per_agent(config, CARTPOLE) == tensors + 2  # + seq and version


def _open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.mark.usefixtures("no_leaks")
def test_open_files_estimate_bounds_a_started_system():
    """Three agents in processes: what the parent and the actor hold, against the estimate (an
    estimate must not be low, or a run the check lets through dies of EMFILE; nor far above the
    tensors it counts)."""
    n = 3
    config = Config(**SMALL, mode="lockstep", n_agents=n)
    spec = env_spec(config.env_id)
    tensors = shared_tensors_per_agent(config, spec)
    estimate = FILES_BASE + n * (tensors + FILES_PER_AGENT_BEYOND_TENSORS)
    before = _open_files(os.getpid())
    with System(config) as system:
        deadline = time.monotonic() + 120
        while system.env_steps == 0 and time.monotonic() < deadline:
            system.poll(0.1)
        parent = _open_files(os.getpid()) - before
        actor = _open_files(next(p.pid for p in system._processes if p.name == "actor"))
    assert n * tensors <= parent <= estimate, (parent, estimate)
    assert actor <= estimate, (actor, estimate)


def test_the_open_files_check_refuses_past_the_limit(monkeypatch):
    monkeypatch.setattr(resources.resource, "getrlimit", lambda kind: (1024, 4096))
    check_open_files(Config(n_agents=8), CARTPOLE)  # 8 x 23 + what is open: fits
    with pytest.raises(ConfigError) as info:
        check_open_files(Config(n_agents=100), CARTPOLE)
    message = str(info.value)
    assert message.startswith("n_agents: 100 agents need about ") and "1024" in message, message
    assert "ulimit -n" in message and "\n" not in message


def test_the_memory_check_names_the_part_that_outgrows_the_machine():
    gib = 2**30
    cases = [  # (config, available, the field named)
        (Config(n_agents=40), gib, "n_agents"),  # 41 worker processes
        (Config(buffer_size=3 * 10**7, total_env_steps=3 * 10**7), gib, "buffer_size"),
        (Config(num_tau_samples=10**6), gib, "num_tau_samples"),
        (Config(num_tau_prime_samples=10**6, num_tau_samples=64), gib, "num_tau_prime_samples"),
        (Config(hidden_dim=2**16), gib, "hidden_dim"),
        (Config(embedding_dim=2**24), gib, "embedding_dim"),
    ]
    for config, available, name in cases:
        with pytest.raises(ConfigError) as info:
            check_memory(config, CARTPOLE, available=available)
        message = str(info.value)
        assert message.startswith(f"{name}: "), message
        assert "this machine has 1 GiB available" in message, message
    check_memory(Config(n_agents=8), CARTPOLE, available=gib)  # 9 workers x 64 MiB and change
    check_memory(Config(n_agents=40, mode="inline"), CARTPOLE, available=gib)  # no workers


def test_memory_costs_grow_with_their_fields():
    base = {c.part: c.nbytes for c in memory_costs(Config(), CARTPOLE)}
    more = {c.part: c.nbytes for c in memory_costs(Config(n_agents=2, mode="inline"), CARTPOLE)}
    assert more["replay"] == 2 * base["replay"] and more["models"] == 2 * base["models"]
    assert base["worker processes"] == 2 * resources.WORKER_BYTES
    assert more["worker processes"] == 0  # inline: no processes
    # the replay counts the rows the run writes, not the capacity (pages come on first write)
    bigger = {c.part: c.nbytes for c in memory_costs(Config(buffer_size=10**6), CARTPOLE)}
    assert bigger["replay"] == base["replay"]


def test_the_replay_segment_must_fit_where_it_lives(tmp_path):
    config = Config(buffer_size=2**50, total_env_steps=1000, learning_starts=100)
    with pytest.raises(ConfigError, match=r"^buffer_size: 1125899906842624 rows need 66 PiB"):
        check_replay_segment(config, CARTPOLE, root=str(tmp_path))
    check_replay_segment(Config(), CARTPOLE, root=str(tmp_path))


def test_available_memory_is_read_from_the_machine():
    available = resources.available_memory()
    assert available is not None and 0 < available <= os.sysconf("SC_PHYS_PAGES") * os.sysconf(
        "SC_PAGE_SIZE")


@pytest.mark.parametrize(("nbytes", "text"), [
    (0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (3 * 2**30, "3 GiB"),
    (2**62 * 66, "264 EiB"), (2**100, "1.05e+06 YiB"),
])
def test_size(nbytes, text):
    assert size(nbytes) == text


PEAK = textwrap.dedent("""
    import json, resource, sys
    import torch
    from mplearn import Config
    from mplearn.core import iqn
    from mplearn.core.weights import build_network
    from mplearn.envs import EnvSpec
    torch.set_num_threads(1)
    spec = EnvSpec((4,), 2)

    def step(c):
        online, target = build_network(spec, c), build_network(spec, c)
        b = c.batch_size
        loss, _ = iqn.iqn_loss(online, target, torch.randn(b, 4), torch.randint(0, 2, (b,)),
                               torch.randn(b), torch.randn(b, 4), torch.zeros(b), gamma=0.99,
                               num_tau_samples=c.num_tau_samples,
                               num_tau_prime_samples=c.num_tau_prime_samples,
                               num_quantile_samples=c.num_quantile_samples, kappa=1.0,
                               double_dqn=True)
        loss.backward()

    def status_kib(field):
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))

    config = Config(**json.loads(sys.argv[1]))
    step(config.replace(num_tau_samples=1, num_tau_prime_samples=1, num_quantile_samples=1))
    # The peak of this update alone: reset the high-water mark to the resident size now
    # (Linux: 5 > clear_refs). Comparing the lifetime peak with the resident size now overstated
    # it when the kernel had reclaimed pages of the imports meanwhile (a loaded machine).
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = status_kib("VmRSS")
    step(config)
    print((status_kib("VmHWM") - before) * 1024)
""")


@pytest.mark.parametrize("changes", [
    dict(num_tau_samples=2000),  # the online pass
    dict(num_tau_samples=200, num_tau_prime_samples=200),  # the pairwise loss
], ids=["online", "pairwise"])
def test_tau_batch_estimate_against_a_measured_peak(changes):
    """One update's peak RSS growth (ru_maxrss, a fresh process) against the estimate: at most
    a little above it (not to refuse what fits), and not far below."""
    proc = subprocess.run([sys.executable, "-c", PEAK, json.dumps(changes)], cwd=REPO,
                          capture_output=True, text=True, timeout=300, check=True)
    measured = int(proc.stdout.split()[-1])
    estimate = resources.FLOAT_BYTES * tau_batch_floats(Config(**changes), CARTPOLE)
    assert measured > 50 * 2**20, measured  # large enough to see above the noise
    assert 0.25 * measured <= estimate <= 1.3 * measured, (estimate, measured)


def test_the_checks_do_not_touch_the_global_rng():
    import torch

    state = torch.random.get_rng_state()
    shared_tensors_per_agent(Config(noisy=True), CARTPOLE)
    assert torch.equal(state, torch.random.get_rng_state())


def test_rlimit_is_read_as_the_soft_limit():
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        pytest.skip("no open-files limit here")
    n = min(soft // (shared_tensors_per_agent(Config(), CARTPOLE) + 3) + 1, 2**16)
    with pytest.raises(ConfigError, match=rf"limit here is {soft} "):
        check_open_files(Config(n_agents=n), CARTPOLE)
