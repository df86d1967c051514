"""Notebooks: the wall time of each ``notebooks/*.ipynb`` under ``pytest --nbval-lax`` (every
cell runs; only cells marked ``# NBVAL_CHECK_OUTPUT`` are compared), and whether it passed.
No notebooks: an empty list.

pytest runs from the notebooks folder's parent, so the repository's pytest options (the
sanitizer of notebooks/sanitize.cfg) apply as in ``pytest notebooks/``; nbval starts each
kernel in the notebook's own folder.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from mplearn.bench.common import machine, parser

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def time_notebook(path: Path, cell_timeout: float | None = None) -> dict:
    command = [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-q",
               "-p", "no:cacheprovider", str(path)]
    if cell_timeout is not None:  # nbval stops its own kernel: nothing is left running
        command.append(f"--nbval-cell-timeout={cell_timeout}")
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          check=False, cwd=path.parent.parent)
    wall = time.perf_counter() - start
    last = proc.stdout.strip().splitlines()[-1:] or [""]
    return {"notebook": path.name, "wall_s": wall, "passed": proc.returncode == 0,
            "returncode": proc.returncode, "pytest": last[0]}


def run(directory: Path = NOTEBOOKS, cell_timeout: float | None = None) -> dict:
    started_on = machine()
    paths = sorted(directory.glob("*.ipynb"))
    results = [time_notebook(p, cell_timeout) for p in paths]
    return {"benchmark": "notebooks", "machine": started_on, "directory": str(directory),
            "load_avg_1m_after": machine()["load_avg_1m"],
            "notebooks": results, "total_wall_s": sum(r["wall_s"] for r in results),
            "passed": f"{sum(r['passed'] for r in results)}/{len(results)}"}


def build(argv: list[str]):
    ap = parser("notebooks", __doc__)
    ap.add_argument("--dir", type=Path, default=NOTEBOOKS, help="where the notebooks are")
    ap.add_argument("--cell-timeout", type=float, default=None, help="seconds per cell")
    args = ap.parse_args(argv)
    if not args.dir.is_dir():
        raise ValueError(f"dir: not a directory: {args.dir}")
    if args.cell_timeout is not None and not args.cell_timeout > 0:
        raise ValueError(f"cell_timeout: must be > 0, got {args.cell_timeout}")
    return lambda: run(args.dir, args.cell_timeout)
