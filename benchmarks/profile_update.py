"""The inline learner update and env step op by op, as a table (``bench profile`` as text).

    python benchmarks/profile_update.py [options]   # same options as bench profile --help
    python benchmarks/profile_update.py --json      # the one JSON object instead

The profiler lives in ``mplearn/bench/profile.py``.
"""

import json
import sys

from mplearn.bench import profile

if __name__ == "__main__":
    argv = [a for a in sys.argv[1:] if a != "--json"]
    out = profile.build(argv)()
    print(json.dumps(out) if "--json" in sys.argv[1:] else profile.table(out))
