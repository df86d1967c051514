# %% [markdown]
# # 20 · How to read a verdict
#
# Every issue notebook ends with a verdict computed from `data/` by one function,
# `mplearn.lab.verdict.verdict`, the only source of verdict text in the kit (the catalogue,
# the README table and the notebooks all print what it returns). This notebook says what the
# verdict rests on: pairing, the interquartile mean, the interval, margins and equivalence,
# power, why a handful of seeds misleads, and manipulation checks. Every number below is
# computed by a cell, from the kit's own code and data. Run it top to bottom (Restart & Run
# All); it takes well under a minute.
#
# A verdict answers one question, stated before any run: *under condition C, does switching
# off fix F change the metric by at least the smallest amount a practitioner would care about
# (the margin)?* Its labels, printed from the code that applies them:

# %%
import inspect
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
from IPython import get_ipython
from IPython.display import Markdown, display
from matplotlib.figure import Figure
from scipy import stats as sps

from mplearn.issues import scenarios
from mplearn.issues.base import Margin
from mplearn.lab import experiments, plots, runstore, stats
from mplearn.lab import verdict as vd

get_ipython().run_line_magic("matplotlib", "inline")  # a Figure that is a cell's value shows
DATA = Path("../data")
for label, meaning in vd.LABELS.items():
    print(f"{label:>12}: {meaning}\n")
print(f"manipulation check passes at: {vd.ACTED_SHARE:.0%} of the broken runs")
print(f"interval: paired t-interval at {stats.VERDICT_CONFIDENCE:.0%}; "
      f"pairs-needed figures at {stats.POWER:.0%} power")

# %% [markdown]
# The rule itself, as the verdict function applies it once the manipulation check has passed
# (strict inequalities: an interval that touches 0 is not above it, one that touches a margin is
# not inside it):

# %%
print(inspect.getsource(vd.label_for))

# %% [markdown]
# ## 1 · Pairing
#
# Run *i* of the fixed arm and run *i* of the broken arm share their seed: the same environment
# seeds and the same initial weights (`System` seeds both from `Config.seed`). Until the switch
# acts, the two runs are the same computation, so their difference removes most of what makes
# one seed better than another. The verdict works on the per-seed differences fixed - broken.
# Below, one stored condition: the spread of each arm across seeds, the spread of the
# differences, and the interval each view gives (the paired t-interval against Welch's interval,
# which ignores the pairing).

# %%
ISSUE = "target_sync"  # 20 pairs on one machine; acting never reads the stale target, so
res = experiments.load(ISSUE, DATA)  # the twins stay identical until the restart
cond = "hard copy /100"
used = res.paired[cond]
f, b = np.array(used.fixed_values), np.array(used.broken_values)
paired = stats.t_interval(f - b)
welch = sps.ttest_ind(f, b, equal_var=False).confidence_interval(0.95)
print(f"{ISSUE} ({cond or 'default'}): {paired.n} pairs on {', '.join(used.machines)}")
print(f"  sd across seeds: fixed {f.std(ddof=1):.1f}, broken {b.std(ddof=1):.1f}; "
      f"correlation of the pairs {np.corrcoef(f, b)[0, 1]:.2f}")
print(f"  sd of the differences fixed - broken: {paired.sd:.1f}")
print(f"  paired t-interval:   {paired.mean:.1f} [{paired.low:.1f}, {paired.high:.1f}] "
      f"(width {paired.high - paired.low:.1f})")
print(f"  unpaired (Welch):    {paired.mean:.1f} [{welch.low:.1f}, {welch.high:.1f}] "
      f"(width {welch.high - welch.low:.1f})")

# %% [markdown]
# When the two arms' seeds move together (a positive correlation), the differences spread less
# than either arm and the paired interval is the narrower one; it is also the honest one for
# this design. A pair only stays a pair when both runs are made on one machine and one torch
# build: section 6 shows why, and the verdict excludes (and counts) any pair that is not.
#
# ## 2 · The interquartile mean (IQM)
#
# A learning curve and an arm's summary use the IQM across seeds (Agarwal et al. 2021,
# *rliable*): the mean of the middle half of the values. One seed that never learns, or one
# that solves the task early, moves the mean a lot and the IQM little; unlike the median it
# still averages half of the runs. The verdict's interval is for the *mean* of the paired
# differences, because that is what the t-interval and the power calculations are about.

# %%
x = np.sort(f)
outlier = x.copy()
outlier[0] = 0.0  # one seed that never learned
for name, v in (("fixed arm", x), ("one seed replaced by 0", outlier)):
    print(f"{name:>24}: mean {v.mean():6.1f}  median {np.median(v):6.1f}  "
          f"IQM {stats.iqm(v):6.1f}")

