"""Bad input fails before anything starts, with one line that names the field or argument.

Through the Python API (``train``, ``System``, ``Config``, ``Fixes``), every case must fail
without starting a process (``Process.start`` is never called and no child appears) and without
creating a /dev/shm entry. Through the command line, ``python -m mplearn run ...`` prints exactly
one line ``error: ...`` on stderr, no traceback, and exits with status 2. test_config.py checks
Config's validation field by field and test_cli.py a few command-line cases; these are the cases
beyond them, and the paths a user takes.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import multiprocessing.process
import os
import resource
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import pytest
import torch
from conftest import child_pids

from mplearn import Config, Fixes, System, train
from mplearn.__main__ import _config, _parser, main
from mplearn.core.weights import IQNAgent
from mplearn.envs import env_spec
from mplearn.lab.results import ResultFile

pytestmark = pytest.mark.usefixtures("no_leaks")

REPO = Path(__file__).resolve().parents[1]
# Valid, small, and in a mode that starts processes: a check that comes too late would start them.
SMALL = dict(mode="async", total_env_steps=300, learning_starts=32, batch_size=16,
             buffer_size=1_000, hidden_dim=16, device="cpu")


def _shm_free_rows() -> int:
    """More CartPole replay rows than /dev/shm can hold (a row is at least 66 bytes)."""
    st = os.statvfs("/dev/shm")
    return 2 * st.f_bavail * st.f_frsize // 66 + 1


def _more_agents_than_open_files() -> int:
    """More agents than this process may open files for (at 20 files an agent, fewer than the
    23 measured), capped by Config's bound (where the limit is higher, that bound refuses)."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return min(soft // 20 + 1, 2**16 + 1) if soft != resource.RLIM_INFINITY else 2**16 + 1


def _unpicklable() -> dict:
    return {"render_mode": lambda: None}


class _RaisesBare(gym.Env):
    """An env whose constructor raises an exception without a message (``str(e) == ""``)."""

    def __init__(self, **kwargs):
        raise ValueError()


class _RaisesBlankFirstLine(gym.Env):
    def __init__(self, **kwargs):
        raise RuntimeError("\n   \nthe second line says why")


for _id, _cls in (("mplearn-test/RaisesBare-v0", _RaisesBare),
                  ("mplearn-test/RaisesBlankFirstLine-v0", _RaisesBlankFirstLine)):
    if _id not in gym.registry:
        gym.register(_id, entry_point=_cls)


def _model(**changes) -> IQNAgent:
    """A model for CartPole as ``Config(**SMALL, **changes)`` builds it (a source model)."""
    return IQNAgent(env_spec("CartPole-v1"), Config(**{**SMALL, **changes}))


