"""The kit's plots: one look across every notebook.

"fixed" (the correct code) is always blue and solid, "broken" (the learning issue switched on)
always vermillion and dashed (Okabe-Ito colours, safe for colour-blind readers, and told apart
in grey by the dash); other variants take the next palette colours in the order given.
Functions draw on an Axes they are handed and return it; none calls ``plt.show()``.
``comparison_figure`` returns a ``Figure`` that pyplot does not track (nothing accumulates in
loops or tests): a notebook shows it as a cell's last expression or with ``display(fig)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from mplearn.lab import stats


def _show_figures_inline() -> None:
    """In a notebook kernel, show a bare ``Figure`` as a PNG. IPython registers that display
    only when the inline backend is activated (``%matplotlib inline``); the kit never uses
    pyplot, so without this every figure shows as ``<Figure size ... with 2 Axes>`` text, in
    JupyterLab and in the stored notebooks alike."""
    try:
        from IPython import get_ipython
        from IPython.core.pylabtools import select_figure_formats
    except ImportError:  # no IPython: nothing displays figures
        return
    shell = get_ipython()
    if shell is not None and getattr(shell, "kernel", None) is not None:
        select_figure_formats(shell, {"png"})


_show_figures_inline()

# Okabe & Ito (2008), "Color universal design".
OKABE_ITO = {"black": "#000000", "orange": "#E69F00", "sky_blue": "#56B4E9",
             "bluish_green": "#009E73", "yellow": "#F0E442", "blue": "#0072B2",
             "vermillion": "#D55E00", "reddish_purple": "#CC79A7"}
FIXED, BROKEN = "fixed", "broken"
VARIANT_COLORS = {FIXED: OKABE_ITO["blue"], BROKEN: OKABE_ITO["vermillion"]}
VARIANT_STYLES = {FIXED: "-", BROKEN: "--"}
# Yellow is left out: too pale on white for a line.
EXTRA_COLORS = [OKABE_ITO[c] for c in ("bluish_green", "reddish_purple", "orange", "sky_blue",
                                       "black")]
EXTRA_STYLES = ["-.", ":"]

STEPS_LABEL = "env steps (per agent)"
RETURN_LABEL = "return (mean of last 20 episodes)"
FINAL_LABEL = "final return (IQM, 95% CI)"
FIGSIZE = (10, 3.5)
BAND_ALPHA = 0.2
RUN_ALPHA = 0.25
STAT_LABELS = {"iqm": "IQM", "mean": "mean", "median": "median"}
# A bootstrap band from fewer runs is an artefact (2 runs give the band between them): below
# this many seeds the curves are drawn as lines, one per run, and no band.
MIN_BAND_SEEDS = 10
MARGIN_COLOR = "0.88"
DIFFERENCE_COLOR = OKABE_ITO["black"]


def variant_styles(labels: Sequence[str]) -> dict[str, dict]:
    """{label: {'color', 'linestyle'}}: fixed and broken always the same, others in order."""
    out, extra = {}, 0
    for label in labels:
        if label in VARIANT_COLORS:
            out[label] = {"color": VARIANT_COLORS[label], "linestyle": VARIANT_STYLES[label]}
        else:
            out[label] = {"color": EXTRA_COLORS[extra % len(EXTRA_COLORS)],
                          "linestyle": EXTRA_STYLES[extra % len(EXTRA_STYLES)]}
            extra += 1
    return out


def format_steps(x: float, _pos=None) -> str:
    """Tick text for env steps: 0, 500, 2.5k, 10k, 1.2M."""
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{suffix}"
    return f"{x:.0f}"


def _tidy(ax: Axes) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(True, color="0.9", linewidth=0.8)
    ax.set_axisbelow(True)


def _steps_axis(ax: Axes) -> None:
    ax.xaxis.set_major_formatter(FuncFormatter(format_steps))
    ax.set_xlabel(STEPS_LABEL)


def _seeds_label(label: str, runs: np.ndarray) -> str:
    """'fixed (5 seeds)', or '(3 of 5 seeds)' when some runs have no finite value at all."""
    total = runs.shape[0]
    alive = int(np.isfinite(runs).any(axis=1).sum()) if runs.size else 0
    count = f"{total}" if alive == total else f"{alive} of {total}"
    return f"{label} ({count} seed{'s' if total != 1 else ''})"


def learning_curves(ax: Axes, grid, curves: Mapping[str, np.ndarray], statistic: str = "iqm",
                    ylabel: str = RETURN_LABEL, title: str | None = None,
                    n_boot: int = stats.N_BOOT, confidence: float = stats.CONFIDENCE,
                    seed: int = 0, band: bool | None = None) -> Axes:
    """Per variant, the ``statistic`` across runs (a line) and its bootstrap interval (a
    shaded band) at each grid point; ``curves`` maps a label to its runs on ``grid``
    ([runs, len(grid)], e.g. from ``stats.curves_on_grid``). The legend gives the seeds.

    ``band`` None: a band only for variants with at least ``MIN_BAND_SEEDS`` runs; with fewer
    (a live figure from 2 seeds) every run is drawn as a thin line instead, and the legend
    says so."""
    grid = np.asarray(grid, dtype=np.float64)
    styles = variant_styles(list(curves))
    banded = []
    for label, y in curves.items():
        y = np.atleast_2d(np.asarray(y, dtype=np.float64))
        if y.shape[1] != grid.size:
            raise ValueError(f"curves: {label!r} has {y.shape[1]} points, the grid {grid.size}")
        style = styles[label]
        with_band = y.shape[0] >= MIN_BAND_SEEDS if band is None else band
        banded.append(with_band)
        if with_band:
            center, low, high = stats.band(y, statistic, n_boot, confidence, seed)
            ax.fill_between(grid, low, high, color=style["color"], alpha=BAND_ALPHA,
                            linewidth=0)
        else:
            center = _center(y, statistic)
            for run in y:
                ax.plot(grid, run, color=style["color"], linestyle=style["linestyle"],
                        linewidth=0.8, alpha=RUN_ALPHA * 2)
        ax.plot(grid, center, color=style["color"], linestyle=style["linestyle"], linewidth=1.8,
                label=_seeds_label(label, y))
    _steps_axis(ax)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    stat = STAT_LABELS.get(stats.statistic_name(statistic), statistic)
    legend = (f"{stat}, {confidence:.0%} CI" if all(banded) else
              f"{stat} (bold) and each run; no band under {MIN_BAND_SEEDS} seeds"
              if not any(banded) else f"{stat}; {confidence:.0%} CI from {MIN_BAND_SEEDS} seeds")
    ax.legend(title=legend, loc="best", fontsize="small", title_fontsize="small", frameon=False)
    _tidy(ax)
    return ax


def _center(y: np.ndarray, statistic) -> np.ndarray:
    """``statistic`` across the runs with a finite value at each point (NaN where none)."""
    func = stats.STATISTICS[stats.statistic_name(statistic)] if isinstance(statistic, str) \
        else statistic
    out = np.full(y.shape[1], np.nan)
    ok = np.isfinite(y)
    for j in np.flatnonzero(ok.any(axis=0)):
        out[j] = func(y[ok[:, j], j], axis=0)
    return out


def paired_differences(ax: Axes, differences, interval: tuple[float, float],
                       margin: float | None = None, label: str = "fixed - broken",
                       unit: str = "return points") -> Axes:
    """The paired differences fixed - broken, one dot per seed (jittered up and down so that
    none hides another), with their mean and its interval (``interval``: the verdict's,
    ``stats.t_interval``) below, against 0 and the margin band (-margin, +margin) shaded: the
    picture of the verdict's rule."""
    d = np.asarray(differences, dtype=np.float64).reshape(-1)
    d = d[np.isfinite(d)]
    if margin is not None:
        ax.axvspan(-margin, margin, color=MARGIN_COLOR, linewidth=0,
                   label=f"margin \u00b1{_number(margin)}")
    ax.axvline(0, color="0.45", linewidth=1)
    y = np.random.default_rng(0).uniform(-0.25, 0.25, d.size)  # jitter: dots do not hide
    ax.plot(d, y, "o", color=DIFFERENCE_COLOR, alpha=0.55, markersize=4, linestyle="none",
            label=f"each seed ({d.size} pair{'s' if d.size != 1 else ''})")
    low, high = interval
    if d.size:
        mean = float(d.mean())
        if np.isfinite(low) and np.isfinite(high):
            ax.plot([low, high], [-0.6, -0.6], color=DIFFERENCE_COLOR, linewidth=3,
                    solid_capstyle="butt")
        ax.plot([mean], [-0.6], "D", color=DIFFERENCE_COLOR, markersize=7,
                label=f"mean {_number(mean)} [{_number(low)}, {_number(high)}]")
    ax.set_ylim(0.6, -1.0)
    ax.set_yticks([])
    ax.set_xlabel(f"{label} ({unit})")
    # Under the axes: inside, it would hide dots.
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), fontsize="small", frameon=False)
    ax.spines[["top", "right", "left"]].set_visible(False)
    ax.grid(True, axis="x", color="0.9", linewidth=0.8)
    ax.set_axisbelow(True)
    return ax


