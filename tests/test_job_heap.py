"""A job changes the garbage collector's settings only while it runs."""

from __future__ import annotations

import gc

import pytest

from migrate.jobs.heap import JOB_THRESHOLDS, long_lived_heap


def test_the_heap_is_frozen_during_the_job_and_given_back_after() -> None:
    before = gc.get_threshold()
    with long_lived_heap(planning=False):
        assert gc.get_threshold() == JOB_THRESHOLDS
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_a_failing_job_gives_the_settings_back_too() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), long_lived_heap(planning=False):
        raise RuntimeError("the job failed")
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_planning_loads_the_token_encoding_before_freezing() -> None:
    from migrate.context.encoding import o200k_base

    with long_lived_heap(planning=True):
        assert o200k_base.cache_info().currsize == 1
