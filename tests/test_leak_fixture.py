"""The leak fixture (``no_leaks`` in conftest.py) judges a test by its own /dev/shm entries only.

Each case runs a small test file in a pytest of its own (pytester, in a subprocess) with this
repository's conftest.py: one whose test runs while another program creates shared memory
beside it, one whose test leaks a semaphore of its own.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

CONFTEST = Path(__file__).with_name("conftest.py")

# Another program on the machine: on a signal file, it creates a shared memory segment and holds
# it until told to go; it also leaves a file of its own in /dev/shm that nobody maps.
FOREIGN = textwrap.dedent("""
    import os, sys, time
    from multiprocessing import shared_memory
    go, stop, ready = sys.argv[1:4]
    while not os.path.exists(go):
        time.sleep(0.01)
    segment = shared_memory.SharedMemory(create=True, size=4096)
    stray = f"/dev/shm/foreign-{os.getpid()}"
    open(stray, "wb").close()
    with open(ready, "w") as f:
        f.write(segment.name + "\\n" + os.path.basename(stray))
    while not os.path.exists(stop):
        time.sleep(0.01)
    segment.close()
    segment.unlink()
    os.unlink(stray)
""")

# The inner test: it starts the foreign program's work and waits until its entries exist, so
# they appear during the test and are still there at its teardown.
INNER = textwrap.dedent("""
    import os, time
    import pytest

    pytestmark = pytest.mark.usefixtures("no_leaks")

    def test_while_another_program_uses_shared_memory(tmp_path):
        go, ready = os.environ["FOREIGN_GO"], os.environ["FOREIGN_READY"]
        open(go, "w").close()
        deadline = time.monotonic() + 30
        while not os.path.exists(ready) or not open(ready).read():
            assert time.monotonic() < deadline, "the foreign program did not start"
            time.sleep(0.01)
        for name in open(ready).read().split():
            assert os.path.exists(f"/dev/shm/{name}")
""")

LEAKY = textwrap.dedent("""
    import multiprocessing as mp
    import pytest

    pytestmark = pytest.mark.usefixtures("no_leaks")
    KEPT = []

    def test_keeps_a_semaphore_alive():
        KEPT.append(mp.get_context("spawn").Lock())  # a named semaphore in /dev/shm
""")


def test_a_foreign_segment_created_during_a_test_does_not_fail_it(pytester, tmp_path):
    pytester.makeconftest(CONFTEST.read_text())
    pytester.makepyfile(test_inner=INNER)
    go, stop, ready = (str(tmp_path / n) for n in ("go", "stop", "ready"))
    foreign = subprocess.Popen([sys.executable, "-c", FOREIGN, go, stop, ready])
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("FOREIGN_GO", go)
            mp.setenv("FOREIGN_READY", ready)
            result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-o", "addopts=")
    finally:
        Path(stop).touch()
        foreign.wait(timeout=30)
    assert Path(ready).read_text(), "the foreign program never created its entries"
    result.assert_outcomes(passed=1)  # no teardown error for entries that were not its own


def test_a_test_that_leaks_its_own_semaphore_fails(pytester):
    pytester.makeconftest(CONFTEST.read_text())
    pytester.makepyfile(test_leaky=LEAKY)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-o", "addopts=")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*/dev/shm entries left behind: ['sem.mp-*"])
