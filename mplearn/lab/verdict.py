"""THE verdict: the only source of verdict text in the kit (catalogue, README, notebooks).

For one issue and condition it reads the paired runs in ``data/`` (the manifest
``<root>/<issue>/manifest.json`` lists them, the records are ``<root>/runs/<key>.json.gz``) and
returns a ``Verdict``. The rules (``LABELS`` says them in words, ``label_for`` in code):

1. the manipulation check: the scenario's ``Manipulation.measure`` on every broken run of the
   pairs used; if ``acted`` holds in fewer than ``ACTED_SHARE`` of them: **never acted**;
2. the interval: the paired t-interval of the mean of fixed - broken at 95%
   (``stats.t_interval``, stated once in ``stats``), seed i of one arm paired with seed i of
   the other;
3. interval above 0: **harmful** (*small* when its low end is below the margin); below 0:
   **fix hurts** (*small* when its high end is above -margin); inside (-margin, +margin):
   **no effect**; anything else: **inconclusive**, with the pairs a power calculation says
   would settle it (``stats.pairs_needed``).

Pairs (``experiments.paired_runs``): a pair whose two runs differ in machine label or torch
version is excluded (and counted): two machines running one config and seed differ by more
than several effects.

Crashed runs, stated explicitly: the metric of a crashed run is what ``run_values`` gives for
its partial curve: the mean of its last 20 episodes before the crash (final return), or, for a
window metric, the running-mean curve with its last value held after the crash (it is not
given ``ends``). So a learner that dies at its first update scores what its random-policy
episodes scored. A run with no finished episode has no value and its pair is excluded
(counted).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mplearn.issues import NAMES
from mplearn.issues import module as issue_module
from mplearn.issues.base import Manipulation, Margin, Scenario
from mplearn.lab import speed, stats
from mplearn.lab.experiments import paired_runs

ACTED_SHARE = 0.9  # the manipulation check passes when the bug acted in this share of runs
UNIT = "return points"

HARMFUL, FIX_HURTS, NO_EFFECT, INCONCLUSIVE, NEVER_ACTED = (
    "harmful", "fix hurts", "no effect", "inconclusive", "never acted")
LABELS: dict[str, str] = {
    HARMFUL: "the 95% interval of fixed - broken lies entirely above 0: the bug makes the "
             "metric worse. Marked *small* when the interval's low end is below the margin "
             "(the harm is real but may be smaller than the smallest effect of interest).",
    FIX_HURTS: "the 95% interval of fixed - broken lies entirely below 0: here the fix made "
               "the metric worse. Marked *small* when the interval's high end is above "
               "-margin.",
    NO_EFFECT: "the whole 95% interval lies strictly inside (-margin, +margin): any effect is "
               "smaller than the smallest one of interest (an equivalence result, not merely "
               "'no significant difference').",
    INCONCLUSIVE: "anything else: the interval holds 0 and reaches beyond a margin (or there "
                  "is no margin, or fewer than 2 pairs). The verdict gives the pairs a power "
                  "calculation says would settle it.",
    NEVER_ACTED: f"the manipulation check failed: the recorded quantity shows the bug acting "
                 f"in fewer than {ACTED_SHARE:.0%} of the broken runs, so the comparison says "
                 f"nothing about the issue (whatever the interval).",
}
NOT_MEASURED = "not measured yet"
# Not a verdict: the stored runs cannot answer the question at all. No pair of runs made on
# one machine and torch build, or runs made before the kit recorded the manipulation quantity.
NOT_MEASURED_HERE = "not measured"
README_START, README_END = "<!-- verdicts:start -->", "<!-- verdicts:end -->"


def label_for(low: float, high: float, margin: float | None) -> tuple[str, bool]:
    """(label, small) of an interval [low, high] of fixed - broken, the manipulation check
    having passed. Strict inequalities: an interval touching 0 is not above it, and one
    touching a margin is not inside it."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return INCONCLUSIVE, False
    if low > 0:
        return HARMFUL, margin is not None and low < margin
    if high < 0:
        return FIX_HURTS, margin is not None and high > -margin
    if margin is not None and -margin < low and high < margin:
        return NO_EFFECT, False
    return INCONCLUSIVE, False