# id: (what the message must start with, the call). Each case is bad in exactly one way.
PYTHON_CASES = {
    # sizes and intervals: zero or negative
    "batch_size-0": ("batch_size: ", lambda: train(Config(**SMALL), batch_size=0)),
    "buffer_size-negative": ("buffer_size: ", lambda: train(Config(**SMALL), buffer_size=-1)),
    "hidden_dim-0": ("hidden_dim: ", lambda: train(Config(**SMALL), hidden_dim=0)),
    "publish_interval-0": ("publish_interval: ",
                           lambda: train(Config(**SMALL), publish_interval=0)),
    "sync_interval-negative": ("sync_interval: ",
                               lambda: train(Config(**SMALL), sync_interval=-10)),
    "n_agents-0": ("n_agents: ", lambda: train(Config(**SMALL), n_agents=0)),
    "total_env_steps-0": ("total_env_steps: ",
                          lambda: train(Config(**SMALL), total_env_steps=0, learning_starts=0)),
    "target_update_period-0": ("target_update_period: ",
                               lambda: train(Config(**SMALL), target_update_period=0)),
    "epsilon_decay_freq-negative": ("epsilon_decay_freq: ",
                                    lambda: train(Config(**SMALL), epsilon_decay_freq=-1)),
    "n_step-0": ("n_step: ", lambda: train(Config(**SMALL), n_step=0)),
    # probabilities and rates out of range
    "gamma-above-1": ("gamma: ", lambda: train(Config(**SMALL), gamma=1.01)),
    "tau-0": ("tau: ", lambda: train(Config(**SMALL), tau=0.0)),
    "tau-above-1": ("tau: ", lambda: train(Config(**SMALL), tau=1.5)),
    "epsilon_start-above-1": ("epsilon_start: ", lambda: train(Config(**SMALL),
                                                                epsilon_start=1.2)),
    "epsilon_end-negative": ("epsilon_end: ", lambda: train(Config(**SMALL), epsilon_end=-0.01)),
    "learning_rate-negative": ("learning_rate: ",
                               lambda: train(Config(**SMALL), learning_rate=-1e-3)),
    "max_grad_norm-nan": ("max_grad_norm: ", lambda: train(Config(**SMALL),
                                                            max_grad_norm=math.nan)),
    # environments
    "env-unknown": ("env_id: ", lambda: train(Config(**SMALL, env_id="NoSuchEnv-v0"))),
    "env-continuous": ("env_id: ", lambda: train(Config(**SMALL, env_id="Pendulum-v1"))),
    "env-empty": ("env_id: ", lambda: System(Config(**SMALL, env_id=""))),
    "env_kwargs-unpicklable": ("env_kwargs: ",
                               lambda: train(Config(**SMALL, env_kwargs=_unpicklable()))),
    # issue names
    "without-unknown-issue": ("fixes: ", lambda: Fixes().without("train_mode", "no_such_issue")),
    # wrong types: a string, a float, a bool for an int; a string for a float; non-bool fixes
    "batch_size-str": ("batch_size: ", lambda: train(Config(**SMALL), batch_size="16")),
    "hidden_dim-float": ("hidden_dim: ", lambda: train(Config(**SMALL), hidden_dim=16.0)),
    "publish_interval-bool": ("publish_interval: ",
                              lambda: train(Config(**SMALL), publish_interval=True)),
    "learning_rate-str": ("learning_rate: ",
                          lambda: train(Config(**SMALL), learning_rate="1e-3")),
    "fixes-str-value": ("fixes.train_mode: ",
                        lambda: train(Config(**SMALL), fixes=Fixes(train_mode="no"))),
    "fixes-from-json-str": ("fixes.shared_epsilon: ", lambda: Config.from_dict(
        {**SMALL, "fixes": {"shared_epsilon": "false"}})),
    "config-not-a-config": ("config: ", lambda: System({"mode": "async"})),
    "unknown-field": ("hiden_dim: ", lambda: train(Config(**SMALL), hiden_dim=16)),
    # contradictory settings
    "epsilon_end-above-start": ("epsilon_end: ",
                                lambda: train(Config(**SMALL), epsilon_start=0.5,
                                              epsilon_end=0.6)),
    "batch-above-buffer": ("batch_size: ", lambda: train(Config(**SMALL), batch_size=2_000)),
    "learning_starts-above-steps": ("learning_starts: ",
                                    lambda: train(Config(**SMALL), learning_starts=500)),
    "batch-above-steps": ("batch_size: ",
                          lambda: train(Config(**SMALL), batch_size=400, buffer_size=1_000,
                                        learning_starts=0)),
    "no-update-ever": ("updates_per_step: ",
                       lambda: train(Config(**SMALL), updates_per_step=0.001)),
    "buffer-beyond-dev-shm": ("buffer_size: ", lambda: System(Config(
        **{**SMALL, "buffer_size": _shm_free_rows(), "total_env_steps": _shm_free_rows()}))),
    "seed-beyond-64-bits": ("seed: ", lambda: train(Config(**SMALL), seed=2**64)),
    # devices that are not there
    "device-cuda": ("device: ", lambda: train(Config(**SMALL), device="cuda")),
    "device-mps": ("device: ", lambda: train(Config(**SMALL), device="mps")),
    # fault injection
    "inject_fault-no-step": ("inject_fault: ", lambda: train(Config(**SMALL),
                                                              inject_fault="actor@")),
    "inject_fault-negative": ("inject_fault: ", lambda: train(Config(**SMALL),
                                                               inject_fault="learner@-1")),
    "inject_fault-never-fires": ("inject_fault: ",
                                 lambda: train(Config(**SMALL), inject_fault="actor@300")),
    "inject_fault-learner-never-fires": ("inject_fault: ", lambda: train(
        Config(**SMALL), inject_fault="learner@268")),  # 300 - 32 = 268 updates: 0..267
    "inject_fault-5000-digits": ("inject_fault: ", lambda: train(
        Config(**SMALL), inject_fault="actor@" + "9" * 5000)),  # int() of it raised
    # numbers past the overflow-safe bounds (were OverflowError, or a run that never ends)
    "total_env_steps-400-digits": ("total_env_steps: ",
                                   lambda: train(Config(**SMALL), total_env_steps=10**400)),
    "total_env_steps-5000-digits": ("total_env_steps: ",
                                    lambda: train(Config(**SMALL), total_env_steps=10**5000)),
    "learning_starts-400-digits": ("learning_starts: ",
                                   lambda: train(Config(**SMALL), learning_starts=10**400)),
    "seed-negative-5000-digits": ("seed: ", lambda: train(Config(**SMALL), seed=-10**5000)),
    "updates_per_step-1e308": ("updates_per_step: ",
                               lambda: train(Config(**SMALL), updates_per_step=1e308)),
    "updates_per_step-1e300": ("updates_per_step: ",
                               lambda: train(Config(**SMALL), updates_per_step=1e300)),
    "updates_per_step-inf": ("updates_per_step: ",
                             lambda: train(Config(**SMALL), updates_per_step=math.inf)),
    "updates_per_step-nan": ("updates_per_step: ",
                             lambda: train(Config(**SMALL), updates_per_step=math.nan)),
    "learning_rate-400-digits": ("learning_rate: ",
                                 lambda: train(Config(**SMALL), learning_rate=10**400)),
    "kappa-inf": ("kappa: ", lambda: train(Config(**SMALL), kappa=math.inf)),
    "adam_eps-nan": ("adam_eps: ", lambda: train(Config(**SMALL), adam_eps=math.nan)),
    "gamma-nan": ("gamma: ", lambda: train(Config(**SMALL), gamma=math.nan)),
    "tau-nan": ("tau: ", lambda: train(Config(**SMALL), tau=math.nan)),
    "dropout-400-digits": ("dropout: ", lambda: train(Config(**SMALL), dropout=10**400)),
    "epsilon_start-nan": ("epsilon_start: ",
                          lambda: train(Config(**SMALL), epsilon_start=math.nan)),
    "max_update_lag-beyond-int64": ("max_update_lag: ",
                                    lambda: train(Config(**SMALL), max_update_lag=2**63)),
    "log_interval-400-digits": ("log_interval: ",
                                lambda: train(Config(**SMALL), log_interval=10**400)),
    # what a valid config costs, against this machine (were failures at start(), a worker dying
    # seconds in, a psm_ segment left behind, or a message naming another field)
    "hidden_dim-2**62": ("hidden_dim: ", lambda: train(Config(**SMALL), hidden_dim=2**62)),
    "embedding_dim-2**40": ("embedding_dim: ",
                            lambda: train(Config(**SMALL), embedding_dim=2**40)),
    "buffer_size-2**62": ("buffer_size: ", lambda: train(Config(**SMALL), buffer_size=2**62)),
    "num_tau_samples-10**9": ("num_tau_samples: ",
                              lambda: train(Config(**SMALL), num_tau_samples=10**9)),
    "num_tau_prime_samples-10**9": ("num_tau_prime_samples: ", lambda: train(
        Config(**SMALL), num_tau_prime_samples=10**9)),
    "num_quantile_samples-10**10": ("num_quantile_samples: ", lambda: train(
        Config(**SMALL), num_quantile_samples=10**10)),
    "n_agents-99999999": ("n_agents: ", lambda: train(Config(**SMALL), n_agents=99_999_999)),
    "n_agents-2**40": ("n_agents: ", lambda: train(Config(**SMALL), n_agents=2**40)),
    "n_agents-beyond-open-files": ("n_agents: ", lambda: System(Config(**SMALL).replace(
        n_agents=_more_agents_than_open_files()))),
    # environments that cannot run in a worker, or whose constructor says little
    "render_mode-human": ("env_kwargs: ", lambda: train(
        Config(**SMALL, env_kwargs={"render_mode": "human"}))),
    "render_mode-undeclared": ("env_kwargs: ", lambda: train(
        Config(**SMALL, env_kwargs={"render_mode": "ansi"}))),  # CartPole: human, rgb_array
    "env-constructor-bare-ValueError": ("env_id: ", lambda: train(
        Config(**SMALL, env_id="mplearn-test/RaisesBare-v0"))),  # was IndexError
    "env-constructor-bare-with-kwargs": ("env_kwargs: ", lambda: train(
        Config(**SMALL, env_id="mplearn-test/RaisesBare-v0", env_kwargs={"size": 3}))),
    "env-constructor-blank-first-line": ("env_id: ", lambda: train(
        Config(**SMALL, env_id="mplearn-test/RaisesBlankFirstLine-v0"))),
    # saved configs (Config.from_dict) of the wrong shape (were TypeError)
    "from_dict-fixes-None": ("fixes: ", lambda: Config.from_dict({**SMALL, "fixes": None})),
    "from_dict-fixes-list": ("fixes: ",
                             lambda: Config.from_dict({**SMALL, "fixes": ["train_mode"]})),
    "from_dict-not-a-dict": ("config: ", lambda: Config.from_dict(None)),
    # source models that do not fit the config (failed only at start())
    "source_models-other-width": ("source_models[0]: ", lambda: System(
        Config(**SMALL), source_models=[_model(hidden_dim=32)])),
    "source_models-other-embedding": ("source_models[1]: ", lambda: System(
        Config(**{**SMALL, "n_agents": 2}), source_models=[None, _model(embedding_dim=8)])),
    "source_models-noisy-for-plain": ("source_models[0]: ", lambda: System(
        Config(**SMALL), source_models=[_model(noisy=True)])),
    "source_models-not-a-model": ("source_models[0]: ", lambda: System(
        Config(**SMALL), source_models=[{"weights": 1}])),
    "source_models-too-few": ("source_models: ", lambda: System(
        Config(**{**SMALL, "n_agents": 2}), source_models=[_model()])),
    # one model where a list of them is asked for (was a TypeError from len())
    "source_models-one-model-not-a-list": ("source_models: ", lambda: System(
        Config(**SMALL), source_models=_model())),
}
ABSENT = {"device-cuda": torch.cuda.is_available,
          "device-mps": torch.backends.mps.is_available}


