"""``python -m mplearn bench throughput`` as a script (the README cites it).

    python benchmarks/throughput.py [options]      # python benchmarks/throughput.py --help

The benchmark lives in ``mplearn/bench/throughput.py``; this prints the same one JSON object.
"""

import sys

from mplearn.__main__ import main

if __name__ == "__main__":  # spawn re-imports this module in every worker
    sys.exit(main(["bench", "throughput", *sys.argv[1:]]))