@dataclass(frozen=True)
class ManipulationCheck:
    """The manipulation check of one condition: the declared quantity on the broken runs
    (median), on the fixed runs for contrast, and in how many broken runs the bug acted."""

    description: str
    unit: str
    broken_median: float  # NaN when no broken run could be read
    fixed_median: float
    acted: int  # broken runs whose value shows the bug acting
    runs: int  # broken runs checked (unreadable ones count as not acted)
    unreadable: int = 0

    @property
    def fraction(self) -> float:
        return self.acted / self.runs if self.runs else float("nan")

    @property
    def passed(self) -> bool:
        return self.runs > 0 and self.acted >= ACTED_SHARE * self.runs

    def __str__(self) -> str:
        if self.runs == 0:
            return f"{self.description}: no broken run to check yet"
        unit = f" {self.unit}" if self.unit else ""
        text = (f"{self.description} {_num(self.broken_median)}{unit} (fixed "
                f"{_num(self.fixed_median)}), acted in {self.acted}/{self.runs}")
        return text + (f" ({self.unreadable} unreadable)" if self.unreadable else "")


def check_manipulation(manipulation: Manipulation, broken: list[dict],
                       fixed: list[dict]) -> ManipulationCheck:
    """Run ``manipulation`` on the broken and fixed run records of the pairs used."""
    b = [manipulation.measure(r) for r in broken]
    f = [manipulation.measure(r) for r in fixed]
    readable = [x for x in b if x is not None]
    return ManipulationCheck(
        manipulation.description, manipulation.unit, _median(readable),
        _median([x for x in f if x is not None]),
        sum(bool(manipulation.acted(x)) for x in readable), len(b), len(b) - len(readable))


@dataclass(frozen=True)
class Verdict:
    issue: str
    condition: str  # "" for a scenario's single, unnamed condition
    label: str  # one of LABELS
    small: bool  # harmful / fix hurts whose interval does not clear the margin
    n_pairs: int
    mean: float  # of fixed - broken over the pairs
    ci: tuple[float, float]  # the 95% paired t-interval of that mean
    sd: float  # of the paired differences
    margin: Margin | None
    metric: str  # what is compared, e.g. "final return (mean of the last 20 episodes)"
    manipulation: ManipulationCheck | None  # None: the scenario declares none
    pairs_needed: int | None = None  # inconclusive: pairs that would settle it (80% power)
    max_seeds: int | None = None  # the cap on seeds the scenario states in advance
    machines: tuple[str, ...] = ()  # "<machine label>, torch <version>" of the pairs used
    excluded: tuple[tuple[str, int], ...] = ()  # (reason, pairs) not used
    crashed: tuple[int, int] = (0, 0)  # (fixed, broken) runs among the pairs that crashed
    unit: str = UNIT

    @property
    def text(self) -> str:
        """The label as printed: 'harmful (small)', 'inconclusive (~34 pairs needed)'."""
        if self.label == NOT_MEASURED_HERE:
            if self.n_pairs > 0:
                why = "its runs predate the record of the manipulation check"
            elif self.excluded and all(reason == "missing run" for reason, _ in self.excluded):
                why = "no runs yet"
            else:
                why = "no pair of runs on one machine and torch build"
            return f"{self.label} ({why})"
        if self.small:
            return f"{self.label} (small)"
        if self.label == INCONCLUSIVE and self.pairs_needed:
            return f"{self.label} (~{self.pairs_needed} pairs needed)"
        return self.label

    @property
    def where(self) -> str:
        return f"{self.issue} ({self.condition})" if self.condition else self.issue

    def difference_text(self) -> str:
        return f"{_num(self.mean)} [{_num(self.ci[0])}, {_num(self.ci[1])}]"

    def margin_text(self) -> str:
        return (f"{_num(self.margin.value)} ({self.margin.reason})" if self.margin
                else "not declared")

    def __str__(self) -> str:
        measured = (f"fixed - broken = {self.difference_text()} {self.unit}, "
                    if self.n_pairs else "")
        parts = [f"{self.where}: {self.text} — {measured}{self.n_pairs} pairs, "
                 f"margin {self.margin_text()}"]
        parts.append(f"manipulation: {self.manipulation or 'not declared'}")
        if self.crashed[0] or self.crashed[1]:
            parts.append(f"crashed: fixed {self.crashed[0]}, broken {self.crashed[1]} of "
                         f"{self.n_pairs}")
        if self.label == INCONCLUSIVE and self.pairs_needed and self.max_seeds:
            over = " (beyond it)" if self.pairs_needed > self.max_seeds else ""
            parts.append(f"cap {self.max_seeds} seeds{over}")
        if self.excluded:
            parts.append("excluded: " + ", ".join(f"{n} ({why})" for why, n in self.excluded))
        if self.machines:
            parts.append("on " + "; ".join(self.machines))
        return "; ".join(parts)

    def to_dict(self) -> dict:
        out = asdict(self)
        out.update(text=self.text, manipulation_passed=self.manipulation.passed
                   if self.manipulation else None)
        return out