@pytest.fixture
def no_process_may_start(monkeypatch):
    """Fail the test if anything calls Process.start (spawn context or any other)."""
    started = []

    def refuse(self):
        started.append(self.name)
        raise AssertionError(f"a process was started: {self.name}")

    monkeypatch.setattr(multiprocessing.process.BaseProcess, "start", refuse)
    children = set(child_pids())
    shm = set(os.listdir("/dev/shm"))
    yield started
    assert started == []
    assert mp.active_children() == []
    assert set(child_pids()) == children
    # Nothing was allocated either: no replay segment, no semaphore (entries of other programs
    # on a shared machine may come and go: only the ones this process maps count, by inode).
    mapped = {int(f[4]) for f in map(str.split, Path("/proc/self/maps").read_text().splitlines())
              if len(f) >= 6 and f[5].startswith("/dev/shm/")}
    assert sorted(e.name for e in os.scandir("/dev/shm")
                  if e.name not in shm and e.inode() in mapped) == []


@pytest.mark.parametrize("case", list(PYTHON_CASES))
def test_bad_input_fails_before_anything_starts(case, no_process_may_start):
    if case in ABSENT and ABSENT[case]():
        pytest.skip("the device is present here")
    prefix, call = PYTHON_CASES[case]
    with pytest.raises(ValueError) as info:  # ConfigError is a ValueError
        call()
    message = str(info.value)
    assert message.startswith(prefix), message
    assert "\n" not in message, message


