"""The package's layout: four rooms whose dependencies point one way, and one module per issue.

Dependencies, from the top: ``__main__``, ``bench`` > ``lab`` > ``issues``, ``diagnose`` >
``core`` > ``envs``. Every import counts, those inside functions too.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import mplearn
from mplearn.core.fixes import Fixes
from mplearn.issues import NAMES, module

PACKAGE = Path(mplearn.__file__).parent
ROOT = PACKAGE.parent
# A room may import only rooms of a lower rank (and itself).
RANK = {"envs": 0, "core": 1, "issues": 2, "diagnose": 2, "lab": 3, "bench": 4, "__main__": 5}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """The mplearn modules ``path`` imports (``from mplearn.x import y`` counts as
    ``mplearn.x.y`` when that is a module, else ``mplearn.x``)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("mplearn")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mplearn"):
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                out.add(sub if sub in MODULES else node.module)
    return out


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
GRAPH = {name: _imports(path) - {name} for name, path in MODULES.items()}


def _room(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else None  # None: the package's own __init__


def test_rooms_exist_each_with_its_paragraph():
    for room in ("core", "issues", "lab", "diagnose"):
        doc = ast.get_docstring(ast.parse((PACKAGE / room / "__init__.py").read_text()))
        assert doc and len(doc.split()) > 30, f"{room}/__init__.py needs its paragraph"


def test_dependencies_point_one_way():
    wrong = []
    for name, targets in GRAPH.items():
        room = _room(name)
        if room is None:
            continue
        for target in targets:
            other = _room(target)
            if other is None or other == room:
                continue
            if RANK[other] >= RANK[room]:
                wrong.append(f"{name} imports {target}")
    assert wrong == []


def test_core_imports_no_other_room():
    core = [(n, t) for n, ts in GRAPH.items() if _room(n) == "core" for t in ts
            if _room(t) in ("issues", "lab", "diagnose", "bench")]
    assert core == []


def test_no_import_circle():
    # Edges between modules (a package's __init__ counts as a module); depth-first search.
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(GRAPH.get(node, ())):
            if nxt not in GRAPH or nxt == "mplearn":
                continue
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_fix_sites_live_in_core_only():
    marker = re.compile(r"#\s*FIX\((\w+)\)")
    outside = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
               if marker.search(p.read_text()) and p.relative_to(PACKAGE).parts[0] != "core"]
    assert outside == []


def test_every_fix_has_one_issue_module_and_every_module_one_fix():
    files = {p.stem for p in (PACKAGE / "issues").glob("*.py")} - {"__init__", "base", "measures",
                                                                     "shared_memory"}
    assert files == set(Fixes.names())
    assert set(NAMES) == set(Fixes.names()) and len(NAMES) == len(set(NAMES))


@pytest.mark.parametrize("name", Fixes.names())
def test_each_issue_module_has_all_its_parts(name):
    m = module(name)
    assert m.ENTRY.name == name
    for field in ("title", "mechanism", "where", "symptom", "diagnostic", "notebook"):
        assert getattr(m.ENTRY, field), f"{name}: ENTRY.{field} is empty"
    assert callable(m.check)
    scenarios = getattr(m, "SCENARIOS", ())
    reason = getattr(m, "NO_SCENARIO", "")
    assert bool(scenarios) != bool(reason), f"{name}: SCENARIOS or NO_SCENARIO (with a reason)"
    assert all(s.issue == name for s in scenarios)
    assert (ROOT / "notebooks" / f"{m.ENTRY.notebook}.ipynb").exists()
