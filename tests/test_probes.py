"""Learning checks: an agent trained on each probe through the real system (inline mode, ~1000
env steps, a few seconds each) matches the probe's known mean Q-values and quantiles."""

from __future__ import annotations

import pytest

from mplearn import Fixes
from mplearn.envs.probes import MEAN_TOLERANCE, PROBES, QUANTILE_TOLERANCE
from mplearn.lab.probes import probe_check

_RESULTS: dict = {}


def trained(env_id: str):
    """The probe check of seed 0, run once per test session."""
    if env_id not in _RESULTS:
        _RESULTS[env_id] = probe_check(env_id, seed=0)
    return _RESULTS[env_id]


@pytest.mark.parametrize("env_id", list(PROBES))
def test_the_agent_learns_the_known_answer(env_id):
    result = trained(env_id)
    assert result.passed, "\n" + result.table()
    assert result.updates > 0 and len(result.rows) >= 5
    assert {r.tolerance for r in result.rows if r.what == "mean"} == {MEAN_TOLERANCE}
    assert {r.tolerance for r in result.rows if r.what.startswith("tau")} == {QUANTILE_TOLERANCE}


def test_random_reward_quantiles_spread_toward_minus_one_and_plus_one():
    rows = {r.what: r for r in trained("mplearn/ProbeRandomReward-v0").rows}
    # At kappa = 1 the loss's fixed points are -0.889 and +0.889 (the true quantiles: -1, +1).
    assert rows["tau=0.1"].learned < -0.6 and rows["tau=0.9"].learned > 0.6
    assert rows["tau=0.1"].true == -1.0 and rows["tau=0.9"].true == 1.0


def test_a_broken_learner_fails_the_simplest_probe():
    # The train copy keeps the shared model's optimizer: nothing learns.
    result = probe_check("mplearn/ProbeConstant-v0", seed=0, learner_path="copy",
                         fixes=Fixes().without("optimizer_binding"))
    assert not result.passed
    assert abs(result.rows[0].learned - 1.0) > MEAN_TOLERANCE


def test_unknown_probe_is_named():
    with pytest.raises(ValueError, match="not a probe"):
        probe_check("CartPole-v1")