# %% [markdown]
# ## 3 · The interval
#
# The verdict's interval is the paired t-interval of the mean difference at 95%, stated once in
# `mplearn.lab.stats` (`t_interval`): mean ± t(0.975, n - 1) · sd / √n. A percentile bootstrap
# of a mean is a fine tool for large samples, but at a few seeds it is too narrow: a resample of
# five values repeats some of them, so it spreads less than new seeds would, and nothing
# corrects for the sd being estimated from five values. A simulation with normal differences
# (the case where the t-interval is exact):

# %%
rng = np.random.default_rng(0)
for n in (5, 10, 20):
    ratios, covered = [], []
    for _ in range(200):
        d = rng.normal(0.0, 1.0, n)
        lo, hi = stats.bootstrap_ci(d, np.mean, n_boot=1000, seed=int(rng.integers(1 << 30)))
        t = stats.t_interval(d)
        ratios.append((hi - lo) / (t.high - t.low))
        covered.append(lo <= 0.0 <= hi)
    print(f"n = {n:2d}: bootstrap width / t width, median {np.median(ratios):.2f}; "
          f"the bootstrap interval holds the true mean in {np.mean(covered):.0%} of samples "
          f"(the t-interval: 95% by construction)")

# %% [markdown]
# ## 4 · Margins and equivalence
#
# "No significant difference" is not "no effect": an interval from far below 0 to far above it
# fails to exclude 0 because it knows almost nothing. To claim *no effect* the kit asks for the
# whole interval inside (-margin, +margin), where the margin is the smallest effect of interest,
# declared with a reason before any run (`Scenario.margin`, in return points). That is an
# equivalence test (two one-sided tests). The same margin marks a real effect as *small* when
# its interval does not clear it. Four synthetic sets of 20 paired differences, one per label
# the interval can give, with a margin of 25:

# %%
margin = Margin(25.0, "an example: 5% of CartPole's 0-500 range")
examples = {"harmful": (60, 30), "fix hurts": (-20, 12), "no effect": (2, 25),
            "inconclusive": (10, 90)}
fig = Figure(figsize=(12, 2.8), layout="constrained")
for ax, (name, (mean, sd)) in zip(fig.subplots(1, 4), examples.items(), strict=True):
    z = np.random.default_rng(1).normal(size=20)
    d = mean + sd * (z - z.mean()) / z.std(ddof=1)
    v = vd.verdict_from_differences("example", name, d, margin, "final return")
    plots.paired_differences(ax, d, v.ci, margin.value)
    ax.set_title(v.text, fontsize="medium")
    print(v)
fig

# %% [markdown]
# ## 5 · Power: how many pairs settle a question
#
# How many pairs are enough depends on the spread of the differences and on the size of the
# effect that matters. For the paired t-test at 5% and 80% power, the pairs needed for a
# standardised effect d = effect / sd of the differences, to detect it, and to show equivalence
# when the truth is 0 with a margin of that size (`stats.pairs_needed`):

# %%
print(f"{'d':>5} {'to detect':>10} {'equivalence':>12}")
for d in (2.0, 1.0, 0.8, 0.5, 0.25):
    print(f"{d:5.2f} {stats.pairs_needed(1.0, d):10d} "
          f"{stats.pairs_needed(1.0, d, kind='equivalence'):12d}")

# %% [markdown]
# Turned around: with the spread each stored condition shows, the smallest difference its pairs
# could detect with 80% power (`stats.detectable_difference`), at 5 pairs and at the pairs it
# has. A condition whose detectable difference is far above its margin cannot say *no effect*;
# its verdict is *inconclusive*, with the pairs that would settle it.

# %%
rows = [v for v in vd.verdicts(DATA) if v.n_pairs >= 2 and np.isfinite(v.sd)]
print(f"{'issue (condition)':<44} {'pairs':>5} {'sd':>7} {'MDE@5':>7} {'MDE@n':>7} "
      f"{'margin':>7}  unit")
for v in rows:
    print(f"{v.where[:44]:<44} {v.n_pairs:5d} {v.sd:7.1f} "
          f"{stats.detectable_difference(5, v.sd):7.1f} "
          f"{stats.detectable_difference(v.n_pairs, v.sd):7.1f} "
          f"{v.margin.value if v.margin else float('nan'):7.1f}  {v.unit}")

# %% [markdown]
# ## 6 · Why a handful of seeds misleads: one configuration, two machines
#
# `data/runs/` holds runs of the same fixed configuration (every fix on, CartPole, the default
# knobs) made on different machines and sessions. Inline and lockstep compute the same thing
# for a seed on one machine, so the mode is left out of the comparison (async runs, which
# depend on timing, are left out). Below they are found by their stored spec and grouped by
# where they ran (machine label and torch version), then compared seed for seed.

