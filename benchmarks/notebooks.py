"""``python -m mplearn bench notebooks`` as a script (the README cites it).

    python benchmarks/notebooks.py [options]      # python benchmarks/notebooks.py --help

The benchmark lives in ``mplearn/bench/notebooks.py``; this prints the same one JSON object.
"""

import sys

from mplearn.__main__ import main

if __name__ == "__main__":  # spawn re-imports this module in every worker
    sys.exit(main(["bench", "notebooks", *sys.argv[1:]]))
