"""A spawned child sees in-place writes to shared memory, never a later plain attribute."""

from __future__ import annotations

import pytest

from mplearn.issues import shared_epsilon as attribute_sharing

pytestmark = pytest.mark.usefixtures("no_leaks")


def test_the_child_sees_shared_memory_but_not_the_attribute():
    view = attribute_sharing.what_the_child_sees()
    assert view.child_pid != view.parent_pid
    assert view.child_before[0] == attribute_sharing.START
    assert view.reached() == [False, True, True, False, True]
    assert view.child_after[0] == attribute_sharing.START  # the value pickled at its start
