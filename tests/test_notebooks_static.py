"""The stored notebooks read without a kernel, and their prose quotes no verdict by hand.

Static checks of ``notebooks/*.ipynb`` (as ``notebooks/make.py`` built them) and of their
sources: every widget a notebook displays has its state in the notebook's metadata (so
JupyterLab before a run, nbconvert and nbviewer show the controls); every "Try it" cell also
leaves its figure as an ``image/png`` output (so a view without widget support shows it); and
no markdown cell of a source writes verdict numbers by hand (they come from ``data/``, printed
by a cell, so new data cannot leave the prose behind).
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
STORED = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
SOURCES = sorted((NOTEBOOKS / "src").glob("[0-9][0-9]_*.py"))
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
# A cell that builds one of these is a "Try it" (or the dashboard): it must leave an image.
TRY_IT = re.compile(r"\b(FixToggle|TryIt|Dashboard)\(")
# Verdict numbers written by hand: an IQM with a number, a confidence interval, a
# P(fixed > broken) or a "fixed - broken" difference with its value.
HAND_WRITTEN = [
    re.compile(r"\bIQMs? (of )?-?\d"),
    re.compile(r"\[-?\d+(\.\d+)?, -?\d+(\.\d+)?\]"),
    re.compile(r"P\(fixed > broken\)\)?\s*(=|of|is)?\s*\d"),
    re.compile(r"fixed - broken:?\s*(of\s*)?-?\d"),
]


def _cells_of():
    spec = importlib.util.spec_from_file_location("notebooks_make", NOTEBOOKS / "make.py")
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)
    return make.cells_of


def widget_models(nb) -> set[str]:
    """The model ids of the widgets the notebook's outputs display."""
    return {out["data"][WIDGET_VIEW]["model_id"]
            for cell in nb.cells if cell.cell_type == "code"
            for out in cell.get("outputs", []) if WIDGET_VIEW in out.get("data", {})}


def hand_written_verdicts(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines()
            if any(p.search(line) for p in HAND_WRITTEN)]


def test_there_are_notebooks_and_sources():
    assert STORED and SOURCES
    assert {p.stem for p in STORED} <= {p.stem for p in SOURCES} | {"20_how_to_read_a_verdict"}


@pytest.mark.parametrize("path", STORED, ids=lambda p: p.stem)
def test_widget_state_is_stored_for_every_displayed_widget(path):
    nb = nbformat.read(path, as_version=4)
    shown = widget_models(nb)
    if not shown:
        return
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    missing = shown - set(state)
    assert not missing, f"{path.name}: no stored state for widgets {sorted(missing)[:3]}"


@pytest.mark.parametrize("path", STORED, ids=lambda p: p.stem)
def test_every_try_it_cell_leaves_an_image(path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and TRY_IT.search(cell.source):
            images = [o for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]
            assert images, f"{path.name}: a Try-it cell has no image output:\n{cell.source}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.stem)
def test_no_hand_written_verdict_numbers_in_the_prose(path):
    cells = _cells_of()(path.read_text())
    found = [line for c in cells if c.cell_type == "markdown"
             for line in hand_written_verdicts(c.source)]
    assert not found, f"{path.name}: verdict numbers written by hand: {found}"


def test_the_prose_check_catches_what_it_should():
    assert hand_written_verdicts("broken IQM 22.4 after 25,000 env steps")
    assert hand_written_verdicts("a paired difference of 362.7 [344.2, 382.2]")
    assert hand_written_verdicts("every fixed run ended higher (P(fixed > broken) = 1.00)")
    assert hand_written_verdicts("fixed - broken -15.3, with a wide interval")
    assert not hand_written_verdicts("an IQM over 5 seeds; epsilon from 1.0 to 0.01")


# "The full-length results (25,000 env steps, 20 paired seeds, ...)": the prose's count of
# stored pairs, which must follow the scenario when its seeds change.
FULL_LENGTH_SEEDS = re.compile(r"full-length results \([^)]*?\b(\d+) paired seeds")


def test_the_stored_seed_count_in_the_prose_is_the_scenarios():
    from mplearn.issues import all_issues, scenario

    by_notebook = {i.notebook: i.name for i in all_issues()}
    quoted, wrong = 0, []
    for source in SOURCES:
        prose = " ".join(line.lstrip("# ") for line in source.read_text().splitlines())
        for n in map(int, FULL_LENGTH_SEEDS.findall(prose)):
            quoted += 1
            name = by_notebook.get(source.stem)
            if name is None or n != scenario(name).seeds:
                wrong.append(f"{source.stem}: {n} (scenario: "
                             f"{scenario(name).seeds if name else 'none'})")
    assert quoted >= 10 and not wrong, wrong