def test_the_boundaries_next_to_the_new_checks_are_accepted():
    # The last reachable fault, the smallest useful ratio, the largest 64-bit seed, a batch
    # of every env step: valid.
    Config(**SMALL, inject_fault="actor@299")
    Config(**SMALL, inject_fault="learner@267")
    Config(**{**SMALL, "updates_per_step": 1 / 200})  # floor(268 / 200) = 1 update
    Config(**SMALL).replace(seed=2**64 - 1)
    Config(**{**SMALL, "batch_size": 300, "learning_starts": 0})
    Config(**SMALL, env_kwargs={"render_mode": None})
    System(Config(**SMALL, env_kwargs={"render_mode": "rgb_array"}))  # declared, headless
    System(Config(**SMALL), source_models=[_model()])  # a model of the same shape
    System(Config(**{**SMALL, "n_agents": 2}), source_models=[None, _model()])


def test_an_empty_constructor_error_is_named_by_its_type():
    with pytest.raises(ValueError, match=r"RaisesBare-v0': ValueError \(no message\)$"):
        System(Config(**SMALL, env_id="mplearn-test/RaisesBare-v0"))
    with pytest.raises(ValueError, match=r"the second line says why$"):
        System(Config(**SMALL, env_id="mplearn-test/RaisesBlankFirstLine-v0"))


