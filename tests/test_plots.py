"""mplearn.lab.plots on synthetic data, Agg backend: the expected artists, labels and colours."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from mplearn.lab import plots, stats  # noqa: E402

# A crashed run (all NaN) must not even warn (mean of empty slice, invalid value, ...).
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

BLUE, VERMILLION = "#0072b2", "#d55e00"
GRID = stats.make_grid(20_000, 40)


def synthetic_curves(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    rise = 500 / (1 + np.exp(-(GRID - 10_000) / 2000))
    return {"fixed": rise + rng.normal(0, 20, size=(10, GRID.size)),
            "broken": 20 + rng.normal(0, 5, size=(10, GRID.size)),
            "crashed": np.full((10, GRID.size), np.nan)}


def axes() -> plots.Axes:
    return Figure(figsize=plots.FIGSIZE).subplots()


def legend_texts(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_fixed_and_broken_keep_their_colours_whatever_the_order():
    a = plots.variant_styles(["fixed", "broken"])
    b = plots.variant_styles(["other", "broken", "extra", "fixed"])
    for styles in (a, b):
        assert to_hex(styles["fixed"]["color"]) == BLUE
        assert to_hex(styles["broken"]["color"]) == VERMILLION
        assert styles["fixed"]["linestyle"] == "-" and styles["broken"]["linestyle"] == "--"
    colors = {to_hex(s["color"]) for s in b.values()}
    assert len(colors) == 4  # extra variants take further, distinct palette colours


@pytest.mark.parametrize("x, text", [(0, "0"), (500, "500"), (2500, "2.5k"), (10_000, "10k"),
                                     (50_000, "50k"), (1_200_000, "1.2M")])
def test_format_steps(x, text):
    assert plots.format_steps(x) == text


def test_learning_curves_lines_bands_legend_and_labels():
    curves = synthetic_curves()
    ax = plots.learning_curves(axes(), GRID, curves, title="effect")
    lines = ax.get_lines()
    assert len(lines) == 3
    assert [to_hex(line.get_color()) for line in lines[:2]] == [BLUE, VERMILLION]
    assert len(ax.collections) == 3  # one band per variant
    np.testing.assert_allclose(lines[0].get_ydata(), stats.iqm(curves["fixed"], axis=0))
    assert np.isnan(lines[2].get_ydata()).all()
    assert legend_texts(ax) == ["fixed (10 seeds)", "broken (10 seeds)",
                                "crashed (0 of 10 seeds)"]
    assert ax.get_legend().get_title().get_text() == "IQM, 95% CI"
    assert ax.get_xlabel() == "env steps (per agent)"
    assert ax.get_ylabel() == "return (mean of last 20 episodes)"
    assert ax.get_title() == "effect"
    assert ax.xaxis.get_major_formatter()(10_000, 0) == "10k"


def test_learning_curves_counts_partly_crashed_variants_and_checks_the_grid():
    y = synthetic_curves()["fixed"].copy()
    y[1] = np.nan
    ax = plots.learning_curves(axes(), GRID, {"fixed": y}, statistic="mean")
    assert legend_texts(ax) == ["fixed (9 of 10 seeds)"]
    with pytest.raises(ValueError, match="^curves: "):
        plots.learning_curves(axes(), GRID[:-1], {"fixed": y})


def summaries() -> dict[str, stats.Summary]:
    rng = np.random.default_rng(1)
    return {"fixed": stats.summarize(rng.normal(480, 10, size=5)),
            "broken": stats.summarize(rng.normal(25, 3, size=5)),
            "crashed": stats.summarize([np.nan, np.nan])}


def test_final_intervals_rows_values_and_empty_variant():
    s = summaries()
    ax = plots.final_intervals(axes(), s)
    # per variant with data: an interval line and a point marker
    assert len(ax.get_lines()) == 4
    point = ax.get_lines()[1]
    assert point.get_xdata()[0] == s["fixed"].iqm and to_hex(point.get_color()) == BLUE
    texts = [t.get_text() for t in ax.texts]
    assert texts[0].startswith(f"{s['fixed'].iqm:.3g}  [") and "no finished run (n=0)" in texts
    assert [t.get_text() for t in ax.get_yticklabels()] == ["fixed\nn=5", "broken\nn=5",
                                                            "crashed\nn=0"]
    assert ax.get_xlabel() == "final return (IQM, 95% CI)"
    low, high = ax.get_ylim()
    assert low > high  # first variant on top


def test_diagnostic_over_time_faint_runs_and_means():
    rng = np.random.default_rng(2)
    steps = np.arange(0, 20_000, 250)
    series = {"fixed": [(steps, rng.normal(4, 1, steps.size)) for _ in range(3)],
              "broken": [(steps, rng.normal(12, 2, steps.size)) for _ in range(2)]
              + [(np.array([]), np.array([]))]}  # a run that recorded nothing
    ax = plots.diagnostic_over_time(axes(), series, "policy lag (updates)", window=4)
    lines = ax.get_lines()
    assert len(lines) == 3 + 3 + 2  # every run faint, plus one mean per variant
    faint = [line for line in lines if line.get_alpha() == plots.RUN_ALPHA]
    assert len(faint) == 6
    assert legend_texts(ax) == ["fixed (mean of 3 runs)", "broken (mean of 3 runs)"]
    mean_fixed = lines[3].get_ydata()
    assert 3 < np.nanmean(mean_fixed) < 5
    assert ax.get_ylabel() == "policy lag (updates)" and ax.get_xlabel().startswith("env steps")


def test_comparison_figure_saves_a_png(tmp_path):
    fig = plots.comparison_figure(GRID, synthetic_curves(), summaries(), "issue: effect")
    assert isinstance(fig, Figure)
    left, right = fig.axes
    assert left.get_xlabel() == "env steps (per agent)"
    assert right.get_xlabel() == "final return (IQM, 95% CI)"
    assert fig._suptitle.get_text() == "issue: effect"
    path = tmp_path / "comparison.png"
    fig.savefig(path, dpi=60)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 10_000


def test_fewer_seeds_than_a_band_needs_draw_every_run_and_no_band():
    """A live figure from 2 seeds: each run a thin line, the statistic bold, no band."""
    two = {k: v[:2] for k, v in synthetic_curves().items() if k != "crashed"}
    ax = plots.learning_curves(axes(), GRID, two, statistic="mean")
    assert len(ax.collections) == 0  # no band
    lines = ax.get_lines()
    assert len(lines) == 2 * (2 + 1)  # per variant: 2 runs and the mean
    np.testing.assert_allclose(lines[2].get_ydata(), two["fixed"].mean(axis=0))
    assert "no band under 10 seeds" in ax.get_legend().get_title().get_text()
    assert legend_texts(ax) == ["fixed (2 seeds)", "broken (2 seeds)"]
    banded = plots.learning_curves(axes(), GRID, two, band=True)  # asked for: drawn
    assert len(banded.collections) == 2


def test_paired_differences_dots_interval_and_margin_band():
    d = np.array([41.0, 20.0, 65.0, np.nan, 38.0])
    ax = plots.paired_differences(axes(), d, (10.0, 72.0), margin=25.0)
    zero, dots, interval, mean = ax.get_lines()
    assert list(zero.get_xdata()) == [0, 0]
    assert dots.get_xdata().tolist() == [41.0, 20.0, 65.0, 38.0]  # NaN dropped
    assert interval.get_xdata().tolist() == [10.0, 72.0]
    assert mean.get_xdata()[0] == pytest.approx(41.0)
    band = ax.patches[0]  # the margin band: x from -25 to 25
    assert band.get_x() == -25.0 and band.get_width() == 50.0
    assert legend_texts(ax) == ["margin \u00b125", "each seed (4 pairs)", "mean 41 [10, 72]"]
    none = plots.paired_differences(axes(), d, (10.0, 72.0), margin=None)
    assert not none.patches  # no margin declared: no band


def test_effect_figure_curves_beside_the_differences(tmp_path):
    curves = synthetic_curves()
    fig = plots.effect_figure(GRID, {k: curves[k] for k in ("fixed", "broken")},
                              [400.0, 420.0, 390.0], (350.0, 450.0), 25.0, "issue: effect")
    left, right = fig.axes[:2]
    assert len(left.collections) == 2 and right.get_xlabel() == "fixed - broken (return points)"
    assert fig._suptitle.get_text() == "issue: effect"
    fig.savefig(tmp_path / "effect.png", dpi=50)
    assert (tmp_path / "effect.png").stat().st_size > 5_000
