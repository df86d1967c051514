"""``python -m mplearn bench solve`` as a script (the README cites it).

    python benchmarks/solve.py [options]      # python benchmarks/solve.py --help

The benchmark lives in ``mplearn/bench/solve.py``; this prints the same one JSON object.
"""

import sys

from mplearn.__main__ import main

if __name__ == "__main__":  # spawn re-imports this module in every worker
    sys.exit(main(["bench", "solve", *sys.argv[1:]]))
