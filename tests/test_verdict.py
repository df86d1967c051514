"""The verdict function (mplearn.lab.verdict): labels on synthetic paired differences, the
manipulation check, pairs spanning two machines, and the README table and data/ manifests
against what the function gives."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from mplearn.__main__ import main
from mplearn.issues.base import Manipulation, Margin, Scenario
from mplearn.lab import runstore
from mplearn.lab import verdict as vd

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data"
MARGIN = Margin(25.0, "test: 5% of a 0-500 range")


def check(acted: int, runs: int = 20) -> vd.ManipulationCheck:
    return vd.ManipulationCheck("copies kept", "", 1.0, 0.0, acted, runs)


def around(mean: float, sd: float = 10.0, n: int = 20) -> np.ndarray:
    """n differences with exactly this mean and sample sd."""
    z = np.random.default_rng(0).normal(size=n)
    return mean + sd * (z - z.mean()) / z.std(ddof=1)


# --- the rule ------------------------------------------------------------------------------------

@pytest.mark.parametrize("low, high, label, small", [
    (30, 60, "harmful", False),
    (25, 60, "harmful", False),  # low end on the margin: clears it
    (24.999, 60, "harmful", True),
    (1e-9, 5, "harmful", True),  # above 0 however close
    (0.0, 5, "no effect", False),  # touching 0 is not above it; inside the margins
    (-60, -30, "fix hurts", False),
    (-60, -25, "fix hurts", False),
    (-60, -24.999, "fix hurts", True),
    (-24.999, 24.999, "no effect", False),
    (-25, 10, "inconclusive", False),  # touching a margin is not inside it
    (-10, 25, "inconclusive", False),
    (-40, 40, "inconclusive", False),
    (math.nan, math.nan, "inconclusive", False),
])
def test_label_boundaries_are_exact(low, high, label, small):
    assert vd.label_for(low, high, 25.0) == (label, small)


def test_without_a_margin_nothing_is_no_effect_or_small():
    assert vd.label_for(-1, 1, None) == ("inconclusive", False)
    assert vd.label_for(1, 2, None) == ("harmful", False)
    assert vd.label_for(-2, -1, None) == ("fix hurts", False)


@pytest.mark.parametrize("mean, sd, label, small", [
    (60, 10, "harmful", False), (10, 5, "harmful", True), (-60, 10, "fix hurts", False),
    (-10, 5, "fix hurts", True), (0, 10, "no effect", False), (5, 80, "inconclusive", False)])
def test_every_label_is_reachable_from_paired_differences(mean, sd, label, small):
    d = around(mean, sd)
    v = vd.verdict_from_differences("target_sync", "c", d, MARGIN, "final return", check(20))
    ref = sps.ttest_1samp(d, 0).confidence_interval(0.95)
    assert v.ci == pytest.approx((ref.low, ref.high), rel=1e-10)
    assert (v.label, v.small, v.n_pairs) == (label, small, 20)
    assert v.mean == pytest.approx(mean) and v.sd == pytest.approx(sd)
    assert label in vd.LABELS
    if label == "inconclusive":  # with the pairs that would settle it, beyond those run
        assert v.pairs_needed is not None and v.pairs_needed > 20
        assert f"~{v.pairs_needed} pairs needed" in str(v)
    else:
        assert v.pairs_needed is None


def test_never_acted_whatever_the_interval():
    d = around(200, 10)  # a huge "effect"
    failed = vd.verdict_from_differences("x", "", d, MARGIN, "m", check(17))  # 85% < 90%
    assert failed.label == "never acted" and not failed.manipulation.passed
    passed = vd.verdict_from_differences("x", "", d, MARGIN, "m", check(18))  # 90% exactly
    assert passed.label == "harmful" and passed.manipulation.passed
    unread = vd.verdict_from_differences("x", "", d, MARGIN, "m", check(0, 0))  # none read
    assert unread.label == "never acted"


def test_the_line_says_what_the_verdict_rests_on():
    v = vd.verdict_from_differences("target_sync", "plan soft update", around(41.2, 40),
                                    MARGIN, "final return", check(20),
                                    machines=("dev, torch 2.13",),
                                    excluded=(("runs on two machines or torch builds", 1),))
    line = str(v)
    assert line.startswith(  # 22.5 < margin 25: small
        "target_sync (plan soft update): harmful (small) — fixed - broken = 41.2 [22.5, 59.9] ")
    for part in ("return points, 20 pairs", "margin 25 (test: 5% of a 0-500 range)",
                 "manipulation: copies kept 1 (fixed 0), acted in 20/20",
                 "excluded: 1 (runs on two machines", "on dev, torch 2.13"):
        assert part in line


# --- from stored runs ----------------------------------------------------------------------------

def kept(rec: dict) -> float | None:
    return rec["extras"].get("kept")


def positive(x: float) -> bool:
    return x > 0


def record(seed: int, ret: float, kept_copies: int, machine: str = "m1",
           torch: str = "2.13.0+cpu", status: str = "ok") -> dict:
    steps = list(range(100, 2100, 100))
    return {"status": status, "machine": {"label": machine}, "versions": {"torch": torch},
            "episodes": [[steps, [ret] * len(steps)]], "extras": {"kept": kept_copies},
            "learner": [{}], "actor": [{}], "seed": seed}


def store(root: Path, fixed: list[dict], broken: list[dict]) -> None:
    runs = root / "runs"
    runs.mkdir(parents=True)
    rows = []
    for variant, recs in (("fixed", fixed), ("broken", broken)):
        for rec in recs:
            name = f"{variant}{rec['seed']}.json"
            (runs / name).write_text(json.dumps(rec))
            rows.append({"variant": variant, "seed": rec["seed"], "file": f"../runs/{name}",
                         "status": rec["status"]})
    (root / "versioned_publish").mkdir()
    (root / "versioned_publish" / "manifest.json").write_text(json.dumps({
        "metric": {"label": "final return", "window": None},
        "pairs": [{"condition": "", "fixed": "fixed", "broken": "broken"}], "runs": rows}))


@pytest.fixture
def declared(monkeypatch):
    scenario = Scenario("versioned_publish", "test", "inline", margin=MARGIN,
                        manipulation=Manipulation("copies kept", kept, positive))
    monkeypatch.setattr(vd, "_scenario", lambda issue: scenario)
    return scenario


def test_a_pair_spanning_two_machines_is_excluded_and_counted(tmp_path, declared):
    fixed = [record(s, 300 + s, 0) for s in range(6)]
    broken = [record(s, 200, 3) for s in range(6)]
    broken[2] = record(2, 500, 3, machine="m2")  # another machine: out, however it did
    broken[4] = record(4, 500, 3, torch="2.11.0+cu130")  # another torch build: out
    store(tmp_path, fixed, broken)
    v = vd.verdict("versioned_publish", root=tmp_path)
    assert v.n_pairs == 4
    assert dict(v.excluded) == {"runs on two machines or torch builds": 2}
    assert v.mean == pytest.approx(np.mean([100, 101, 103, 105]))
    assert v.machines == ("m1, torch 2.13.0+cpu",)
    assert v.label == "harmful" and v.manipulation.acted == 4
    assert v.manipulation.broken_median == 3 and v.manipulation.fixed_median == 0
    assert vd.verdicts(tmp_path) == [v]


def test_a_crashed_run_counts_with_its_partial_curve(tmp_path, declared):
    """Stated behaviour: a crashed run's metric is the return of the episodes it finished."""
    fixed = [record(s, 300 + s, 0) for s in range(5)]
    broken = [record(s, 20, 3, status="crashed") for s in range(5)]
    store(tmp_path, fixed, broken)
    v = vd.verdict("versioned_publish", root=tmp_path)
    assert v.n_pairs == 5 and v.crashed == (0, 5)
    assert v.mean == pytest.approx(282) and v.label == "harmful"


