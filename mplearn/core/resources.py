"""What a config will cost this machine, weighed before any process starts.

``Config`` keeps every number in range on its own; ``check_resources`` (called by
``System.__init__``) weighs a valid config against the machine: the open files one process
holds against its limit (``ulimit -n``), the replay segment against /dev/shm, the memory the
run will use (replay rows, models, the learners' tau batches, the worker processes) against
what the machine has available, and source models against the model the config builds. A
failure is a ``ConfigError`` naming the field that drives the cost, with the figure it needs.

The figures are estimates from the sizes alone, measured where they could not be derived
(tests/test_resources.py measures them again): they are meant to refuse a config that cannot
run, never one that can.
"""

from __future__ import annotations

import math
import os
import resource
from dataclasses import dataclass

import torch

from mplearn.core.config import Config, ConfigError, shown
from mplearn.core.replay import _layout
from mplearn.envs import EnvSpec

FLOAT_BYTES = 4  # the models and the loss run in float32
# Open files: every tensor of a shared model keeps a file descriptor open (torch's
# "file_descriptor" sharing strategy) in the parent and in the actor, which hold every agent's
# model. Measured with /proc/PID/fd (async, 1-8 agents): the parent holds 23 more per agent for
# the default model (20 shared tensors) and 63 more for a noisy dueling one (60): the tensors
# and 3 more (the replay segment, the learner's process sentinel and pipe). The actor holds
# fewer (20 and 60 per agent) and a learner a constant 30. What the System opens once: 8 in the
# parent, 14 in the actor; FILES_BASE covers both with room to spare.
FILES_PER_AGENT_BEYOND_TENSORS = 3
FILES_BASE = 32
# Private memory of one worker process (the interpreter, torch, the env), read from
# /proc/PID/smaps_rollup after a few seconds of an async run: 75-200 MiB per actor or learner
# on the machine this was written on. The lower end counts, so as not to refuse a run that fits.
WORKER_BYTES = 64 * 2**20


@dataclass(frozen=True)
class Cost:
    """One part of a run's memory: its size and the fields it grows with."""

    part: str
    nbytes: int
    fields: tuple[str, ...]