def test_a_cost_message_gives_the_figure_and_what_the_machine_has():
    with pytest.raises(ValueError) as info:
        System(Config(**SMALL).replace(num_tau_samples=10**9))
    message = str(info.value)
    assert "TiB of memory" in message and "tau batches" in message, message
    assert "available" in message, message
    with pytest.raises(ValueError) as info:
        System(Config(**SMALL).replace(buffer_size=2**62))
    assert "EiB of shared memory" in str(info.value) and "/dev/shm holds" in str(info.value)


# --- the command line -----------------------------------------------------------------------

# A short inline run: a check that is missing costs seconds, not minutes.
SHORT = ["--mode", "inline", "--steps", "300", "--learning-starts", "32"]
# id: (arguments after `run`, what the one line must contain). Beyond test_cli.py's cases.
CLI_CASES = {
    # --steps alone keeps learning_starts' default (1000): --learning-starts is the way out
    "steps-below-default-learning-starts": (["--mode", "inline", "--steps", "500"],
                                            ["learning_starts", "500", "1000"]),
    "learning-starts-above-steps": ([*SHORT, "--learning-starts", "600"],
                                    ["learning_starts", "600"]),
    "learning-starts-negative": ([*SHORT, "--learning-starts", "-1"], ["learning_starts", "-1"]),
    "agents-float": ([*SHORT, "--agents", "1.5"], ["--agents", "1.5"]),
    "agents-bool": ([*SHORT, "--agents", "true"], ["--agents", "true"]),
    "seed-negative": ([*SHORT, "--seed", "-1"], ["seed", "-1"]),
    "seed-beyond-64-bits": ([*SHORT, "--seed", str(2**64)], ["seed", str(2**64)]),
    "device-mps": ([*SHORT, "--device", "mps"], ["device", "mps"]),
    "env-empty": ([*SHORT, "--env", ""], ["env_id"]),
    "broken-one-unknown": ([*SHORT, "--broken", "train_mode", "no_such_issue"],
                           ["fixes", "no_such_issue"]),
    "unknown-option": ([*SHORT, "--frobnicate"], ["unrecognized arguments", "--frobnicate"]),
    "out-is-a-file": ([*SHORT, "--out", __file__], ["out", "not a directory"]),
}


