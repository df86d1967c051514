"""The command line, run as a user runs it: ``python -m mplearn run ...`` in a subprocess.

Every subprocess carries a tag in its environment, inherited by the workers it spawns, so a test
can check that none of them outlives the command (``subprocess_env`` in conftest.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.usefixtures("no_leaks")

REPO = Path(__file__).resolve().parents[1]
COMMAND = [sys.executable, "-m", "mplearn"]
SUMMARY_KEYS = {"final_return", "env_steps", "updates", "wall_s", "env_steps_per_s",
                "updates_per_s", "policy_lag_mean", "publishes", "target_updates"}


def test_run_prints_the_summary_and_writes_result_json(tmp_path, subprocess_env):
    out = tmp_path / "run"
    proc = subprocess.run(
        [*COMMAND, "run", "--steps", "1500", "--agents", "2", "--mode", "lockstep", "--seed", "1",
         "--out", str(out), "--quiet"],
        cwd=REPO, env=subprocess_env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:2] == ["agent", "final_return"]
    assert [line.split()[0] for line in lines[1:3]] == ["0", "1"]  # one row per agent
    assert any(line.startswith("env steps/agent 1500") for line in lines)
    assert f"wrote {out / 'result.json'}" in proc.stdout

    d = json.loads((out / "result.json").read_text())
    summary = d["summary"]
    assert set(summary) >= SUMMARY_KEYS
    assert len(summary["final_return"]) == 2
    assert summary["env_steps"] == 1500
    assert summary["updates"] == [500, 500]  # default learning_starts 1000, one update per step
    assert summary["wall_s"] > 0 and summary["env_steps_per_s"] > 0
    assert summary["error"] is None
    config = d["config"]
    assert (config["n_agents"], config["mode"], config["total_env_steps"], config["seed"]) == (
        2, "lockstep", 1500, 1)
    assert d["seed"] == 1
    assert d["fixes"] == config["fixes"]
    assert set(d["versions"]) >= {"python", "torch", "numpy", "gymnasium", "mplearn"}
    assert len(d["episodes"]) == len(d["learner"]) == len(d["actor"]) == 2


# id: (arguments, what the message must name)
BAD_INPUT = {
    "agents": (["--agents", "0"], ["n_agents"]),
    "steps": (["--steps", "-5"], ["total_env_steps"]),
    "unknown-env": (["--env", "Nope-v9"], ["env_id", "Nope-v9"]),
    "continuous-env": (["--env", "Pendulum-v1"], ["env_id", "Pendulum-v1", "Discrete"]),
    "cuda": (["--device", "cuda"], ["device", "cuda"]),
    "broken": (["--broken", "no_such_issue"], ["fixes", "no_such_issue"]),
}


@pytest.fixture(scope="module")
def bad_input_runs(module_subprocess_env):
    """Every bad-input command, run at once (each is mostly interpreter start-up):
    {id: (exit status, stdout, stderr)}."""
    cases = {**{k: args for k, (args, _) in BAD_INPUT.items()}, "mode": ["--mode", "warp"]}
    if torch.cuda.is_available():
        del cases["cuda"]
    # A short run (--steps first: a later --steps wins) bounds what a missing check would cost.
    procs = {k: subprocess.Popen([*COMMAND, "run", "--steps", "1500", "--quiet", *args],
                                 cwd=REPO, env=module_subprocess_env, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for k, args in cases.items()}
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


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_exits_2_with_one_line(bad_input_runs, case):
    if case == "cuda" and torch.cuda.is_available():
        pytest.skip("CUDA is available here: --device cuda is valid")
    returncode, out, err = bad_input_runs[case]
    assert returncode == 2, out + err
    assert "Traceback" not in err
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    for name in BAD_INPUT[case][1]:
        assert name in lines[0]


def test_bad_mode_is_an_argparse_error(bad_input_runs):
    returncode, out, err = bad_input_runs["mode"]
    assert returncode == 2
    assert "Traceback" not in err
    assert "--mode" in err and "warp" in err
    assert out == ""