def test_a_manipulation_that_never_showed_gives_never_acted(tmp_path, declared):
    fixed = [record(s, 300 + s, 0) for s in range(5)]
    broken = [record(s, 100, 3 if s == 0 else 0) for s in range(5)]  # acted in 1 of 5
    store(tmp_path, fixed, broken)
    v = vd.verdict("versioned_publish", root=tmp_path)
    assert v.label == "never acted" and v.manipulation.acted == 1
    with pytest.raises(ValueError, match="^condition: "):
        vd.verdict("versioned_publish", "nope", root=tmp_path)


def test_not_measured_yet(tmp_path):
    assert not vd.issue_verdicts("target_sync", tmp_path)
    assert str(vd.issue_verdicts("target_sync", tmp_path)) == "target_sync: not measured yet"
    with pytest.raises(FileNotFoundError):
        vd.verdict("target_sync", root=tmp_path)


def test_markdown_table_has_one_row_per_verdict():
    rows = [vd.verdict_from_differences("a", "", around(60), MARGIN, "m", check(20)),
            vd.verdict_from_differences("b", "x | y", around(0), None, "m", None)]
    lines = vd.markdown_table(rows).splitlines()
    assert lines[0] == ("| issue | condition | n pairs | fixed - broken [95% CI] | margin | "
                        "manipulation check | verdict |")
    assert len(lines) == 4 and lines[2].endswith("| **harmful** |")
    assert "x \\| y" in lines[3] and "| not declared | not declared |" in lines[3]