@pytest.fixture(scope="module")
def cli_runs(module_subprocess_env):
    """Every command at once (each is mostly interpreter start-up): {id: (status, out, err)}."""
    cases = dict(CLI_CASES)
    if torch.backends.mps.is_available():
        del cases["device-mps"]
    procs = {k: subprocess.Popen(
        [sys.executable, "-m", "mplearn", "run", "--quiet", *args],
        cwd=REPO, env=module_subprocess_env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True) for k, (args, _) in cases.items()}
    runs = {}
    try:
        for k, proc in procs.items():
            out, err = proc.communicate(timeout=120)
            runs[k] = (proc.returncode, out, err)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return runs


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_bad_command_line_prints_one_line_and_exits_2(cli_runs, case):
    if case not in cli_runs:
        pytest.skip("the device is present here")
    status, out, err = cli_runs[case]
    assert status == 2, out + err
    assert out == ""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for word in CLI_CASES[case][1]:
        assert word in lines[0], lines[0]


def test_learning_starts_reaches_the_config():
    args = _parser().parse_args(["run", "--steps", "500", "--learning-starts", "100"])
    config = _config(args)
    assert (config.total_env_steps, config.learning_starts) == (500, 100)
    assert _config(_parser().parse_args(["run"])).learning_starts == Config.learning_starts


# --- the command line, in this process: nothing may start, nothing may be written ----------

# A mode with processes: a check that comes too late starts one, and no_process_may_start fails.
ASYNC = ["--mode", "async", "--steps", "300", "--learning-starts", "32", "--quiet"]


def _folder_with(tmp_path: Path, what: str) -> Path:
    """A folder for --out whose result.json is ``what``; the folder's entries before the run."""
    out = tmp_path / "out"
    out.mkdir()
    target = out / "result.json"
    if what == "directory":
        target.mkdir()
    elif what == "dangling-link":
        target.symlink_to(tmp_path / "nowhere")
    elif what == "link-to-a-file":
        (tmp_path / "victim.txt").write_text("not a result")
        target.symlink_to(tmp_path / "victim.txt")
    elif what == "result":
        target.write_text("{}")
    elif what == "fifo":
        os.mkfifo(target)
    return out


# id: (arguments after `run` but --out, what --out is, what the one line must contain)
OUT_CASES = {
    "out-name-5000-characters": ("a" * 5000, ["--out", "5000 bytes", "NAME_MAX"]),
    "out-path-beyond-PATH_MAX": ("/".join(["b" * 200] * 25), ["--out", "PATH_MAX"]),
    "out-result-is-a-directory": ("directory", ["--out", "result.json", "is a directory"]),
    "out-result-is-a-dangling-link": ("dangling-link", ["--out", "symbolic link", "nowhere"]),
    "out-result-is-a-link-to-a-file": ("link-to-a-file", ["--out", "symbolic link", "victim"]),
    "out-result-is-a-fifo": ("fifo", ["--out", "not a regular file"]),
    "out-holds-a-result": ("result", ["--out", "already holds a result", "--force"]),
    "out-under-a-file": ("under-a-file", ["--out", "cannot create directory"]),
    "out-locked-by-another-run": ("locked", ["--out", "another run"]),
}


def _contents(folder: Path) -> dict:
    """Every path under ``folder`` with a regular file's bytes (a link's: None)."""
    return {p: p.read_bytes() if p.is_file() and not p.is_symlink() else None
            for p in folder.rglob("*")}


