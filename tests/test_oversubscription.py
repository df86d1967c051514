"""The thread table: a pool of spawned workers at torch's default thread count, timed per
(processes, threads). Timings are not asserted (benchmarks print them); the bookkeeping is."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mplearn.issues import single_thread as oversubscription
from mplearn.issues.single_thread import ThreadTable

pytestmark = pytest.mark.usefixtures("no_leaks")


def test_the_table_has_a_rate_for_every_processes_and_threads(subprocess_env):
    table = oversubscription.thread_table(processes=(1, 2), threads=(1, 2), seconds=0.1)
    assert set(table.rates) == {(1, 1), (1, 2), (2, 1), (2, 2)}
    assert all(rate > 0 for rate in table.rates.values())
    assert table.slowdown(2, 1) == 1.0
    assert "2 threads each" in str(table) and "x slower" in str(table)
    # The workers were started without set_num_threads(1): torch's default, as in a fresh
    # interpreter.
    fresh = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
                           capture_output=True, text=True, check=True, env=subprocess_env)
    assert table.default_threads == int(fresh.stdout)


def test_slowdown_is_relative_to_one_thread():
    table = ThreadTable(cores=2, default_threads=2, seconds=1.0,
                        rates={(1, 1): 100.0, (1, 2): 25.0})
    assert table.slowdown(1, 2) == 4.0
    assert "25 (4.0x slower)" in str(table)


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"seconds": 0}, "seconds"),
    ({"threads": (2, 4)}, "threads"),
    ({"processes": (0,)}, "processes"),
])
def test_bad_arguments_fail_before_any_process_starts(kwargs, field):
    with pytest.raises(ValueError, match=f"^{field}: "):
        oversubscription.thread_table(**kwargs)
