"""The garbage collector's settings while a job runs.

A job's process holds a large heap that lives as long as the job (imports, the SDK, the token
encoding's table of 200,000 entries), and the planner allocates millions of short-lived
objects. With the interpreter's defaults every full collection walks that whole long-lived
heap again: in a 2,400-call run about a second of CPU, 0.4 ms a call. So for the job's
duration what exists at its start is frozen out of the collector's reach (`gc.freeze`) and
young objects are collected in larger steps. Both are undone when the job ends.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

from migrate.context.encoding import o200k_base

JOB_THRESHOLDS = (10_000, 10, 10)
"""Allocations between young collections, and collections between older ones (the
interpreter's defaults are 700, 10, 10)."""


@contextlib.contextmanager
def long_lived_heap(*, planning: bool) -> Iterator[None]:
    """Run a job with its start-up heap frozen and young objects collected less often.

    `planning` loads the token encoding first (the planner needs it), so that it is frozen too.
    """
    if planning:
        o200k_base()
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(*JOB_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
