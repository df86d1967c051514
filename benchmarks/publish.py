"""``python -m mplearn bench publish`` as a script (the README cites it).

    python benchmarks/publish.py [options]      # python benchmarks/publish.py --help

The benchmark lives in ``mplearn/bench/publish.py``; this prints the same one JSON object.
"""

import sys

from mplearn.__main__ import main

if __name__ == "__main__":  # spawn re-imports this module in every worker
    sys.exit(main(["bench", "publish", *sys.argv[1:]]))