def effect_figure(grid, curves: Mapping[str, np.ndarray], differences,
                  interval: tuple[float, float], margin: float | None, title: str,
                  statistic: str = "iqm", unit: str = "return points", figsize=FIGSIZE,
                  **curve_kwargs) -> Figure:
    """An issue's effect: learning curves (left; a band only from ``MIN_BAND_SEEDS`` seeds)
    and, beside them, the paired differences fixed - broken per seed with their mean, its
    interval and the margin band (right)."""
    fig = Figure(figsize=figsize, layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=[2.1, 1])
    learning_curves(left, grid, curves, statistic=statistic, **curve_kwargs)
    paired_differences(right, differences, interval, margin, unit=unit)
    fig.suptitle(title)
    return fig


def _number(x: float) -> str:
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:,.0f}"


def final_intervals(ax: Axes, summaries: Mapping[str, stats.Summary],
                    xlabel: str = FINAL_LABEL) -> Axes:
    """One row per variant (first at the top): the point estimate and its interval, annotated
    with the values; a variant without finite runs is marked 'no finished run'."""
    styles = variant_styles(list(summaries))
    labels, texts = list(summaries), []
    for row, label in enumerate(labels):
        s, style = summaries[label], styles[label]
        if s.n == 0 or not np.isfinite(s.point):
            ax.annotate("no finished run (n=0)", (0.5, row), xycoords=("axes fraction", "data"),
                        ha="center", va="center", color=style["color"], fontsize="small")
            continue
        ax.plot([s.ci_low, s.ci_high], [row, row], color=style["color"], linewidth=3,
                solid_capstyle="butt", alpha=0.6)
        ax.plot([s.point], [row], "o", color=style["color"], markersize=7)
        texts.append(ax.annotate(
            f"{_number(s.point)}  [{_number(s.ci_low)}, {_number(s.ci_high)}]",
            (s.point, row), xytext=(0, 7), textcoords="offset points", va="bottom",
            fontsize="small", color=style["color"]))
    ax.set_yticks(range(len(labels)),
                  [f"{label}\nn={summaries[label].n}" for label in labels])
    ax.set_ylim(len(labels) - 0.4, -0.6)  # first variant on top, room for the annotation
    ax.margins(x=0.1)
    # Text near an edge grows inwards, so that it stays inside the axes.
    low, high = ax.get_xlim()
    for text in texts:
        where = (text.xy[0] - low) / (high - low) if high > low else 0.5
        text.set_horizontalalignment("left" if where < 0.3 else "right" if where > 0.7
                                     else "center")
    ax.set_xlabel(xlabel)
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(True, axis="x", color="0.9", linewidth=0.8)
    ax.set_axisbelow(True)
    return ax


