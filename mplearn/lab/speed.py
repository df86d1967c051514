"""The stored speed study of ``single_thread`` (``issues.single_thread.SPEED``):
``<root>/single_thread/speed.json``, one entry per machine.

A speed measurement needs the machine to itself, so ``reproduce`` runs it alone, before any
sweep, and only on a machine that has no entry yet (like a run whose file exists, a stored
entry is kept: delete it to measure again). Entries from several machines sit side by side;
each is a condition of its own, never pooled with another machine's.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from pathlib import Path

from mplearn.core.metrics import library_versions
from mplearn.issues.single_thread import SPEED, SpeedStudy
from mplearn.lab import runstore

ISSUE = "single_thread"
FILE = "speed.json"


def path(root: str | Path = "data") -> Path:
    return Path(root) / ISSUE / FILE


def load(root: str | Path = "data") -> dict | None:
    """The stored study, or None when there is none."""
    file = path(root)
    return json.loads(file.read_text()) if file.exists() else None


def stored_here(root: str | Path, label: str) -> bool:
    found = load(root)
    return found is not None and any(e["machine"]["label"] == label for e in found["entries"])


def measure(root: str | Path, machine: dict, repeats: int | None = None, command: str = "",
            study: SpeedStudy = SPEED) -> dict:
    """Measure the study on this machine (``machine``: ``experiments.machine()``, the runs'
    label) and store it under ``root`` (replacing this machine's entry, keeping the others');
    returns the new entry."""
    entry = {"machine": machine, "versions": library_versions(),
             "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
             "command": command, **study.measure(repeats)}
    found = load(root) or {}
    entries = [e for e in found.get("entries", [])
               if e["machine"]["label"] != entry["machine"]["label"]]
    data = {"issue": ISSUE, "declared": {
        "metric": study.metric, "unit": study.unit, "margin": dataclasses.asdict(study.margin),
        "manipulation": study.manipulation, "repeats": study.repeats,
        "max_repeats": study.max_repeats, "seconds": study.seconds},
        "entries": [*entries, entry]}
    runstore.write_json(path(root), data)
    return entry


def differences(condition: dict) -> list[float]:
    """Per repeat: (fixed - broken) / fixed, in percent."""
    return [100.0 * (r["fixed"] - r["broken"]) / r["fixed"] for r in condition["repeats"]
            if r["fixed"] > 0]
