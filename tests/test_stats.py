"""Unit tests for mplearn.lab.stats against hand-computed values; deterministic (fixed seeds)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mplearn.lab.stats import (
    Summary,
    band,
    bootstrap_ci,
    curves_on_grid,
    iqm,
    make_grid,
    paired_difference,
    probability_of_improvement,
    probability_of_improvement_ci,
    running_mean,
    statistic_name,
    stratified_bootstrap_ci,
    summarize,
)

# --- iqm: scipy.stats.trim_mean(x, 0.25) semantics --------------------------------------------


@pytest.mark.parametrize("values, expected", [
    ([1, 2, 3, 4, 5, 6, 7, 8], 4.5),  # n = 8: cut 2 each end, mean of 3, 4, 5, 6
    ([10, 1, 3, 100, 2], 5.0),  # n = 5: cut int(1.25) = 1, mean of 2, 3, 10
    ([0, 1, 2, 3, 10, 60], 4.0),  # n = 6: cut int(1.5) = 1, mean of 1, 2, 3, 10 (not 2)
    ([0, 1, 2, 3, 4, 20, 600], 6.0),  # n = 7: cut int(1.75) = 1, mean of 1, 2, 3, 4, 20
    ([1, 2, 1000, 3, 4, 5, 6, 7, 8], 5.0),  # n = 9: cut 2, mean of 3..7
    ([1, 2, 9], 4.0),  # n = 3: int(0.75) = 0, nothing cut
    ([7.0], 7.0),
])
def test_iqm_hand_values(values, expected):
    assert iqm(values) == pytest.approx(expected, abs=1e-12)


def test_iqm_along_an_axis_and_flattened():
    x = np.array([[1, 2, 3, 4], [5, 6, 7, 100]])
    np.testing.assert_allclose(iqm(x, axis=1), [2.5, 6.5])
    np.testing.assert_allclose(iqm(x, axis=-1), [2.5, 6.5])
    np.testing.assert_allclose(iqm(x, axis=0), [3, 4, 5, 52])
    assert iqm(x) == pytest.approx(4.5)  # all 8 values sorted: mean of 3, 4, 5, 6


def test_iqm_nan_propagates_even_where_it_would_be_cut():
    assert math.isnan(iqm([1.0, 2.0, 3.0, np.nan]))
    out = iqm(np.array([[1, 2, 3, 4], [1, 2, 3, np.nan]]), axis=1)
    assert out[0] == 2.5 and math.isnan(out[1])


# --- bootstrap intervals --------------------------------------------------------------------


def test_bootstrap_ci_contains_true_mean_of_large_normal_sample():
    x = np.random.default_rng(1).normal(3.0, 1.0, size=10_000)
    low, high = bootstrap_ci(x)
    assert low < 3.0 < high
    assert 0.03 < high - low < 0.05  # 2 * 1.96 * 1 / sqrt(10_000) = 0.039


def test_bootstrap_ci_width_shrinks_with_n():
    rng = np.random.default_rng(2)
    widths = [np.subtract(*bootstrap_ci(rng.normal(size=n))[::-1]) for n in (25, 100, 400)]
    assert widths[0] > widths[1] > widths[2]
    assert widths[2] < widths[0] / 2.5  # about 1 / sqrt(n): a factor 4 from 25 to 400


def test_bootstrap_ci_coverage_near_95_percent():
    rng = np.random.default_rng(3)
    hits = 0
    for rep in range(200):
        low, high = bootstrap_ci(rng.normal(0.0, 1.0, size=30), seed=rep)
        hits += low <= 0.0 <= high
    # the percentile bootstrap of a mean at n = 30 covers about 93-94%; binomial sd 1.6%
    assert 0.88 <= hits / 200 <= 0.98


def test_bootstrap_ci_lower_confidence_is_narrower_and_nested():
    x = np.random.default_rng(4).normal(size=50)
    low95, high95 = bootstrap_ci(x, confidence=0.95)
    low50, high50 = bootstrap_ci(x, confidence=0.5)
    assert low95 < low50 < np.mean(x) < high50 < high95


def test_bootstrap_ci_is_deterministic_for_a_seed():
    x = np.random.default_rng(5).normal(size=20)
    assert bootstrap_ci(x, seed=7) == bootstrap_ci(x, seed=7)
    assert bootstrap_ci(x, seed=7) != bootstrap_ci(x, seed=8)


def test_bootstrap_ci_edge_cases():
    assert bootstrap_ci([4.0]) == (4.0, 4.0)
    assert all(math.isnan(v) for v in bootstrap_ci([]))
    assert all(math.isnan(v) for v in bootstrap_ci([1.0, np.nan, 2.0]))  # low level: propagates


def test_bootstrap_ci_statistic_by_name_or_function_and_leading_axes():
    x = np.random.default_rng(6).normal(size=(3, 12))
    low, high = bootstrap_ci(x, "iqm")
    assert low.shape == high.shape == (3,)
    for row in range(3):  # each row is bootstrapped with the same resampled runs
        assert (low[row], high[row]) == bootstrap_ci(x[row], iqm)
    assert bootstrap_ci(x[0], "median") == bootstrap_ci(x[0], np.median)


@pytest.mark.parametrize("kwargs, field", [
    ({"confidence": 1.0}, "confidence"), ({"confidence": 0}, "confidence"),
    ({"n_boot": 0}, "n_boot"), ({"n_boot": 2.5}, "n_boot"), ({"statistic": "max"}, "statistic"),
])
def test_bad_arguments_name_themselves(kwargs, field):
    with pytest.raises(ValueError, match=f"^{field}: "):
        bootstrap_ci([1.0, 2.0], **kwargs)
    with pytest.raises(ValueError, match=f"^{field}: "):
        summarize([1.0, 2.0], **kwargs)


def test_stratified_bootstrap_keeps_group_sizes():
    # Constant groups: every resample is still three 1s and two 5s, so the mean is exact.
    assert stratified_bootstrap_ci([[1, 1, 1], [5, 5]], np.mean) == (2.6, 2.6)


def test_stratified_interval_is_narrower_than_pooled_when_groups_differ():
    rng = np.random.default_rng(8)
    groups = [rng.normal(0, 1, size=5), rng.normal(100, 1, size=5)]
    s_low, s_high = stratified_bootstrap_ci(groups, np.mean)
    p_low, p_high = bootstrap_ci(np.concatenate(groups), np.mean)
    point = np.mean(np.concatenate(groups))
    assert s_low < point < s_high
    assert (s_high - s_low) < (p_high - p_low) / 5  # pooled resamples mix the group sizes


def test_stratified_bootstrap_empty():
    assert all(math.isnan(v) for v in stratified_bootstrap_ci([[], []]))
    assert stratified_bootstrap_ci([[], [2.0, 2.0]]) == (2.0, 2.0)


# --- summaries --------------------------------------------------------------------------------


def test_summarize_drops_non_finite_values():
    s = summarize([1.0, 2.0, np.nan, 3.0, np.inf, 4.0])
    assert s.n == 4
    assert s.mean == 2.5 and s.iqm == 2.5 and s.median == 2.5
    assert s.statistic == "iqm" and s.point == s.iqm
    assert (s.ci_low, s.ci_high) == bootstrap_ci([1.0, 2.0, 3.0, 4.0], iqm)
    assert 1.0 <= s.ci_low <= s.point <= s.ci_high <= 4.0


def test_summarize_interval_is_for_the_chosen_statistic():
    x = np.random.default_rng(9).standard_exponential(size=40)
    for name, func in (("mean", np.mean), ("median", np.median), ("iqm", iqm)):
        s = summarize(x, statistic=name)
        assert (s.ci_low, s.ci_high) == bootstrap_ci(x, func)
        assert s.point == pytest.approx(func(x))


@pytest.mark.parametrize("x", [[], [np.nan, np.nan], [np.inf]])
def test_summarize_empty_gives_nans_and_n_zero(x):
    s = summarize(x)
    assert s.n == 0
    assert all(math.isnan(v) for v in (s.mean, s.iqm, s.median, s.ci_low, s.ci_high, s.point))


def test_summary_round_trips_through_a_dict():
    s = summarize([1.0, 5.0, 2.0], statistic="mean")
    assert Summary.from_dict(s.to_dict()) == s
    assert str(s).startswith("mean 2.667 [")


def test_statistic_name_accepts_names_and_functions():
    assert statistic_name(np.mean) == "mean" and statistic_name(iqm) == "iqm"
    with pytest.raises(ValueError, match="^statistic: "):
        statistic_name(np.max)


# --- paired differences -----------------------------------------------------------------------


def test_paired_difference_of_identical_arrays_is_exactly_zero():
    a = np.random.default_rng(10).normal(size=12)
    d = paired_difference(a, a.copy())
    assert d.n == 12
    assert (d.mean, d.iqm, d.ci_low, d.ci_high) == (0.0, 0.0, 0.0, 0.0)


def test_paired_difference_removes_the_shared_seed_noise():
    a = np.random.default_rng(11).normal(0, 50, size=10)  # large between-seed spread
    d = paired_difference(a + 2.0, a)
    assert d.ci_low == pytest.approx(2.0) and d.ci_high == pytest.approx(2.0)
    assert d.statistic == "mean" and d.point == pytest.approx(2.0)


def test_paired_difference_drops_incomplete_pairs_and_needs_equal_lengths():
    d = paired_difference([5.0, np.nan, 7.0, 1.0], [1.0, 2.0, np.nan, 0.0])
    assert d.n == 2 and d.mean == 2.5  # pairs (5, 1) and (1, 0)
    assert paired_difference([np.nan], [1.0]).n == 0
    with pytest.raises(ValueError, match="^b: "):
        paired_difference([1.0, 2.0], [1.0])


# --- probability of improvement ---------------------------------------------------------------


@pytest.mark.parametrize("a, b, expected", [
    ([5, 6, 7], [1, 2], 1.0),
    ([1, 2], [5, 6, 7], 0.0),
    ([3, 3], [3], 0.5),  # all ties
    ([1, 2, 3], [2], 0.5),  # below, tie, above: (0 + 0.5 + 1) / 3
    ([1, 2], [2, 3], 0.125),  # one tie among four pairs, the rest below
    ([1, np.nan, 4], [2, np.inf], 0.5),  # non-finite values dropped
])
def test_probability_of_improvement_hand_cases(a, b, expected):
    assert probability_of_improvement(a, b) == pytest.approx(expected)


def test_probability_of_improvement_is_complementary_and_nan_when_empty():
    rng = np.random.default_rng(12)
    a, b = rng.integers(0, 5, size=9), rng.integers(0, 5, size=7)  # with ties
    assert probability_of_improvement(a, b) + probability_of_improvement(b, a) == 1.0
    assert math.isnan(probability_of_improvement([], [1.0]))


def test_probability_of_improvement_ci():
    rng = np.random.default_rng(13)
    a, b = rng.normal(1.0, 1.0, size=15), rng.normal(0.0, 1.0, size=15)
    low, high = probability_of_improvement_ci(a, b)
    assert 0.0 <= low < probability_of_improvement(a, b) < high <= 1.0
    assert probability_of_improvement_ci([5, 6], [1, 2]) == (1.0, 1.0)
    assert all(math.isnan(v) for v in probability_of_improvement_ci([np.nan], [1.0]))


# --- learning curves --------------------------------------------------------------------------


def test_running_mean_partial_windows_and_nan():
    np.testing.assert_allclose(running_mean([10, 20, 30, 40], window=2), [10, 15, 25, 35])
    np.testing.assert_allclose(running_mean([1, 2, 3], window=5), [1, 1.5, 2])
    np.testing.assert_allclose(running_mean([1, np.nan, 3, 4, 5], window=2),
                               [1, np.nan, np.nan, 3.5, 4.5])
    with pytest.raises(ValueError, match="^window: "):
        running_mean([1.0], window=0)


def test_curves_on_grid_hand_made_curve():
    steps, values = [100, 250, 300, 500], [10, 20, 30, 40]
    grid = [50, 100, 200, 250, 299, 300, 499, 500, 1000]
    expected = [np.nan, 10, 10, 15, 15, 25, 25, 35, 35]  # running means of 2: 10, 15, 25, 35
    y = curves_on_grid([(steps, values)], grid, window=2)
    np.testing.assert_allclose(y, [expected])
    shuffled = curves_on_grid([([300, 100, 500, 250], [30, 10, 40, 20])], grid, window=2)
    np.testing.assert_allclose(shuffled, y)


def test_curves_on_grid_runs_that_ended_or_never_finished_an_episode():
    curves = [([100, 200], [1.0, 3.0]), ([], []), ([50], [7.0])]
    y = curves_on_grid(curves, [100, 200, 300], window=20, ends=[1000, 1000, 150])
    np.testing.assert_allclose(y, [[1, 2, 2], [np.nan] * 3, [7, np.nan, np.nan]])
    with pytest.raises(ValueError, match="^ends: "):
        curves_on_grid(curves, [100], ends=[1])
    with pytest.raises(ValueError, match="^curves: "):
        curves_on_grid([([1, 2], [1.0])], [100])


def test_curves_on_grid_last_value_is_the_final_return():
    rng = np.random.default_rng(14)
    steps = np.cumsum(rng.integers(10, 500, size=60))
    returns = rng.uniform(0, 500, size=60)
    y = curves_on_grid([(steps, returns)], make_grid(int(steps[-1]), 50))
    assert y[0, -1] == pytest.approx(returns[-20:].mean())  # Result.final_return's definition


def test_make_grid():
    np.testing.assert_allclose(make_grid(1000, 4), [250, 500, 750, 1000])
    with pytest.raises(ValueError, match="^points: "):
        make_grid(1000, 0)


def test_band_per_point_with_missing_runs():
    y = np.array([[1.0, 5.0, np.nan, np.nan],
                  [2.0, 5.0, 4.0, np.nan],
                  [3.0, 5.0, np.nan, np.nan],
                  [4.0, 5.0, 8.0, np.nan]])
    center, low, high = band(y, statistic="mean")
    np.testing.assert_allclose(center[:3], [2.5, 5.0, 6.0])
    assert math.isnan(center[3]) and math.isnan(low[3]) and math.isnan(high[3])
    assert (low[1], high[1]) == (5.0, 5.0)  # all runs equal: zero width
    assert (low[0], high[0]) == bootstrap_ci([1.0, 2.0, 3.0, 4.0], np.mean)
    assert (low[2], high[2]) == bootstrap_ci([4.0, 8.0], np.mean)  # only the finite runs


def test_band_iqm_center_and_one_run():
    y = np.random.default_rng(15).normal(size=(8, 30))
    center, low, high = band(y)
    np.testing.assert_allclose(center, iqm(y, axis=0))
    assert np.all(low <= center) and np.all(center <= high)
    one = band(y[:1])
    np.testing.assert_allclose(one[0], y[0])
    np.testing.assert_allclose(one[1], y[0])
    np.testing.assert_allclose(one[2], y[0])
    with pytest.raises(ValueError, match="^y: "):
        band(y[0])


# --- the verdict's interval and power (stats.t_interval, pairs_needed) -----------------------

def test_t_interval_matches_scipy_and_hand_values():
    from scipy import stats as sps

    from mplearn.lab.stats import paired_t_interval, t_interval

    t = t_interval([1, 2, 3, 4, 5])  # mean 3, sd sqrt(2.5), t_{0.975, 4} = 2.776445
    half = 2.7764451051977987 * math.sqrt(2.5) / math.sqrt(5)
    assert (t.n, t.mean) == (5, 3.0) and t.sd == pytest.approx(math.sqrt(2.5))
    assert (t.low, t.high) == pytest.approx((3 - half, 3 + half), rel=1e-12)
    rng = np.random.default_rng(0)
    fixed, broken = rng.normal(300, 40, 20), rng.normal(280, 40, 20)
    p = paired_t_interval(fixed, broken)
    ref = sps.ttest_1samp(fixed - broken, 0).confidence_interval(0.95)
    assert (p.low, p.high) == pytest.approx((ref.low, ref.high), rel=1e-10)


def test_t_interval_drops_non_finite_and_degenerate_cases():
    from mplearn.lab.stats import paired_t_interval, t_interval

    t = paired_t_interval([1.0, np.nan, 3.0, 5.0], [0.0, 1.0, np.inf, 1.0])  # pairs 0 and 3
    assert t.n == 2 and t.mean == 2.5
    assert math.isnan(t_interval([4.0]).low) and t_interval([4.0]).mean == 4.0
    assert t_interval([]).n == 0 and math.isnan(t_interval([]).mean)
    same = t_interval([7.0] * 6)  # no spread: a zero-width interval at the value
    assert (same.low, same.high, same.sd) == (7.0, 7.0, 0.0)
    with pytest.raises(ValueError, match="^broken: "):
        paired_t_interval([1, 2], [1])


@pytest.mark.parametrize("d, pairs", [(2.0, 5), (1.0, 10), (0.8, 15), (0.5, 34)])
def test_pairs_needed_for_a_paired_t_test_known_values(d, pairs):
    """Paired t-test, alpha 0.05 two-sided, 80% power (Cohen's tables; G*Power)."""
    from mplearn.lab.stats import pairs_needed, power_difference

    assert pairs_needed(10.0, 10.0 * d) == pairs
    assert power_difference(pairs, d, 1.0) >= 0.8 > power_difference(pairs - 1, d, 1.0)


def test_power_difference_matches_a_simulation():
    from scipy import stats as sps

    from mplearn.lab.stats import power_difference

    rng = np.random.default_rng(1)
    d = rng.normal(0.6, 1.0, size=(20_000, 12))
    ci = sps.ttest_1samp(d, 0, axis=1).confidence_interval(0.95)
    simulated = np.mean((ci.low > 0) | (ci.high < 0))
    assert power_difference(12, 0.6, 1.0) == pytest.approx(simulated, abs=0.015)


def test_equivalence_power_and_pairs_match_a_simulation():
    """The verdict's 'no effect': the 95% t-interval inside (-margin, margin), true 0."""
    from scipy import stats as sps

    from mplearn.lab.stats import pairs_needed, power_equivalence

    n = pairs_needed(1.0, 0.8, kind="equivalence")
    assert power_equivalence(n, 0.8, 1.0) >= 0.8 > power_equivalence(n - 1, 0.8, 1.0)
    rng = np.random.default_rng(2)
    d = rng.normal(0.0, 1.0, size=(20_000, n))
    ci = sps.ttest_1samp(d, 0, axis=1).confidence_interval(0.95)
    simulated = np.mean((ci.low > -0.8) & (ci.high < 0.8))
    assert power_equivalence(n, 0.8, 1.0) == pytest.approx(simulated, abs=0.02)
    # equivalence needs more pairs than detecting an effect of the same size
    assert n > pairs_needed(1.0, 0.8)


def test_pairs_needed_edges_and_bad_arguments():
    from mplearn.lab.stats import pairs_needed

    assert pairs_needed(0.0, 5.0) == 2 and pairs_needed(0.0, 5.0, kind="equivalence") == 2
    assert pairs_needed(1e6, 1.0, limit=500) == 500  # not reachable: the limit
    for kwargs, name in [({"margin": 0}, "margin"), ({"sd_diff": -1}, "sd_diff"),
                         ({"sd_diff": math.nan}, "sd_diff"), ({"power": 1.0}, "power"),
                         ({"kind": "both"}, "kind")]:
        args = {"sd_diff": 1.0, "margin": 1.0, **kwargs}
        with pytest.raises(ValueError, match=f"^{name}: "):
            pairs_needed(**args)


def test_detectable_difference_inverts_the_power():
    from mplearn.lab.stats import detectable_difference, power_difference

    for n in (5, 10, 20, 34):
        mde = detectable_difference(n, 40.0)
        assert power_difference(n, mde, 40.0) == pytest.approx(0.8, abs=1e-6)
    assert 1.6 < detectable_difference(5, 1.0) < 2.0  # d = 2 needs 5 pairs (d = 1.68 already)
    assert 0.45 < detectable_difference(34, 1.0) < 0.5  # d = 0.5 about 34
    assert math.isnan(detectable_difference(1, 1.0)) and detectable_difference(8, 0.0) == 0.0
