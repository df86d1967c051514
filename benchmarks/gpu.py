"""``python -m mplearn bench gpu`` as a script (the README cites it).

    python benchmarks/gpu.py [options]      # python benchmarks/gpu.py --help

The benchmark lives in ``mplearn/bench/gpu.py``; this prints the same one JSON object.
"""

import sys

from mplearn.__main__ import main

if __name__ == "__main__":  # spawn re-imports this module in every worker
    sys.exit(main(["bench", "gpu", *sys.argv[1:]]))
