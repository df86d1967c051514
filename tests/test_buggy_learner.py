"""The buggy example script: each planted bug is caught by its mplearn check (and only that
one), the script as written dies with an error explain_error names, and the repaired script
passes every check."""

from __future__ import annotations

import pytest

from mplearn.bench.common import torch_threads
from mplearn.diagnose import buggy_learner as script
from mplearn.diagnose import checks

ALL = frozenset(script.BUGS)
STEPS = 100  # enough for a target copy, publishes and epsilon decays


@pytest.fixture(autouse=True)
def one_thread():
    with torch_threads(1):  # the machine's cores are shared: see notebook 12
        yield


def problems(findings) -> set[str]:
    return {f.issue for f in findings if not f.ok}


def test_the_script_as_written_dies_and_explain_error_names_the_batch():
    with pytest.raises(RuntimeError, match="same dtype") as caught:
        script.run(steps=STEPS)
    finding = checks.explain_error(caught.value)
    assert finding is not None and finding.issue == "batch_to_device"


@pytest.mark.parametrize("bug", sorted(ALL - {"float64_batch"}))
def test_each_bug_is_caught_by_its_check_alone(bug):
    _, learner, replay = script.run(steps=STEPS, fixed=ALL - {bug})
    assert problems(script.diagnose(learner, replay)) == {script.ISSUES[bug]}


def test_the_float64_batch_is_caught_before_and_at_the_step():
    shared, _, replay = script.run(steps=STEPS, fixed=ALL)
    findings = script.diagnose(script.Learner(shared, ALL - {"float64_batch"}), replay)
    assert problems(findings) == {"batch_to_device"}
    assert [f.issue for f in findings if not f.ok] == ["batch_to_device"] * 2  # check + error
    assert "same dtype" in findings[-1].measured


def test_the_repaired_script_passes_every_check():
    _, learner, replay = script.run(steps=STEPS, fixed=ALL)
    findings = script.diagnose(learner, replay)
    assert len(findings) == 9 and all(f.ok for f in findings), checks.report(findings)


def test_an_actor_process_never_sees_a_later_epsilon_attribute():
    _, buggy, _ = script.run(steps=STEPS, fixed=ALL - {"epsilon_attribute"})
    seen = script.epsilon_seen_by_actor(buggy, decays=10)
    assert seen["actor reads the attribute"] is not None  # a copy made at the start ...
    assert seen["actor reads the attribute"] > seen["learner's epsilon"]  # ... never updated
    assert seen["actor reads the shared value"] == 1.0  # nobody writes it
    _, fixed, _ = script.run(steps=STEPS, fixed=ALL)
    seen = script.epsilon_seen_by_actor(fixed, decays=10)
    assert seen["actor reads the attribute"] is None
    assert seen["actor reads the shared value"] == seen["learner's epsilon"] < 1.0


def test_an_unknown_bug_name_is_refused():
    with pytest.raises(ValueError, match="^fixed: unknown bug name"):
        script.run(fixed={"no_such_bug"})


def _named_semaphores_mapped() -> set[str]:
    with open("/proc/self/maps") as maps:
        return {line.split()[-1] for line in maps if "/dev/shm/sem." in line}


def test_the_script_holds_no_named_semaphore_that_a_killed_kernel_would_leave():
    # A notebook keeps what run() returns; Jupyter kills a kernel with its process group, the
    # resource tracker included, so a named semaphore alive then stays in /dev/shm for good.
    before = _named_semaphores_mapped()
    with torch_threads(1):
        kept = script.run(steps=STEPS, fixed=ALL)
    assert _named_semaphores_mapped() == before
    assert kept[1].shared_epsilon.value <= 1.0  # still readable: the value lives on
