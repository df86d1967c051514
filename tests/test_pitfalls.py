"""Each shared-memory pitfall shows with its fix off and not with it on (one writer process per
experiment, both variants against it)."""

from __future__ import annotations

import pytest

from mplearn.diagnose import checks
from mplearn.issues import replay_by_name, versioned_publish, write_before_publish

pytestmark = pytest.mark.usefixtures("no_leaks")


def test_a_buffer_pickled_by_value_leaves_the_parent_reading_zeros():
    r = replay_by_name.replay_pickled(rows=50)
    assert r.count == {"fixed": 50, "broken": 50}  # the counter is shared either way
    assert 0 < r.largest_obs["fixed"] <= 49
    assert r.largest_obs["broken"] == 0.0
    zero_rows = {v: checks.replay_batch(b)[0] for v, b in r.batches.items()}
    assert zero_rows["fixed"].ok and not zero_rows["broken"].ok
    assert "pickled by value" in str(r)


def test_only_the_plain_reader_copies_torn_weights():
    r = versioned_publish.torn_reads(reads=300)
    assert r.torn["fixed"] == 0
    assert r.torn["broken"] > 0
    assert 0 < r.fraction("broken") <= 1


def test_only_the_buffer_that_counts_first_exposes_unwritten_rows():
    r = write_before_publish.replay_race(rows=20_000)
    assert min(r.reads.values()) > 0
    assert r.unwritten["fixed"] == 0
    assert r.unwritten["broken"] > 0


def test_a_torn_copy_lies_between_two_close_versions():
    one = versioned_publish.torn_gap(updates_apart=1)
    ten = versioned_publish.torn_gap(updates_apart=10)
    assert 0 < one.relative_change < ten.relative_change < 0.5
    assert 0 < one.largest_change < ten.largest_change
    # The new version differs from the old more than the torn copy (half old) does.
    assert ten.new_like_old <= ten.torn_like_old <= 1.0
    assert versioned_publish.torn_gap(updates_apart=1) == one  # exact: one process, fixed seeds
