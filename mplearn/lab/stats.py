"""Statistics for few-seed RL comparisons: IQM, bootstrap intervals, paired differences.

Follows rliable (Agarwal et al. 2021, "Deep RL at the edge of the statistical precipice"):
interquartile mean as the point estimate, percentile bootstrap confidence intervals over runs
(stratified over groups), probability of improvement. numpy only.

NaN policy: the low-level functions (``iqm``, ``bootstrap_ci``, ``stratified_bootstrap_ci``)
propagate NaN like ``np.mean``. The functions that meet raw experiment data (``summarize``,
``paired_difference``, ``probability_of_improvement``, ``band``) drop non-finite values
first, because a crashed run can have no final return; they never raise on empty data.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

N_BOOT = 2000
CONFIDENCE = 0.95
WINDOW = 20  # episodes in a learning curve's running mean, as Result.final_return
MAX_BOOT_ELEMENTS = 4_000_000  # resampled values held at once; larger jobs go in chunks

Statistic = Callable[..., np.ndarray] | str

# THE interval of a verdict (``lab.verdict``), stated here once: the paired t-interval of the
# mean difference fixed - broken at 95%. At 5 to 40 pairs a percentile bootstrap of a mean is
# too narrow (about 0.6 of the t-interval's width at n = 5); the t-interval is exact for normal
# differences and what the power calculations below assume.
VERDICT_CONFIDENCE = 0.95
POWER = 0.8  # the power the pairs-needed figures aim at


def iqm(x, axis: int | None = None):
    """Interquartile mean: ``scipy.stats.trim_mean(x, 0.25, axis)``, as rliable computes it.

    Along ``axis`` (all values if None) of length n, the ``int(0.25 * n)`` smallest and as many
    largest values are cut and the rest averaged. So n = 4k keeps the middle 2k exactly; other
    n keep more than half: n = 5, 6, 7 cut one value at each end (mean of 3, 4, 5 values), and
    n < 4 cuts nothing (the plain mean). A NaN anywhere along ``axis`` gives NaN.
    """
    a = np.asarray(x, dtype=np.float64)
    if axis is None:
        a, axis = a.reshape(-1), 0
    axis = axis % a.ndim if a.ndim else 0
    n = a.shape[axis]
    if n == 0:
        return np.mean(a, axis=axis)  # nan (with numpy's empty-slice warning), like np.mean
    cut = int(0.25 * n)
    middle = np.sort(a, axis=axis).take(np.arange(cut, n - cut), axis=axis)
    out = np.mean(middle, axis=axis)
    nan = np.isnan(a).any(axis=axis)  # sort puts NaN last, where it could be cut away
    return np.where(nan, np.nan, out) if np.ndim(out) else (np.nan if nan else out)


STATISTICS: dict[str, Callable[..., np.ndarray]] = {
    "iqm": iqm, "mean": np.mean, "median": np.median}


def statistic_name(statistic: Statistic) -> str:
    """'iqm', 'mean' or 'median' for a name or one of those functions; ValueError otherwise."""
    if isinstance(statistic, str):
        if statistic in STATISTICS:
            return statistic
    else:
        for name, func in STATISTICS.items():
            if statistic is func:
                return name
    raise ValueError(f"statistic: must be one of {sorted(STATISTICS)} (a name or the "
                     f"function), got {statistic!r}")


def _statistic(statistic: Statistic) -> Callable[..., np.ndarray]:
    """A function f(x, axis=...): a known name, or any callable taking ``axis``."""
    if isinstance(statistic, str):
        return STATISTICS[statistic_name(statistic)]
    if not callable(statistic):
        raise ValueError(f"statistic: must be a name or a callable, got {statistic!r}")
    return statistic


def _check_boot(n_boot: int, confidence: float) -> None:
    if int(n_boot) != n_boot or n_boot < 1:
        raise ValueError(f"n_boot: must be a positive integer, got {n_boot!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence: must be in (0, 1), got {confidence!r}")


def _percentiles(boot: np.ndarray, confidence: float) -> tuple:
    """Percentile interval of bootstrap statistics along the last axis."""
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(boot, [tail, 100 - tail], axis=-1)
    return (float(low), float(high)) if np.ndim(low) == 0 else (low, high)


def _boot_stats(x: np.ndarray, func, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``func`` of ``n_boot`` resamples (with replacement, along the last axis) of ``x``:
    shape ``x.shape[:-1] + (n_boot,)``. All leading entries share each resample's indices."""
    n = x.shape[-1]
    per_resample = max(1, x.size)
    chunk = max(1, MAX_BOOT_ELEMENTS // per_resample)
    out = []
    for start in range(0, n_boot, chunk):
        idx = rng.integers(0, n, size=(min(chunk, n_boot - start), n))
        out.append(func(x[..., idx], axis=-1))  # x[..., idx]: [..., b, n]
    return np.concatenate(out, axis=-1)


def bootstrap_ci(x, statistic: Statistic = np.mean, n_boot: int = N_BOOT,
                 confidence: float = CONFIDENCE, seed: int = 0) -> tuple:
    """Percentile bootstrap interval ``(low, high)`` of ``statistic`` over the last axis.

    The last axis holds runs (seeds): they are resampled with replacement ``n_boot`` times and
    the interval is the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` percentiles of the
    resampled statistic. Leading axes (e.g. grid points) share the resampled runs and get one
    interval each (arrays). ``statistic`` is 'iqm', 'mean', 'median' or a callable taking
    ``axis``. One run gives a zero-width interval, none gives NaNs; NaN propagates.
    """
    _check_boot(n_boot, confidence)
    func = _statistic(statistic)
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 0:
        a = a.reshape(1)
    if a.shape[-1] == 0:
        nan = np.full(a.shape[:-1], np.nan)
        return (np.nan, np.nan) if a.ndim == 1 else (nan, nan.copy())
    boot = _boot_stats(a, func, int(n_boot), np.random.default_rng(seed))
    return _percentiles(boot, confidence)


def stratified_bootstrap_ci(groups: Sequence, statistic: Statistic = iqm,
                            n_boot: int = N_BOOT, confidence: float = CONFIDENCE,
                            seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` over all groups' values pooled, where
    each resample draws, within every group (task, condition) independently, as many values as
    the group has, with replacement: rliable's ``StratifiedBootstrap``. Groups keep their
    sizes in every resample; an empty group contributes nothing. NaN propagates."""
    _check_boot(n_boot, confidence)
    func = _statistic(statistic)
    arrays = [np.asarray(g, dtype=np.float64).reshape(-1) for g in groups]
    arrays = [g for g in arrays if g.size]
    if not arrays:
        return (np.nan, np.nan)
    rng = np.random.default_rng(seed)
    total = sum(g.size for g in arrays)
    chunk = max(1, MAX_BOOT_ELEMENTS // total)
    boot = []
    for start in range(0, int(n_boot), chunk):
        b = min(chunk, int(n_boot) - start)
        pooled = np.concatenate([g[rng.integers(0, g.size, size=(b, g.size))]
                                 for g in arrays], axis=1)  # [b, total]
        boot.append(func(pooled, axis=-1))
    return _percentiles(np.concatenate(boot), confidence)


def finite(x) -> np.ndarray:
    """The finite values of ``x``, flattened (NaN and inf dropped)."""
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    return a[np.isfinite(a)]


@dataclass(frozen=True)
class Summary:
    """Runs summarised: ``n`` finite values, their mean and IQM, and the bootstrap interval
    ``[ci_low, ci_high]`` of ``statistic`` (its point estimate: ``point``)."""

    n: int
    mean: float
    iqm: float
    ci_low: float
    ci_high: float
    statistic: str = "iqm"
    median: float = float("nan")
    confidence: float = CONFIDENCE

    @property
    def point(self) -> float:
        """The point estimate of ``statistic``, the value the interval is for."""
        return getattr(self, self.statistic)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Summary:
        return cls(**d)

    def __str__(self) -> str:
        name = "IQM" if self.statistic == "iqm" else self.statistic
        return (f"{name} {self.point:.4g} [{self.ci_low:.4g}, {self.ci_high:.4g}] "
                f"({self.confidence:.0%} CI, n={self.n})")


def _summary(values: np.ndarray, name: str, n_boot: int, confidence: float,
             seed: int) -> Summary:
    _check_boot(n_boot, confidence)
    if values.size == 0:
        nan = float("nan")
        return Summary(0, nan, nan, nan, nan, name, nan, confidence)
    low, high = bootstrap_ci(values, name, n_boot, confidence, seed)
    return Summary(int(values.size), float(np.mean(values)), float(iqm(values)), low, high,
                   name, float(np.median(values)), confidence)


def summarize(x, statistic: Statistic = "iqm", n_boot: int = N_BOOT,
              confidence: float = CONFIDENCE, seed: int = 0) -> Summary:
    """``Summary`` of one variant's runs (e.g. final returns): non-finite values are dropped
    (``n`` counts the rest) and the bootstrap interval is for ``statistic`` ('iqm', 'mean' or
    'median'). No finite value gives n=0 and NaNs. Bad arguments raise ValueError."""
    return _summary(finite(x), statistic_name(statistic), n_boot, confidence, seed)


def paired_difference(a, b, statistic: Statistic = np.mean, n_boot: int = N_BOOT,
                      confidence: float = CONFIDENCE, seed: int = 0) -> Summary:
    """``Summary`` of ``a[i] - b[i]`` over paired seeds (run i of both variants shares seed
    i), the bootstrap resampling pairs. A pair where either value is non-finite is dropped;
    ``n`` counts the pairs left. ``a`` and ``b`` must have equal length (ValueError)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    if a.size != b.size:
        raise ValueError(f"b: paired runs need equal lengths, got {a.size} and {b.size}")
    both = np.isfinite(a) & np.isfinite(b)
    return _summary(a[both] - b[both], statistic_name(statistic), n_boot, confidence, seed)


def _improvement(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """P(X > Y) + P(X = Y) / 2 along the last axis, for a [..., n] and b [..., m]."""
    sign = np.sign(a[..., :, None] - b[..., None, :])  # [..., n, m]
    return (sign.mean(axis=(-2, -1)) + 1) / 2


def probability_of_improvement(a, b) -> float:
    """P(X > Y) + 0.5 P(X = Y) for X drawn from ``a`` and Y from ``b``, over all n*m pairs:
    the Mann-Whitney U statistic divided by n*m (rliable's per-task probability of
    improvement). Non-finite values are dropped; NaN if either side is then empty."""
    a, b = finite(a), finite(b)
    if a.size == 0 or b.size == 0:
        return float("nan")
    return float(_improvement(a, b))


def probability_of_improvement_ci(a, b, n_boot: int = N_BOOT, confidence: float = CONFIDENCE,
                                  seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``probability_of_improvement``, resampling ``a`` and
    ``b`` independently (stratified, as rliable). NaNs if either side has no finite value."""
    _check_boot(n_boot, confidence)
    a, b = finite(a), finite(b)
    if a.size == 0 or b.size == 0:
        return (np.nan, np.nan)
    rng = np.random.default_rng(seed)
    chunk = max(1, MAX_BOOT_ELEMENTS // (a.size * b.size))
    boot = []
    for start in range(0, int(n_boot), chunk):
        n = min(chunk, int(n_boot) - start)
        ra = a[rng.integers(0, a.size, size=(n, a.size))]
        rb = b[rng.integers(0, b.size, size=(n, b.size))]
        boot.append(_improvement(ra, rb))
    return _percentiles(np.concatenate(boot), confidence)


def running_mean(values, window: int = WINDOW) -> np.ndarray:
    """Entry i: the mean of ``values[max(0, i - window + 1) : i + 1]``, so the first
    ``window - 1`` entries average fewer values (as ``Result.final_return`` does for a run with
    fewer than 20 episodes). A NaN value makes NaN the ``window`` means that contain it."""
    if int(window) != window or window < 1:
        raise ValueError(f"window: must be a positive integer, got {window!r}")
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.size == 0:
        return v
    padded = np.concatenate([np.zeros(int(window) - 1), v])
    sums = np.lib.stride_tricks.sliding_window_view(padded, int(window)).sum(axis=1)
    counts = np.minimum(np.arange(1, v.size + 1), int(window))
    return sums / counts


def curves_on_grid(curves: Sequence, grid, window: int = WINDOW,
                   ends: Sequence | None = None) -> np.ndarray:
    """Runs' learning curves on a common env-step grid: an array [runs, len(grid)].

    Each curve is ``(steps, values)``: e.g. the episode returns and the env step at which each
    episode ended (``Result.returns``). Exactly:

    1. points are put in step order (a stable sort; ties keep their order);
    2. the values become a running mean over the last ``window`` episodes (``running_mean``:
       the first ``window - 1`` points average the episodes so far);
    3. grid point g takes the running mean at the last episode that ended at or before g
       (step interpolation: the value stays until the next episode ends); NaN before the
       first episode, so a run with no finished episode is all NaN.
    4. With ``ends`` (one env-step count per run, e.g. ``Result.env_steps``), grid points after
       a run's end are NaN, so a run that stopped early is not carried forward as if it had
       gone on; without it, the last value holds to the end of the grid.

    At a grid point at or after a run's last episode, the value is that run's final return
    (mean of its last ``window`` episodes). ``window=1`` gives the raw values step-interpolated.
    """
    grid = np.asarray(grid, dtype=np.float64).reshape(-1)
    if ends is not None and len(ends) != len(curves):
        raise ValueError(f"ends: need one per curve ({len(curves)}), got {len(ends)}")
    out = np.full((len(curves), grid.size), np.nan)
    for i, (steps, values) in enumerate(curves):
        steps = np.asarray(steps, dtype=np.float64).reshape(-1)
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        if steps.size != values.size:
            raise ValueError(f"curves: run {i} has {steps.size} steps and {values.size} values")
        order = np.argsort(steps, kind="stable")
        steps, smooth = steps[order], running_mean(values[order], window)
        last = np.searchsorted(steps, grid, side="right") - 1  # -1: before the first episode
        seen = last >= 0
        out[i, seen] = smooth[last[seen]]
        if ends is not None:
            out[i, grid > ends[i]] = np.nan
    return out


def make_grid(total_steps: int, points: int = 100) -> np.ndarray:
    """``points`` evenly spaced env steps ending at ``total_steps`` (the first is
    ``total_steps / points``, not 0, where no episode has ended yet)."""
    if int(points) != points or points < 1:
        raise ValueError(f"points: must be a positive integer, got {points!r}")
    if not total_steps > 0:
        raise ValueError(f"total_steps: must be > 0, got {total_steps!r}")
    return np.linspace(total_steps / points, total_steps, int(points))


def band(y, statistic: Statistic = "iqm", n_boot: int = N_BOOT,
         confidence: float = CONFIDENCE, seed: int = 0) -> tuple:
    """Per grid point of ``y`` [runs, T]: ``(center, low, high)``, each of length T: the
    statistic over the runs with a finite value there, and its percentile bootstrap interval
    across those runs. A point with no finite run is NaN; with one run, a zero-width band."""
    _check_boot(n_boot, confidence)
    func = _statistic(statistic)
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 2:
        raise ValueError(f"y: must be 2-D [runs, T], got shape {y.shape}")
    T = y.shape[1]
    center, low, high = (np.full(T, np.nan) for _ in range(3))
    ok = np.isfinite(y)
    # Points with the same set of finite runs are bootstrapped together (one vectorized job).
    patterns, which = np.unique(ok.T, axis=0, return_inverse=True)
    for p, runs in enumerate(patterns):
        cols = np.flatnonzero(which.reshape(-1) == p)
        if not runs.any():
            continue
        vals = y[np.ix_(runs, cols)].T  # [points, runs]
        center[cols] = func(vals, axis=-1)
        low[cols], high[cols] = bootstrap_ci(vals, func, n_boot, confidence, seed)
    return center, low, high


# --- the verdict's interval and power ---------------------------------------------------------
# scipy is imported inside these functions: a sweep worker that only runs and stores runs (the
# device machine) does not need it.


@dataclass(frozen=True)
class TInterval:
    """The t-interval of the mean of ``n`` finite paired differences: ``mean`` and
    ``[low, high]`` at ``confidence``, ``sd`` their sample standard deviation (ddof 1)."""

    n: int
    mean: float
    sd: float
    low: float
    high: float
    confidence: float = VERDICT_CONFIDENCE


def t_interval(differences, confidence: float = VERDICT_CONFIDENCE) -> TInterval:
    """``mean +- t_{(1 + confidence) / 2, n - 1} * sd / sqrt(n)`` of the finite values of
    ``differences`` (NaN and inf dropped). Fewer than 2 values give NaN bounds (no spread can be
    estimated); identical values give a zero-width interval at their value."""
    from scipy import stats as sps

    if not 0 < confidence < 1:
        raise ValueError(f"confidence: must be in (0, 1), got {confidence!r}")
    d = finite(differences)
    n = int(d.size)
    nan = float("nan")
    if n == 0:
        return TInterval(0, nan, nan, nan, nan, confidence)
    mean = float(d.mean())
    if n == 1:
        return TInterval(1, mean, nan, nan, nan, confidence)
    sd = float(d.std(ddof=1))
    half = float(sps.t.ppf((1 + confidence) / 2, n - 1)) * sd / math.sqrt(n)
    return TInterval(n, mean, sd, mean - half, mean + half, confidence)


def paired_t_interval(fixed, broken, confidence: float = VERDICT_CONFIDENCE) -> TInterval:
    """``t_interval`` of ``fixed[i] - broken[i]`` (seed i of both arms); a pair where either
    value is non-finite is dropped. Unequal lengths raise ValueError."""
    a = np.asarray(fixed, dtype=np.float64).reshape(-1)
    b = np.asarray(broken, dtype=np.float64).reshape(-1)
    if a.size != b.size:
        raise ValueError(f"broken: paired runs need equal lengths, got {a.size} and {b.size}")
    return t_interval(a - b, confidence)


def power_difference(n: int, effect: float, sd: float, alpha: float = 1 - VERDICT_CONFIDENCE
                     ) -> float:
    """Power of the two-sided paired t-test at ``alpha`` (the ``1 - alpha`` t-interval
    excluding 0) with ``n`` pairs when the true mean difference is ``effect`` and the
    differences' sd is ``sd``: exact, from the noncentral t distribution."""
    from scipy import stats as sps

    if n < 2:
        return 0.0
    df, crit = n - 1, float(sps.t.ppf(1 - alpha / 2, n - 1))
    if sd == 0:
        return 1.0 if effect != 0 else alpha
    ncp = effect / (sd / math.sqrt(n))
    return _nct_sf(crit, df, ncp) + 1 - _nct_sf(-crit, df, ncp)


def power_equivalence(n: int, margin: float, sd: float, alpha: float = 1 - VERDICT_CONFIDENCE,
                      true_difference: float = 0.0) -> float:
    """Power of the verdict's equivalence claim with ``n`` pairs: the probability that the
    ``1 - alpha`` t-interval lies inside (-margin, +margin) when the true mean difference is
    ``true_difference``. That is TOST at ``alpha / 2`` per side (a 95% interval inside the
    margins = two one-sided tests at 2.5%), computed with the usual noncentral-t
    approximation ``P(T1 > c) + P(T2 < -c) - 1`` (it neglects the shared sd estimate; slightly
    conservative at small n), clipped at 0."""
    from scipy import stats as sps

    if n < 2:
        return 0.0
    if sd == 0:
        return 1.0 if abs(true_difference) < margin else 0.0
    df, crit = n - 1, float(sps.t.ppf(1 - alpha / 2, n - 1))
    se = sd / math.sqrt(n)
    upper = _nct_sf(crit, df, (true_difference + margin) / se)  # rejects "<= -margin"
    lower = 1 - _nct_sf(-crit, df, (true_difference - margin) / se)  # rejects ">= margin"
    return float(max(0.0, upper + lower - 1))


def _nct_sf(x: float, df: int, ncp: float) -> float:
    """P(T > x) for T noncentral t; where scipy's series gives NaN (a noncentrality far out,
    |ncp| > ~37), the normal limit, which is exact to many digits there."""
    from scipy import stats as sps

    out = float(sps.nct.sf(x, df, ncp))
    return out if math.isfinite(out) else float(sps.norm.sf(x - ncp))


def pairs_needed(sd_diff: float, margin: float, alpha: float = 1 - VERDICT_CONFIDENCE,
                 power: float = POWER, kind: str = "difference", limit: int = 100_000) -> int:
    """The fewest pairs (>= 2) reaching ``power`` with differences of sd ``sd_diff``:

    * ``kind="difference"``: the paired t-test (interval excluding 0) detects a true mean
      difference of ``margin``;
    * ``kind="equivalence"``: the interval lies inside (-margin, +margin) when the true
      difference is 0 (TOST with the observed sd).

    d = margin / sd = 1.0 needs 10 pairs for a difference at 80% power (2.0: 5, 0.5: 34).
    ``limit`` when even that many would not do."""
    if kind not in ("difference", "equivalence"):
        raise ValueError(f"kind: must be 'difference' or 'equivalence', got {kind!r}")
    if not margin > 0:
        raise ValueError(f"margin: must be > 0, got {margin!r}")
    if not (sd_diff >= 0 and math.isfinite(sd_diff)):
        raise ValueError(f"sd_diff: must be finite and >= 0, got {sd_diff!r}")
    if not 0 < power < 1:
        raise ValueError(f"power: must be in (0, 1), got {power!r}")

    def reached(n: int) -> bool:
        if kind == "difference":
            return power_difference(n, margin, sd_diff, alpha) >= power
        return power_equivalence(n, margin, sd_diff, alpha) >= power

    if reached(2):
        return 2
    if not reached(limit):
        return limit
    low, high = 2, limit  # power grows with n: bisect for the first n that reaches it
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if reached(mid) else (mid, high)
    return high


def detectable_difference(n: int, sd_diff: float, alpha: float = 1 - VERDICT_CONFIDENCE,
                          power: float = POWER) -> float:
    """The smallest true mean difference the paired t-test with ``n`` pairs detects with
    ``power`` (the minimum detectable effect), in the units of ``sd_diff``: e.g. about 2.0 sd
    at 5 pairs, 1.0 sd at 10. NaN for fewer than 2 pairs."""
    if n < 2 or not math.isfinite(sd_diff):
        return float("nan")
    if sd_diff == 0:
        return 0.0
    low, high = 0.0, sd_diff
    while power_difference(n, high, sd_diff, alpha) < power:  # bracket, then bisect
        low, high = high, 2 * high
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (low, mid) if power_difference(n, mid, sd_diff, alpha) >= power \
            else (mid, high)
    return high