def diagnostic_over_time(ax: Axes, series: Mapping[str, Sequence], ylabel: str,
                         grid=None, window: int = 1, title: str | None = None,
                         logy: bool = False) -> Axes:
    """A diagnostic (policy lag, target distance, sigma norm, epsilon) over env steps: every
    run a faint line, and per variant the mean across runs (bold) on ``grid`` (default: 100
    points up to the last step seen). ``series`` maps a label to a list of runs, each
    ``(steps, values)``; ``window`` > 1 smooths each run by a running mean of that many
    records before the mean is taken (``stats.curves_on_grid``)."""
    styles = variant_styles(list(series))
    if grid is None:
        last = [np.max(s) for runs in series.values() for s, _ in runs if len(s)]
        grid = stats.make_grid(max(last), 100) if last and max(last) > 0 else np.array([])
    grid = np.asarray(grid, dtype=np.float64)
    for label, runs in series.items():
        style = styles[label]
        for steps, values in runs:
            smooth = stats.running_mean(values, window) if len(values) else values
            ax.plot(steps, smooth, color=style["color"], alpha=RUN_ALPHA, linewidth=0.8)
        y = stats.curves_on_grid(list(runs), grid, window=window)
        finite_runs = np.isfinite(y)
        counts = finite_runs.sum(axis=0)
        mean = np.where(counts > 0, np.where(finite_runs, y, 0).sum(axis=0)
                        / np.maximum(counts, 1), np.nan)
        ax.plot(grid, mean, color=style["color"], linestyle=style["linestyle"], linewidth=2,
                label=f"{label} (mean of {len(runs)} run{'s' if len(runs) != 1 else ''})")
    _steps_axis(ax)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    ax.legend(loc="best", fontsize="small", frameon=False)
    _tidy(ax)
    return ax


