"""Each mechanism check shows its mechanism with the fix off and not with it on."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mplearn.core.fixes import Fixes
from mplearn.issues import NAMES as CHECKS
from mplearn.issues import run_check


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_mechanism_shows_only_with_the_fix_off(name):
    result = run_check(name)
    assert result.name == name
    assert result.shows_broken, str(result)
    assert not result.shows_fixed, str(result)
    assert result.passed


def test_every_check_names_a_switch():
    assert set(CHECKS) <= set(Fixes.names())


@pytest.mark.parametrize(("name", "fixed", "broken"), [
    ("step_counter", 2, 20),  # publishes in 20 updates, every 10 by schedule
    ("single_target_update", 2, 4),  # target updates in 20 updates, every 10
    ("batch_to_device", 0, 1),  # a float64 batch raises only without the fix
])
def test_exact_counts(name, fixed, broken):
    result = run_check(name)
    assert (result.fixed, result.broken) == (fixed, broken)


def test_exact_values_across_processes():
    epsilon = run_check("shared_epsilon")
    assert epsilon.fixed == pytest.approx(0.01) and epsilon.broken == 1.0
    replay = run_check("replay_by_name")
    assert replay.broken == 0.0 and replay.fixed > 0


def test_cli_check_exit_codes():
    ok = subprocess.run([sys.executable, "-m", "mplearn", "check", "step_counter"],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "PASS" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "mplearn", "check", "no_such_issue"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and bad.stderr.startswith("error: name:")
