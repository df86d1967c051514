"""Build the notebooks from their sources and execute them in place, stored with outputs.

    python notebooks/make.py            # every notebook
    python notebooks/make.py 04 05      # those whose name starts with 04 or 05
    python notebooks/make.py --no-run   # build only

Each ``notebooks/src/NAME.py`` holds cells separated by ``# %%`` lines (``# %% [markdown]`` for
prose, each line starting with ``# ``), the "percent" format editors understand. It becomes
``notebooks/NAME.ipynb``, executed top to bottom with a fresh kernel (Restart & Run All) against
the installed ``mplearn``; its wall time is printed. The widgets' state is stored with it, and
every "Try it" widget also leaves its figure as an ``image/png`` in its output, so the stored
notebook reads without a kernel and without widget support.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent


def cells_of(source: str) -> list:
    cells, kind, lines = [], None, []

    def flush() -> None:
        text = "\n".join(lines).strip("\n")
        if kind == "markdown":
            text = "\n".join(line[2:] if line.startswith("# ") else line.lstrip("#")
                             for line in text.splitlines())
            cells.append(nbformat.v4.new_markdown_cell(text))
        elif kind == "code" and text:
            cell = nbformat.v4.new_code_cell(text)
            if text.startswith("# NBVAL_RAISES_EXCEPTION"):  # nbclient runs on past it too
                cell.metadata["tags"] = ["raises-exception"]
            cells.append(cell)

    for line in source.splitlines():
        if line.startswith("# %%"):
            flush()
            kind, lines = ("markdown" if "[markdown]" in line else "code"), []
        else:
            lines.append(line)
    flush()
    return cells


def build(src: Path) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = cells_of(src.read_text())
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def execute(nb: nbformat.NotebookNode, timeout: int = 600) -> float:
    start = time.perf_counter()
    # store_widget_state: the widgets' last state goes into the notebook's metadata
    # ("widgets" / application/vnd.jupyter.widget-state+json), so a view without a kernel
    # (JupyterLab before a run, nbconvert --to html, nbviewer) shows the controls and the
    # figure drawn inside them.
    NotebookClient(nb, timeout=timeout, kernel_name="python3", store_widget_state=True,
                   resources={"metadata": {"path": str(HERE)}}).execute()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("prefixes", nargs="*", help="build only notebooks starting with these")
    ap.add_argument("--no-run", action="store_true", help="build without executing")
    args = ap.parse_args(argv)
    sources = sorted((HERE / "src").glob("*.py"))
    if args.prefixes:
        sources = [s for s in sources if s.stem.startswith(tuple(args.prefixes))]
    if not sources:
        print("error: prefixes: no notebook source matches", file=sys.stderr)
        return 2
    for src in sources:
        nb = build(src)
        seconds = 0.0 if args.no_run else execute(nb)
        target = HERE / f"{src.stem}.ipynb"
        nbformat.write(nb, target)
        print(f"{target.name}: {len(nb.cells)} cells" +
              ("" if args.no_run else f", executed in {seconds:.1f} s"), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