def comparison_figure(grid, curves: Mapping[str, np.ndarray],
                      summaries: Mapping[str, stats.Summary], title: str,
                      statistic: str = "iqm", figsize=FIGSIZE, **curve_kwargs) -> Figure:
    """The standard figure of an issue notebook: learning curves (left, wide) and the final
    returns' intervals (right), same colours; ``curve_kwargs`` go to ``learning_curves``."""
    fig = Figure(figsize=figsize, layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=[2.3, 1])
    learning_curves(left, grid, curves, statistic=statistic, **curve_kwargs)
    stat = {s.statistic for s in summaries.values()}
    name = STAT_LABELS.get(stat.pop(), "") if len(stat) == 1 else ""
    confidence = {s.confidence for s in summaries.values()}
    level = f"{confidence.pop():.0%} CI" if len(confidence) == 1 else "CI"
    final_intervals(right, summaries,
                    xlabel=f"final return ({name}, {level})" if name else "final return")
    fig.suptitle(title)
    return fig


def two_diagnostics_figure(left: Mapping[str, Sequence], right: Mapping[str, Sequence],
                           ylabels: tuple[str, str], titles: tuple[str, str], suptitle: str,
                           at: float | None = None, logy: tuple[bool, bool] = (False, False),
                           share: bool = False) -> Figure:
    """Two diagnostics over env steps side by side (``diagnostic_over_time`` each), with an
    optional dotted line at env step ``at`` (a restart, a switch)."""
    fig = Figure(figsize=FIGSIZE, layout="constrained")
    axes = fig.subplots(1, 2, sharex=share, sharey=share)
    for ax, series, ylabel, title, log in zip(axes, (left, right), ylabels, titles, logy,
                                              strict=True):
        diagnostic_over_time(ax, series, ylabel, title=title, logy=log)
        if at is not None:
            ax.axvline(at, color="0.4", linewidth=1, linestyle=":")
    fig.suptitle(suptitle)
    return fig
