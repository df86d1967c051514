"""``python -m mplearn bench peers`` as a script.

    python benchmarks/peers.py [options]      # python benchmarks/peers.py --help

The benchmark lives in ``mplearn/bench/peers.py``; this prints the same one JSON object.
"""

import sys

from mplearn.__main__ import main

if __name__ == "__main__":  # spawn re-imports this module in every worker
    sys.exit(main(["bench", "peers", *sys.argv[1:]]))