class Verdicts(tuple):
    """An issue's verdicts, one per condition: prints one line each, or 'not measured yet'."""

    issue: str = ""

    def __new__(cls, issue: str, items=()):
        out = super().__new__(cls, items)
        out.issue = issue
        return out

    @property
    def summary(self) -> str:
        """The labels, per condition: 'harmful (copy path); no effect (default)'."""
        if not self:
            return NOT_MEASURED
        return "; ".join(f"{v.text} ({v.condition})" if v.condition else v.text for v in self)

    def __str__(self) -> str:
        return "\n".join(str(v) for v in self) if self else f"{self.issue}: {NOT_MEASURED}"


def verdict_from_differences(issue: str, condition: str, differences, margin: Margin | None,
                             metric: str, manipulation: ManipulationCheck | None = None,
                             unit: str = UNIT, machines: tuple[str, ...] = (),
                             excluded: tuple[tuple[str, int], ...] = (),
                             crashed: tuple[int, int] = (0, 0),
                             max_seeds: int | None = None) -> Verdict:
    """A Verdict from paired differences fixed - broken (one per pair, same machine), for any
    metric: returns from ``data/`` (``verdict``) or a speed figure (``single_thread``: per
    repeat, throughput with the fix minus without, on one machine, ``unit="env steps/s"``)."""
    t = stats.t_interval(differences)
    unrecorded = manipulation is not None and manipulation.runs > 0 \
        and manipulation.unreadable == manipulation.runs
    if t.n == 0 or unrecorded:
        label, small = NOT_MEASURED_HERE, False
    elif manipulation is not None and not manipulation.passed:
        label, small = NEVER_ACTED, False
    else:
        label, small = label_for(t.low, t.high, margin.value if margin else None)
    needed = None
    if label == INCONCLUSIVE and margin is not None and t.n >= 2:
        # The pairs that settle it at 80% power whichever is true: no effect (the interval
        # fits inside the margins) or an effect of the margin's size (it excludes 0).
        needed = max(stats.pairs_needed(t.sd, margin.value, kind="equivalence"),
                     stats.pairs_needed(t.sd, margin.value, kind="difference"))
    return Verdict(issue, condition, label, small, t.n, t.mean, (t.low, t.high), t.sd, margin,
                   metric, manipulation, needed, max_seeds, tuple(machines), tuple(excluded),
                   tuple(crashed), unit)


# --- from data/ -----------------------------------------------------------------------------------

def _scenario(issue: str) -> Scenario | None:
    """The issue's declared scenario (margins and manipulation live in code, not in data/)."""
    found = getattr(issue_module(issue), "SCENARIOS", ()) if issue in NAMES else ()
    return found[0] if found else None


def speed_verdicts(root: str | Path = "data") -> Verdicts:
    """``single_thread``'s verdicts: one per machine and condition of its stored speed study
    (``lab.speed``), each repeat a pair measured on one machine; the study's declarations are
    read from code (``issues.single_thread.SPEED``), not from the file."""
    found = speed.load(root)
    study = speed.SPEED
    out = []
    for entry in (found or {}).get("entries", []):
        threads = entry["default_threads"]
        where = f"{entry['machine']['label']}, torch {entry['versions']['torch']}"
        for cond in entry["conditions"]:
            check = ManipulationCheck(study.manipulation, "threads", _median(threads), 1.0,
                                      sum(t > 1 for t in threads), len(threads))
            out.append(verdict_from_differences(
                speed.ISSUE, cond["condition"], speed.differences(cond), study.margin,
                study.metric, check, unit=study.unit, machines=(where,),
                max_seeds=study.max_repeats))
    return Verdicts(speed.ISSUE, out)


