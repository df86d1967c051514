"""What goes wrong in the system under study: one module per learning issue.

Each module is named after its ``Fixes`` field and holds everything about that issue except
the FIX site (which lives in ``mplearn.core``, where the bug is): ``ENTRY``, its catalogue
entry (the review's claim in our words, the mechanism, where it bites, the symptom, the
diagnostic, the notebook); ``check()``, a tiny exact experiment that shows the mechanism with
the fix on and off; ``SCENARIOS``, the conditions behind ``data/`` (or ``NO_SCENARIO``, the
reason there are none); and the small experiments its notebook runs. This file is the
registry: the issues in catalogue order, lookup by name, and the catalogue table.

    from mplearn.issues import target_sync as issue
    issue.ENTRY.claim; issue.check(); issue.SCENARIOS
"""

from __future__ import annotations

import importlib
from types import ModuleType

from mplearn.issues.base import REVIEW, CheckResult, Issue, Scenario

# Catalogue order: the review's issues first, then those it missed.
NAMES: tuple[str, ...] = (
    "optimizer_binding", "target_sync", "train_mode", "shared_epsilon", "grad_clip",
    "batch_to_device", "step_counter", "single_target_update", "initial_state",
    "replay_by_name", "versioned_publish", "write_before_publish", "truncation_bootstrap",
    "single_thread", "worker_seeding", "throttle",
)


def module(name: str) -> ModuleType:
    """The module of issue ``name`` (a ``Fixes`` field)."""
    if name not in NAMES:
        raise ValueError(f"issue: unknown issue name {name!r}; known: {', '.join(NAMES)}")
    return importlib.import_module(f"mplearn.issues.{name}")


def issue(name: str) -> Issue:
    """The catalogue entry of issue ``name``."""
    return module(name).ENTRY


def all_issues() -> tuple[Issue, ...]:
    return tuple(issue(n) for n in NAMES)


def run_check(name: str) -> CheckResult:
    """Run issue ``name``'s mechanism check (fix on, fix off)."""
    return module(name).check()


def scenarios() -> tuple[Scenario, ...]:
    """Every scenario behind ``data/``, in catalogue order."""
    return tuple(s for n in NAMES for s in getattr(module(n), "SCENARIOS", ()))


def scenario(name: str) -> Scenario:
    """The (first) scenario of issue ``name``."""
    found = getattr(module(name), "SCENARIOS", ()) if name in NAMES else ()
    if not found:
        with_data = [s.issue for s in scenarios()]
        raise ValueError(f"name: no scenario for {name!r}; known: {', '.join(with_data)}")
    return found[0]


def __getattr__(attr: str):
    # ISSUES, SCENARIOS and BY_NAME built on first use: importing the registry stays cheap.
    if attr == "ISSUES":
        return all_issues()
    if attr == "SCENARIOS":
        return scenarios()
    if attr == "BY_NAME":
        return {s.issue: s for s in scenarios()}
    raise AttributeError(f"module 'mplearn.issues' has no attribute {attr!r}")


__all__ = ["NAMES", "REVIEW", "CheckResult", "Issue", "Scenario", "all_issues", "issue",
           "module", "run_check", "scenario", "scenarios"]