# %%
groups: dict[str, dict] = defaultdict(lambda: defaultdict(dict))
for rec in runstore.records(DATA / "runs"):
    config = dict(rec["spec"]["config"])
    seed, mode = config.pop("seed"), config.pop("mode")
    if (rec["spec"]["restart_at"] is not None or not all(config["fixes"].values())
            or mode == "async"):  # async runs depend on timing: not one computation per seed
        continue
    where = f"{rec['machine']['label']}, torch {rec['versions']['torch']}, {mode}"
    value = experiments.run_values(None, rec)[0]
    groups[json.dumps(config, sort_keys=True)][where][seed] = value
same = [g for g in groups.values() if len(g) > 1]  # one config, several places
config_runs = max(same, key=lambda g: sum(len(s) for s in g.values()))
places = list(config_runs)
seeds = sorted(set.intersection(*(set(s) for s in config_runs.values())))
print(f"one configuration, {len(places)} places, seeds {seeds}; final return per seed:")
for where in places:
    print(f"  {where:<70} " + " ".join(f"{config_runs[where][s]:6.1f}" for s in seeds))
for i, a in enumerate(places):
    for b_ in places[i + 1:]:
        t = stats.t_interval([config_runs[a][s] - config_runs[b_][s] for s in seeds])
        print(f"\n  {a}\n- {b_}\n  = {t.mean:.1f} [{t.low:.1f}, {t.high:.1f}] per seed "
              f"({t.n} pairs, 95% t-interval)")

# %% [markdown]
# Nothing differs between these runs but where (and when) they ran, yet the per-seed
# differences are as large as several of the effects the kit measures, and their interval can
# exclude 0: a "difference" between a configuration and itself. CPU arithmetic, thread counts
# and library builds differ between machines, and a learning run amplifies the first rounding
# difference into a different trajectory; runs made in different sessions may also have run
# different code (a record carries the package version, not the commit). This is why a verdict
# uses only pairs whose two runs ran on one machine and one torch build.
#
# And it is why five seeds mislead (Henderson et al. 2018): draw two groups of five from these
# runs of one configuration, as if they were two algorithms, and see how far apart their means
# land, against the margin of 25 return points most CartPole scenarios declare:

# %%
pool = np.array([v for where in places for v in config_runs[where].values()])
rng = np.random.default_rng(0)
gaps, excluded_zero = [], 0
for _ in range(2000):
    pick = rng.permutation(pool.size)
    a, b_ = pool[pick[:5]], pool[pick[5:10]]
    gaps.append(a.mean() - b_.mean())
    ci = sps.ttest_ind(a, b_, equal_var=False).confidence_interval(0.95)
    excluded_zero += ci.low > 0 or ci.high < 0
gaps = np.abs(gaps)
print(f"{pool.size} runs of one configuration; 2,000 random splits into two groups of 5:")
print(f"  |difference of means|: median {np.median(gaps):.1f}, 90th percentile "
      f"{np.percentile(gaps, 90):.1f}; larger than 25 in {np.mean(gaps > 25):.0%} of splits")
print(f"  Welch's 95% interval excludes 0 in {excluded_zero / 2000:.0%} of splits")

# %% [markdown]
# With five seeds a difference of the size of the margin appears between a configuration and
# itself in a good share of splits, and the interval is so wide that a real effect of that size
# would mostly go unseen (section 5). The kit therefore runs at least 20 paired seeds per arm
# (`Scenario.seeds`), adds seeds only to conditions still *inconclusive*, up to a cap each
# scenario states in advance (`Scenario.max_seeds`), and reports the pairs that would settle
# what it could not.
#
# ## 7 · Manipulation checks: did the bug act?
#
# A comparison of fixed and broken says something about an issue only if, in the broken runs,
# the bug did what it does: torn copies kept and acted on, unwritten rows sampled, time-limit
# rows stored as terminal, the stale target read after a restart. Each scenario declares the
# recorded quantity that proves it (`Scenario.manipulation`: a measure of a stored run record
# and a test of its value), and the verdict runs it on every broken run of the pairs it uses.
# When the bug acted in fewer than the share printed at the top, the verdict is *never acted*,
# whatever the interval says. The declarations:

# %%
for s in scenarios():
    m = s.manipulation
    print(f"{s.issue:<22} {m.description if m else 'not declared'}"
          + (f" [{m.unit}]" if m and m.unit else ""))

# %% [markdown]
# ## 8 · Every verdict in `data/`
#
# The table the README holds between its markers, generated here by the same function: per
# issue and condition, the pairs used (and those excluded), fixed - broken with its 95%
# t-interval, the declared margin, the manipulation check (the broken runs' median, the fixed
# runs' in brackets, and how many broken runs acted), and the label.

# %%
display(Markdown(vd.markdown_table(vd.verdicts(DATA))))