def size(nbytes: int) -> str:
    """1536 -> '1.5 KiB'; exact integer arithmetic first, so any size prints."""
    units = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")
    exponent = min(max(nbytes.bit_length() - 1, 0) // 10, len(units) - 1)
    scaled = nbytes / 2 ** (10 * exponent) if nbytes.bit_length() < 1000 else math.inf
    return f"{scaled:.3g} {units[exponent]}" if exponent else f"{nbytes} B"


# --- sizes ---------------------------------------------------------------------------------

def network_floats(config: Config, spec: EnvSpec) -> tuple[int, int]:
    """(parameters, parameters and buffers) of one IQN network, from the sizes alone
    (mirrors networks.IQNNetwork; tests/test_resources.py compares with a built one)."""
    h, e, a = config.hidden_dim, config.embedding_dim, spec.n_actions
    obs = math.prod(spec.obs_shape)

    def linear(n_in: int, n_out: int) -> tuple[int, int]:
        n = n_in * n_out + n_out
        # NoisyLinear: mu and sigma as parameters, epsilon as buffers.
        return (2 * n, 3 * n) if config.noisy else (n, n)

    layers = [(obs * h + h, obs * h + h), (e * h + h, e * h + h)]  # psi, phi: always plain
    for out in ((1, a) if config.dueling else (a,)):
        layers += [linear(h, h), linear(h, out)]
    params = sum(p for p, _ in layers)
    return params, sum(s for _, s in layers) + e  # + pi_i, the cosine frequencies


def shared_tensors_per_agent(config: Config, spec: EnvSpec) -> int:
    """The tensors of one shared model (both networks, weights_seq and weights_version): each
    is a file descriptor in every process that holds it. Counted on a model of width 1."""
    from mplearn.core.weights import IQNAgent

    tiny = config.replace(hidden_dim=1, embedding_dim=1, dropout=0.0)
    with torch.random.fork_rng():  # building draws initial weights: leave the caller's RNG be
        model = IQNAgent(spec, tiny)
    return len(list(model.parameters())) + len(list(model.buffers())) + 2


def tau_batch_floats(config: Config, spec: EnvSpec) -> int:
    """Floats one learner update holds at its peak, from the shapes of iqn_loss: what autograd
    saves of the online pass over B x N taus, the larger of the no-grad passes over B x K and
    B x N' taus, and the [B, N, N'] pairwise loss. Fitted to the peaks measured with
    ru_maxrss (B 64-4096, N, N' and K up to 5000, hidden 64-512, dueling, dropout, noisy: the
    estimate was 0.3-1.05 of the measured); tests/test_resources.py measures one again."""
    c, a = config, spec.n_actions
    b, h, e = c.batch_size, c.hidden_dim, c.embedding_dim
    heads = 2 if c.dueling else 1
    per_row = e + 3 * h + heads * ((3 if c.dropout > 0 else 2) * h + a)  # saved per (b, tau)
    online = b * c.num_tau_samples * per_row
    no_grad = b * max(c.num_quantile_samples, c.num_tau_prime_samples) * (h + a)
    pairwise = 2 * b * c.num_tau_samples * c.num_tau_prime_samples
    return online + no_grad + pairwise


def memory_costs(config: Config, spec: EnvSpec) -> list[Cost]:
    """The run's memory, part by part, on the host (every device: an estimate)."""
    c, n = config, config.n_agents
    params, stored = network_floats(c, spec)
    rows = min(c.buffer_size, c.total_env_steps)  # a segment's pages exist once written
    # Per agent: the shared model (2 networks), the actor's network, the learner's copy (2 more
    # on the copy path) and its gradients and Adam's two moments.
    models = n * FLOAT_BYTES * (5 * stored + 3 * params)
    workers = 0 if c.mode == "inline" else (n + 1) * WORKER_BYTES
    return [
        Cost("replay", n * _layout(rows, spec.obs_shape, c.replay_obs_dtype)[1],
             ("buffer_size", "n_agents")),
        Cost("models", models, ("hidden_dim", "embedding_dim", "n_agents")),
        Cost("tau batches", n * FLOAT_BYTES * tau_batch_floats(c, spec),
             ("num_tau_samples", "num_tau_prime_samples", "num_quantile_samples", "batch_size",
              "hidden_dim", "embedding_dim", "n_agents")),
        Cost("worker processes", workers, ("n_agents",)),
    ]


def _most_raised(config: Config, fields: tuple[str, ...]) -> str:
    """The field set furthest above its default (the first one on a tie): the one to lower."""
    return max(fields, key=lambda f: getattr(config, f) / getattr(Config, f))


# --- what the machine has ------------------------------------------------------------------

def available_memory() -> int | None:
    """MemAvailable (what can be allocated without swapping), or psutil's where /proc has no
    meminfo; None when neither is there."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import psutil
    except ImportError:
        return None
    return int(psutil.virtual_memory().available)


def open_files_now() -> int | None:
    for folder in ("/proc/self/fd", "/dev/fd"):
        try:
            return len(os.listdir(folder))
        except OSError:
            continue
    return None


# --- the checks ----------------------------------------------------------------------------

def check_open_files(config: Config, spec: EnvSpec) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    now = open_files_now()
    if soft == resource.RLIM_INFINITY or now is None:
        return
    tensors = 0 if torch.multiprocessing.get_sharing_strategy() == "file_system" \
        else shared_tensors_per_agent(config, spec)
    per_agent = tensors + FILES_PER_AGENT_BEYOND_TENSORS
    need = now + FILES_BASE + config.n_agents * per_agent
    if need > soft:
        raise ConfigError(
            f"n_agents: {shown(config.n_agents)} agents need about {shown(need)} open files in "
            f"one process ({per_agent} per agent: its shared model's {tensors} tensors, its "
            f"replay and its learner); the limit here is {soft} (ulimit -n; at most {hard})")


def check_replay_segment(config: Config, spec: EnvSpec, root: str = "/dev/shm") -> None:
    """A replay's segment has ``buffer_size`` rows however few the run writes: it must fit in
    /dev/shm (a segment beyond it overflows or fails to map at start, and leaves its name)."""
    if not os.path.isdir(root):
        return
    st = os.statvfs(root)
    holds = st.f_blocks * st.f_frsize
    need = _layout(config.buffer_size, spec.obs_shape, config.replay_obs_dtype)[1]
    if need > holds:
        raise ConfigError(
            f"buffer_size: {shown(config.buffer_size)} rows need {size(need)} of shared memory "
            f"per agent; {root} holds {size(holds)} on this machine")


def check_memory(config: Config, spec: EnvSpec, available: int | None = None) -> None:
    available = available_memory() if available is None else available
    if available is None:
        return
    costs = memory_costs(config, spec)
    need = sum(cost.nbytes for cost in costs)
    if need <= available:
        return
    costs.sort(key=lambda cost: -cost.nbytes)
    name = _most_raised(config, costs[0].fields)
    parts = ", ".join(f"{cost.part} {size(cost.nbytes)}" for cost in costs)
    raise ConfigError(f"{name}: {shown(getattr(config, name))} makes this run need {size(need)} "
                      f"of memory ({parts}); this machine has {size(available)} available")


def check_source_models(config: Config, spec: EnvSpec, source_models) -> None:
    """Each source model must have the state this config's model has, tensor by tensor: else
    ``load_state_dict`` fails at ``start()``, after the shared memory is made."""
    if source_models is None:
        return
    if isinstance(source_models, (str, bytes)) or not hasattr(source_models, "__len__"):
        raise ConfigError(f"source_models: expected a list (one model per agent), got "
                          f"{type(source_models).__name__}")
    if len(source_models) != config.n_agents:
        raise ConfigError(f"source_models: need one per agent ({config.n_agents}), got "
                          f"{len(source_models)}")
    if all(m is None for m in source_models):
        return
    from mplearn.core.weights import IQNAgent

    with torch.random.fork_rng():
        want = {k: tuple(v.shape) for k, v in IQNAgent(spec, config).state_dict().items()}
    for i, model in enumerate(source_models):
        if model is None:
            continue
        if not callable(getattr(model, "state_dict", None)):
            raise ConfigError(f"source_models[{i}]: expected a model (an IQNAgent), got "
                              f"{type(model).__name__}")
        have = {k: tuple(getattr(v, "shape", ())) for k, v in model.state_dict().items()}
        missing, extra = sorted(want.keys() - have.keys()), sorted(have.keys() - want.keys())
        if missing or extra:
            what = f"has no {missing[0]}, which this config's model has" if missing else \
                f"has {extra[0]}, which this config's model lacks"
            raise ConfigError(f"source_models[{i}]: {what} (noisy {config.noisy}, dueling "
                              f"{config.dueling}; {len(missing)} missing, {len(extra)} extra)")
        for key, shape in want.items():
            if have[key] != shape:
                raise ConfigError(f"source_models[{i}]: {key} is {list(have[key])}, this "
                                  f"config's model needs {list(shape)} (hidden_dim "
                                  f"{config.hidden_dim}, embedding_dim {config.embedding_dim})")


def check_resources(config: Config, spec: EnvSpec, source_models=None) -> None:
    """Every check above, cheapest and most likely first; the source models last (checking
    them builds this config's model, which the memory check has found room for)."""
    check_open_files(config, spec)
    check_replay_segment(config, spec)
    check_memory(config, spec)
    check_source_models(config, spec, source_models)