def issue_verdicts(issue: str, root: str | Path = "data") -> Verdicts:
    """One Verdict per condition of ``issue`` stored under ``root`` (empty: not measured)."""
    if issue == speed.ISSUE:
        return speed_verdicts(root)
    path = Path(root) / issue / "manifest.json"
    if not path.exists():
        return Verdicts(issue)
    manifest = json.loads(path.read_text())
    scenario = _scenario(issue)
    out = []
    for pair in manifest["pairs"]:
        cond = pair["condition"]
        p = paired_runs(manifest, pair, path.parent)
        check = None
        if scenario is not None and scenario.manipulation is not None:
            check = check_manipulation(scenario.manipulation, p.broken, p.fixed)
        crashed = (sum(r["status"] == "crashed" for r in p.fixed),
                   sum(r["status"] == "crashed" for r in p.broken))
        out.append(verdict_from_differences(
            issue, cond, p.differences, scenario.margin_of(cond) if scenario else None,
            manifest["metric"]["label"], check, machines=tuple(p.machines),
            excluded=tuple(sorted(p.excluded.items())), crashed=crashed,
            max_seeds=scenario.max_seeds if scenario else None))
    return Verdicts(issue, out)


def verdict(issue_name: str, condition: str | None = None, root: str | Path = "data"
            ) -> Verdict:
    """THE verdict of ``issue_name`` under ``condition`` (default: its first condition)."""
    found = issue_verdicts(issue_name, root)
    if not found:
        raise FileNotFoundError(f"{Path(root) / issue_name / 'manifest.json'}: no results for "
                                f"{issue_name!r} (python -m mplearn reproduce {issue_name})")
    match = [v for v in found if condition in (None, v.condition)]
    if not match:
        raise ValueError(f"condition: {condition!r} is not one of "
                         f"{[v.condition for v in found]}")
    return match[0]


def verdicts(root: str | Path = "data") -> list[Verdict]:
    """Every issue x condition with data under ``root``, in catalogue order."""
    return [v for name in NAMES for v in issue_verdicts(name, root)]


# --- tables ---------------------------------------------------------------------------------------

COLUMNS = ("issue", "condition", "n pairs", "fixed - broken [95% CI]", "margin",
           "manipulation check", "verdict")


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(rows: list[Verdict]) -> str:
    """The results table: one row per issue x condition."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
    for v in rows:
        pairs = str(v.n_pairs)
        if v.excluded:
            pairs += " (" + ", ".join(f"{n} excluded: {why}" for why, n in v.excluded) + ")"
        margin = _num(v.margin.value) if v.margin else "not declared"
        check = "not declared" if v.manipulation is None else (
            f"{v.manipulation}: {'passed' if v.manipulation.passed else 'FAILED'}")
        difference = f"{v.difference_text()} {v.unit}"
        if v.n_pairs == 0:  # no pair yet: nothing measured, no NaN in the table
            difference = "-"
            if v.manipulation is not None:
                check = str(v.manipulation)
        cells = [f"`{v.issue}`", v.condition or "default", pairs, difference, margin, check,
                 f"**{v.text}**"]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def readme_table(root: str | Path = "data") -> str:
    """What the README holds between its markers: a note and the table of ``verdicts``."""
    return ("<!-- generated by `python -m mplearn reproduce --tables-only` from data/ "
            "(mplearn.lab.verdict): do not edit by hand -->\n"
            + markdown_table(verdicts(root)))


def replace_between_markers(text: str, table: str) -> str:
    """``text`` with what lies between README_START and README_END replaced by ``table``."""
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        raise ValueError(f"readme: no {README_START} ... {README_END} markers")
    return text[:start + len(README_START)] + "\n" + table + "\n" + text[end:]


def between_markers(text: str) -> str:
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        raise ValueError(f"readme: no {README_START} ... {README_END} markers")
    return text[start + len(README_START):end].strip("\n")


def write_readme(readme: str | Path, root: str | Path = "data") -> bool:
    """Regenerate ``readme``'s results table from ``root``; True when it changed."""
    path = Path(readme)
    text = path.read_text()
    new = replace_between_markers(text, readme_table(root))
    if new != text:
        path.write_text(new)
    return new != text


# --- numbers --------------------------------------------------------------------------------------

def _median(values: list[float]) -> float:
    return float(np.median(values)) if values else float("nan")


def _num(x: float) -> str:
    """3 significant digits ('41.2', '0.83', '-0.0042'); thousands with separators."""
    if x is None or not math.isfinite(x):
        return "nan"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.3g}"


__all__ = ["ACTED_SHARE", "LABELS", "ManipulationCheck", "Verdict", "Verdicts", "issue_verdicts",
           "label_for", "markdown_table", "readme_table", "speed_verdicts", "verdict",
           "verdict_from_differences", "verdicts", "write_readme"]
