"""The planner: reads the source chunk by chunk in a thread and stores each chunk's plans,
a bounded distance ahead of replay."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from typing import Any

from migrate.errors import MigrateError, SourceReadError
from migrate.jobs.progress import _Listener
from migrate.jobs.resume import SourceCheck
from migrate.plan.pipeline import MarkOf, PlanOutcome, marks_by_seq
from migrate.state.store import StateStore

PLAN_CHUNK = 100
"""Conversations planned (and stored) per transaction while a run streams its source."""
PLAN_AHEAD = 512
"""Unfinished conversations (pending or in progress) beyond which planning waits for replay,
at least `PLAN_AHEAD_PER_WORKER` per unit of concurrency: the planner stays a bounded
distance ahead, so it neither holds the GIL for a whole source nor fills the store first."""
PLAN_AHEAD_PER_WORKER = 16
PLAN_WAIT = 0.1
"""Seconds between two looks at how far replay has got while planning waits."""


def plan_ahead(concurrency: int) -> int:
    """How far planning may run ahead of replay with this many conversations in flight."""
    return max(PLAN_AHEAD, PLAN_AHEAD_PER_WORKER * concurrency)


class _Planner:
    """Reads the source chunk by chunk (in a thread) and stores each chunk's plans."""

    def __init__(
        self,
        store: StateStore,
        outcomes: Iterator[PlanOutcome],
        *,
        first_seq: int,
        check: SourceCheck | None = None,
        marks: MarkOf | None = None,
    ) -> None:
        self.store = store
        self.outcomes = outcomes
        self.seq = first_seq
        self.check = check
        """`resume`'s source check, which runs first, over the stored conversations."""
        self.marks = marks if check is None else check.mark
        """Where each record planned starts in the source, stored with it."""

    async def run(
        self,
        planned: asyncio.Event,
        stop: threading.Event,
        listener: _Listener,
        *,
        ahead: int = PLAN_AHEAD,
    ) -> None:
        """Plan until the source ends (then mark planning complete) or a stop is requested,
        waiting whenever `ahead` conversations are planned and not yet finished."""
        loop = asyncio.get_running_loop()
        # One thread only: some sources hold connections that must stay on one thread.
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="migrate-plan")

        async def read(step: Callable[[int], list[Any]]) -> list[Any]:
            try:
                return await loop.run_in_executor(executor, step, PLAN_CHUNK)
            except MigrateError:
                raise
            except Exception as exc:
                raise SourceReadError(
                    f"reading the source failed after {self.seq} records: {exc}",
                    hint="fix the source, then `migrate resume` the job",
                ) from exc

        try:
            check = self.check
            while check is not None and not check.done:
                if stop.is_set():
                    return
                if self.store.unfinished_count(at_most=ahead, below=check.bound) >= ahead:
                    await asyncio.sleep(PLAN_WAIT)
                    continue
                new = await read(check.step)
                if new:
                    listener.planned(new)
                planned.set()
            if check is not None:
                self.seq = check.next_seq
                self.outcomes = check.rest()
            while not stop.is_set():
                if self.store.unfinished_count(at_most=ahead, audits=False) >= ahead:
                    await asyncio.sleep(PLAN_WAIT)
                    continue
                chunk = await read(lambda count: _take(self.outcomes, count))
                if not chunk:
                    self.store.update_job(planning_complete=True)
                    listener.planning_done()
                    planned.set()
                    return
                numbered = list(enumerate(chunk, start=self.seq))
                self.seq += len(chunk)
                self.store.add_outcomes(numbered, marks_by_seq(self.marks, numbered))
                listener.planned(numbered)
                planned.set()
        finally:
            executor.shutdown(wait=False, cancel_futures=True)


def _take(outcomes: Iterator[PlanOutcome], count: int) -> list[PlanOutcome]:
    return list(islice(outcomes, count))