# --- the CLI ------------------------------------------------------------------------------------

def test_issues_cli_prints_the_functions_verdicts(tmp_path, capsys):
    assert main(["issues", "--data", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "target_sync: Target network not synced on publish  [verdict: not measured yet]" in out


def test_tables_only_runs_nothing_and_leaves_a_foreign_readme_alone(tmp_path, capsys):
    before = (REPO / "README.md").read_text()
    assert main(["reproduce", "--tables-only", "--out", str(tmp_path)]) == 0
    assert "README table not touched" in capsys.readouterr().out
    assert (REPO / "README.md").read_text() == before
    assert main(["reproduce", "--tables-only", "--out", str(tmp_path / "none")]) == 2


def test_write_readme_replaces_only_between_the_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{vd.README_START}\nold\n{vd.README_END}\nrest\n")
    assert vd.write_readme(readme, tmp_path)
    text = readme.read_text()
    assert text.startswith(f"intro\n{vd.README_START}\n") and text.endswith(
        f"{vd.README_END}\nrest\n")
    assert vd.between_markers(text) == vd.readme_table(tmp_path)
    assert not vd.write_readme(readme, tmp_path)  # unchanged the second time


# --- the repository: README and data/ ------------------------------------------------------------

def test_readme_table_is_the_generated_one():
    """Fails when the README's results differ from what the verdict function gives: rerun
    ``python -m mplearn reproduce --tables-only``."""
    text = (REPO / "README.md").read_text()
    assert vd.between_markers(text) == vd.readme_table(DATA)


def test_every_pair_in_data_ran_on_one_machine_and_torch_build():
    bad = []
    for path in sorted(DATA.glob("*/manifest.json")):
        manifest = json.loads(path.read_text())
        for pair in manifest["pairs"]:
            assert "seeds" in pair, f"{path}: old manifest (rewrite: python -m mplearn reproduce)"
            for row in pair["seeds"]:
                where = {}
                for arm in ("fixed", "broken"):
                    run = next(r for r in manifest["runs"] if r["variant"] == pair[arm]
                               and r["seed"] == row["seed"])
                    rec = runstore.read(path.parent / run["file"])
                    where[arm] = (rec["machine"]["label"], rec["versions"]["torch"])
                    assert (row[arm]["machine"], row[arm]["torch"]) == where[arm], path
                if where["fixed"] != where["broken"]:
                    bad.append(f"{path.parent.name} {pair['condition']!r} seed {row['seed']}")
    assert not bad, f"pairs on two machines or torch builds: {bad}"


def test_seeds_above_a_scenarios_stated_cap_are_refused():
    from mplearn.issues import scenario
    from mplearn.lab.experiments import select

    cap = scenario("target_sync").max_seeds
    assert select(["target_sync"], seeds=cap)[0].seeds == cap
    with pytest.raises(ValueError, match=f"^seeds: {cap + 1} is above target_sync's cap"):
        select(["target_sync"], seeds=cap + 1)


# --- single_thread: the verdict on speed -----------------------------------------------------

def _speed_file(root: Path, conditions: dict[str, list[tuple[float, float]]],
                threads: int = 2, label: str = "machine A") -> None:
    """A stored speed study: per condition (fixed, broken) updates/s per repeat."""
    entry = {"machine": {"label": label}, "versions": {"torch": "2.13.0+cpu"},
             "default_threads": [threads] * 2, "conditions": [
                 {"condition": c, "processes": 2, "broken_threads": threads,
                  "repeats": [{"fixed": f, "broken": b} for f, b in rows]}
                 for c, rows in conditions.items()]}
    (root / "single_thread").mkdir(parents=True, exist_ok=True)
    (root / "single_thread" / "speed.json").write_text(json.dumps({"entries": [entry]}))


def test_speed_verdicts_use_the_same_labels_in_percent_of_the_fixed_arm(tmp_path):
    rng = np.random.default_rng(0)
    _speed_file(tmp_path, {
        "slow": [(1000.0, 500.0 + rng.normal(0, 10)) for _ in range(20)],  # 50% slower
        "same": [(1000.0, 1000.0 + rng.normal(0, 10)) for _ in range(20)],  # within +-5%
        "faster": [(1000.0, 1200.0 + rng.normal(0, 10)) for _ in range(20)]})
    found = {v.condition: v for v in vd.issue_verdicts("single_thread", tmp_path)}
    assert found["slow"].label == vd.HARMFUL and 49 < found["slow"].mean < 51
    assert found["same"].label == vd.NO_EFFECT
    assert found["faster"].label == vd.FIX_HURTS
    assert all(v.unit == "% of fixed" and v.n_pairs == 20 for v in found.values())
    assert found["slow"].machines == ("machine A, torch 2.13.0+cpu",)
    table = vd.markdown_table(list(found.values()))
    assert "| `single_thread` | slow | 20 |" in table and "% of fixed" in table


def test_a_speed_study_whose_broken_workers_ran_one_thread_never_acted(tmp_path):
    _speed_file(tmp_path, {"1 process on 1 core": [(1000.0, 990.0)] * 20}, threads=1)
    (v,) = vd.issue_verdicts("single_thread", tmp_path)
    assert v.label == vd.NEVER_ACTED and not v.manipulation.passed


def test_the_speed_study_is_named_like_a_scenario_and_capped(tmp_path):
    from mplearn.issues.single_thread import SPEED
    from mplearn.lab import experiments as ex

    assert ex.select(["single_thread"]) == []  # a speed study, not a sweep
    assert [s.issue for s in ex.select(["single_thread", "step_counter"])] == ["step_counter"]
    with pytest.raises(ValueError, match="seeds: 61 is above single_thread's cap of 60"):
        ex.select(["single_thread"], seeds=SPEED.max_repeats + 1)
    assert list(SPEED.conditions(16)) == ["1 process on 16 cores", "16 processes on 16 cores"]
    assert list(SPEED.conditions(1)) == ["1 process on 1 core"]
    # budget: a study that would not end in time does not start
    assert ex.study_speed(tmp_path, budget_s=1.0) == "not started"
    assert not (tmp_path / "single_thread").exists()


def test_the_speed_study_measures_both_arms_and_keeps_other_machines(tmp_path):
    import dataclasses

    from mplearn.issues.single_thread import SPEED
    from mplearn.lab import speed

    _speed_file(tmp_path, {"x": [(1.0, 1.0)]}, label="another machine")
    quick = dataclasses.replace(SPEED, seconds=0.1)
    entry = speed.measure(tmp_path, {"label": "this machine"}, repeats=2, study=quick)
    stored = speed.load(tmp_path)
    assert [e["machine"]["label"] for e in stored["entries"]] == ["another machine",
                                                                  "this machine"]
    assert entry["default_threads"] == [entry["cores"]] * max(SPEED.conditions(
        entry["cores"]).values())  # torch's default in a spawned worker: one per core
    for cond in entry["conditions"]:
        assert [r["first"] for r in cond["repeats"]] == ["fixed", "broken"]
        assert all(r["fixed"] > 0 and r["broken"] > 0 for r in cond["repeats"])
    assert speed.stored_here(tmp_path, "this machine")
    assert {v.condition for v in vd.issue_verdicts("single_thread", tmp_path)} >= {"x"}
