"""The command line, run as a user runs it: ``python -m mplearn run ...`` in a subprocess.

Every subprocess carries a tag in its environment, inherited by the workers it spawns, so a test
can check that none of them outlives the command (``subprocess_env`` in conftest.py).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mplearn import Config, Fixes
from mplearn.__main__ import _config, _parser, main
from mplearn.lab.results import ResultFile, ResultFileError

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
    "agents": (["--agents", "0"], ["--agents", "n_agents"]),
    "steps": (["--steps", "-5"], ["--steps", "total_env_steps"]),
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


def test_steps_below_learning_starts_names_the_flag_typed(capsys):
    assert main(["run", "--steps", "500", "--quiet"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert line.startswith("error: --steps: ") and "500" in line and "--learning-starts" in line


@pytest.fixture
def help_text(capsys):
    def get(*argv: str) -> str:
        with pytest.raises(SystemExit):
            _parser().parse_args([*argv, "--help"])
        return " ".join(capsys.readouterr().out.split())  # argparse wraps to the terminal
    return get


def test_top_level_help_describes_the_kit(help_text):
    text = help_text()
    assert "Command line:" not in text
    assert "actor/learner" in text and "learning issue" in text
    for command in ("run", "check", "issues", "bench", "reproduce"):
        assert f"python -m mplearn {command}" in text or f" {command} " in text


def test_run_options_have_help_and_defaults():
    """Each option as ``run --help`` prints it: a help text, then its default."""
    sub = _parser()._subparsers._group_actions[0].choices["run"]
    formatter = sub.formatter_class(prog=sub.prog, width=1000)
    actions = {a.option_strings[0]: a for a in sub._actions if a.option_strings}
    for flag, default in (("--agents", Config.n_agents), ("--mode", Config.mode),
                          ("--seed", Config.seed), ("--steps", Config.total_env_steps)):
        shown = " ".join(formatter._format_action(actions[flag]).split())
        described = re.fullmatch(re.escape(flag) + r" \S+ (.+) \(default: (.+)\)", shown)
        assert described, f"{flag}: no help text with its default: {shown!r}"
        assert len(described[1].split()) >= 2, f"{flag}: help text {described[1]!r}"
        assert described[2] == str(default)


def test_a_broken_run_names_the_issue_and_a_reference(subprocess_env):
    """Two agents inline: the issue and the same command without --broken come first; the
    progress bar counts both agents' steps (the summary's env steps/s is for all agents)."""
    proc = subprocess.run(
        [*COMMAND, "run", "--mode", "inline", "--agents", "2", "--steps", "1100", "--seed", "3",
         "--broken", "step_counter"],
        cwd=REPO, env=subprocess_env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("broken: step_counter (Training step counter): expect ")
    reference = next(line for line in lines if line.startswith("compare with: "))
    command = shlex.split(reference.removeprefix("compare with: ").split("  (")[0])
    assert command[:3] == ["python", "-m", "mplearn"] and "--broken" not in command
    broken_config = _config(_parser().parse_args(
        ["run", "--mode", "inline", "--agents", "2", "--steps", "1100", "--seed", "3",
         "--broken", "step_counter"]))
    assert _config(_parser().parse_args(command[3:])) == broken_config.replace(fixes=Fixes())
    assert "python -m mplearn check step_counter" in proc.stdout
    assert "2200/2200" in proc.stderr  # the bar: 2 agents x 1100 env steps

    header = lines.index(next(line for line in lines if line.startswith("agent ")))
    rows = [line.split() for line in lines[header + 1:header + 3]]
    updates, publishes = [int(r[3]) for r in rows], [int(r[4]) for r in rows]
    note = next(line for line in lines if line.startswith("publishes: "))
    if not torch.cuda.is_available():  # the in-place path: each optimizer step is a publish
        assert publishes == updates and "every update is a publish" in note


# --- --out: checked before the run, claimed against a second run, written in one step -------

INLINE = ["run", "--mode", "inline", "--steps", "300", "--learning-starts", "32", "--quiet"]


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_out_is_written_whole_with_the_umask_mode_and_never_twice(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*INLINE, "--seed", "1", "--out", str(out)]) == 0
    assert f"wrote {out / 'result.json'}" in capsys.readouterr().out
    path = out / "result.json"
    assert json.loads(path.read_text())["config"]["seed"] == 1
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~_umask()  # as any new file
    assert sorted(p.name for p in out.iterdir()) == ["result.json"]  # no temporary file left
    # a second run refuses before it runs: the first result stays
    assert main([*INLINE, "--seed", "2", "--out", str(out)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: --out: ") and "already holds a result" in line, line
    assert json.loads(path.read_text())["config"]["seed"] == 1
    # --force replaces it, in one step
    assert main([*INLINE, "--seed", "2", "--out", str(out), "--force"]) == 0
    assert json.loads(path.read_text())["config"]["seed"] == 2
    assert sorted(p.name for p in out.iterdir()) == ["result.json"]


def test_a_private_umask_makes_a_private_result(tmp_path):
    previous = os.umask(0o077)
    try:
        path = ResultFile(tmp_path).claim().write({"a": 1})
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_second_claim_on_a_folder_fails_while_the_first_holds_it(tmp_path):
    first = ResultFile(tmp_path / "out").claim()
    with pytest.raises(ResultFileError, match="another run"):
        ResultFile(tmp_path / "out", force=True).claim()  # --force does not share the folder
    first.write({"run": 1})  # writing releases the folder
    with ResultFile(tmp_path / "out", force=True).claim() as second:
        second.write({"run": 2})
    assert json.loads((tmp_path / "out" / "result.json").read_text()) == {"run": 2}


def test_a_claim_released_by_a_failed_run_frees_the_folder(tmp_path):
    with ResultFile(tmp_path).claim():
        pass  # the run failed: nothing written
    assert not (tmp_path / "result.json").exists()
    ResultFile(tmp_path).claim().write({"ok": True})


def test_a_result_that_appeared_during_the_run_is_neither_replaced_nor_lost(tmp_path):
    """A writer that ignored the lock: the link refuses its name, and this run's result stays
    in the temporary file, named in the message."""
    claim = ResultFile(tmp_path).claim()
    (tmp_path / "result.json").write_text('{"other": true}')
    with pytest.raises(ResultFileError, match="appeared during the run") as info:
        claim.write({"mine": True})
    assert json.loads((tmp_path / "result.json").read_text()) == {"other": True}
    kept = [p for p in tmp_path.iterdir() if p.name != "result.json"]
    assert len(kept) == 1 and kept[0].name in str(info.value)
    assert json.loads(kept[0].read_text()) == {"mine": True}


def test_a_link_planted_during_the_run_is_replaced_not_written_through(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    out = tmp_path / "out"
    claim = ResultFile(out, force=True).claim()
    (out / "result.json").symlink_to(victim)
    claim.write({"mine": True})
    assert victim.read_text() == "keep me"
    assert not (out / "result.json").is_symlink()
    assert json.loads((out / "result.json").read_text()) == {"mine": True}
