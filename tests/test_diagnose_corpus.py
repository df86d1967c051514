"""The corpus (tests/corpus/): user-style training scripts, each run with every planted bug and
once correct, with mplearn.diagnose wired in as a user would. Every planted bug is named by its
issue and by nothing else; a correct script gets no finding at all."""

from __future__ import annotations

import importlib

import pytest
from corpus import SCRIPTS

from mplearn.bench.common import torch_threads
from mplearn.diagnose import checks

MODULES = {name: importlib.import_module(f"corpus.{name}") for name in SCRIPTS}
CASES = [(name, bug) for name, m in MODULES.items() for bug in (None, *m.BUGS)]


@pytest.fixture(autouse=True)
def one_thread():
    with torch_threads(1):  # the machine's cores are shared by the learner and its processes
        yield


def test_the_corpus_is_what_issue_14_asks_for():
    assert len(SCRIPTS) >= 10
    assert all(m.BUGS for m in MODULES.values())  # a planted bug in every script
    assert sum(len(m.BUGS) for m in MODULES.values()) >= 2 * len(SCRIPTS)


@pytest.mark.parametrize(("script", "bug"), CASES,
                         ids=[f"{s}-{b or 'correct'}" for s, b in CASES])
def test_each_bug_is_named_and_correct_code_is_clean(script, bug):
    findings = MODULES[script].main(bug)
    named = {f.issue for f in findings if not f.ok}
    expected = set() if bug is None else {MODULES[script].BUGS[bug]}
    assert named == expected, checks.report(findings)
    if bug is not None:
        assert all(f.hint for f in findings if not f.ok and f.issue != checks.NOT_CATALOGUED)