def _one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    return lines[0]


@pytest.mark.parametrize("case", list(OUT_CASES))
def test_a_bad_out_is_refused_before_the_run(case, tmp_path, capsys, no_process_may_start):
    what, words = OUT_CASES[case]
    held = None
    if what in ("directory", "dangling-link", "link-to-a-file", "result", "fifo"):
        out = _folder_with(tmp_path, what)
    elif what == "under-a-file":
        (tmp_path / "file").write_text("")
        out = tmp_path / "file" / "out"
    elif what == "locked":  # another run holds the folder, as a second `run --out` would find
        out = tmp_path / "out"
        held = ResultFile(out).claim()
    else:
        out = tmp_path / what
    before = _contents(tmp_path)
    try:
        assert main(["run", *ASYNC, "--out", str(out)]) == 2
    finally:
        if held is not None:
            held.release()
    line = _one_error_line(capsys)
    for word in words:
        assert word in line, line
    assert _contents(tmp_path) == before  # nothing made, written, replaced or left behind


# id: (arguments, what the one line must contain)
CLI_IN_PROCESS = {
    "run-steps-400-digits": (["run", *ASYNC, "--steps", "9" * 400],
                             ["--steps (total_env_steps)", "2**48"]),
    "run-agents-99999999": (["run", *ASYNC, "--agents", "99999999"],
                            ["--agents (n_agents)", "99999999", "2**16"]),
    "run-agents-beyond-open-files": (["run", *ASYNC, "--agents",
                                      str(min(_more_agents_than_open_files(), 2**16))],
                                     ["--agents (n_agents)"]),
    "run-seed-400-digits": (["run", *ASYNC, "--seed", "9" * 400], ["--seed (seed)"]),
    "run-learning-starts-400-digits": (["run", *ASYNC, "--learning-starts", "9" * 400],
                                       ["--steps", "--learning-starts", "400-digit"]),
    "run-env-constructor-bare-ValueError": (["run", *ASYNC, "--env",
                                             "mplearn-test/RaisesBare-v0"],
                                            ["--env (env_id)", "ValueError (no message)"]),
    "run-force-without-out": (["run", *ASYNC, "--force"], ["--force", "--out"]),
}


@pytest.mark.parametrize("case", list(CLI_IN_PROCESS))
def test_bad_run_arguments_in_process(case, capsys, no_process_may_start):
    argv, words = CLI_IN_PROCESS[case]
    assert main(argv) == 2
    line = _one_error_line(capsys)
    for word in words:
        assert word in line, line


def test_an_int_past_what_python_parses_is_argparses_one_line(capsys, no_process_may_start):
    with pytest.raises(SystemExit) as info:  # int() refuses 4300+ digits: argparse reports it
        main(["run", *ASYNC, "--steps", "9" * 5000])
    assert info.value.code == 2
    line = _one_error_line(capsys)
    assert "--steps" in line and "invalid int value" in line, line[:200]


@pytest.mark.parametrize("budget", ["nan", "-5", "inf", "-inf"])
def test_reproduce_refuses_a_bad_budget_before_any_manifest(budget, tmp_path, capsys,
                                                            no_process_may_start):
    out = tmp_path / "data"
    assert main(["reproduce", "target_sync", "--out", str(out), "--quiet",
                 f"--budget-s={budget}"]) == 2
    line = _one_error_line(capsys)
    assert line.startswith("error: --budget-s: ") and budget.lstrip("-") in line, line
    assert not out.exists()  # was: exit 1 and target_sync/manifest.json written


def test_reproduce_refuses_a_step_count_past_the_bound(tmp_path, capsys, no_process_may_start):
    out = tmp_path / "data"
    assert main(["reproduce", "target_sync", "--out", str(out), "--steps", "9" * 400]) == 2
    assert _one_error_line(capsys).startswith("error: --steps: must be <= ")
    assert not out.exists()
