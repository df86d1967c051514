"""The one-site rule: each Fixes field is read at exactly one `# FIX(name)` site."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import mplearn
from mplearn.core.fixes import Fixes
from mplearn.issues import all_issues

PACKAGE = Path(mplearn.__file__).parent
SOURCES = {p: p.read_text() for p in sorted(PACKAGE.rglob("*.py")) if p.name != "fixes.py"}
MARKER = re.compile(r"#\s*FIX\((\w+)\)")


def _markers() -> list[tuple[Path, str]]:
    return [(p, m) for p, text in SOURCES.items() for m in MARKER.findall(text)]


def test_fixes_has_fields_all_true_by_default():
    assert len(Fixes.names()) >= 15
    assert all(getattr(Fixes(), n) for n in Fixes.names())
    assert not any(getattr(Fixes.none(), n) for n in Fixes.names())


def test_every_marker_names_a_field():
    unknown = [(str(p), m) for p, m in _markers() if m not in Fixes.names()]
    assert unknown == []


@pytest.mark.parametrize("name", Fixes.names())
def test_each_field_has_exactly_one_marker_and_one_read(name):
    sites = [str(p.relative_to(PACKAGE)) for p, m in _markers() if m == name]
    assert len(sites) == 1, f"FIX({name}) markers: {sites}"
    reads = [(str(p.relative_to(PACKAGE)), text.count("\n", 0, m.start()) + 1)
             for p, text in SOURCES.items() for m in re.finditer(rf"fixes\.{name}\b", text)]
    assert len(reads) == 1, f"fixes.{name} is read at {reads}"
    (path, line), = reads
    marker_line = next(i for i, row in enumerate(SOURCES[PACKAGE / path].splitlines(), 1)
                       if f"FIX({name})" in row)
    assert 0 < line - marker_line <= 3, "the read must follow its FIX marker"


def test_the_catalogue_covers_every_field_once():
    assert sorted(i.name for i in all_issues()) == sorted(Fixes.names())
