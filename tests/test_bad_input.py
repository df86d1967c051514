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
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import child_pids

from mplearn import Config, Fixes, System, train
from mplearn.__main__ import _config, _parser

pytestmark = pytest.mark.usefixtures("no_leaks")

REPO = Path(__file__).resolve().parents[1]
# Valid, small, and in a mode that starts processes: a check that comes too late would start them.
SMALL = dict(mode="async", total_env_steps=300, learning_starts=32, batch_size=16,
             buffer_size=1_000, hidden_dim=16, device="cpu")


def _shm_free_rows() -> int:
    """More CartPole replay rows than /dev/shm can hold (a row is at least 66 bytes)."""
    st = os.statvfs("/dev/shm")
    return 2 * st.f_bavail * st.f_frsize // 66 + 1


def _unpicklable() -> dict:
    return {"render_mode": lambda: None}


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
