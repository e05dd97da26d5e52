"""Job progress: turns replay events into `ProgressUpdate`s for the caller's callback."""

from __future__ import annotations

from typing import Literal

from migrate.jobs.models import ProgressCallback, ProgressUpdate
from migrate.plan.model import ConversationPlan
from migrate.plan.pipeline import PlanOutcome
from migrate.replay.ratelimit import RateLimiter
from migrate.state.records import Totals
from migrate.state.schema import Status
from migrate.state.store import StateStore


class _Listener:
    """Turns replay events into `ProgressUpdate`s for the caller's callback."""

    def __init__(
        self, callback: ProgressCallback | None, totals: Totals, *, planning_complete: bool
    ) -> None:
        self.callback = callback
        self.target: str | None = None
        self.job_id: str | None = None
        self.known = totals.total
        self.planning_complete = planning_complete
        self.done = totals.migrated + totals.failed + totals.skipped
        self.items_planned = totals.items_planned
        self.landed = totals.items_landed
        self.limiter: RateLimiter | None = None

    def started(self, target: str, job_id: str) -> None:
        self.target = target
        self.job_id = job_id
        self._send("started")

    def planned(self, outcomes: list[tuple[int, PlanOutcome]]) -> None:
        self.known += len(outcomes)
        for _, outcome in outcomes:
            if isinstance(outcome, ConversationPlan) and outcome.items:
                self.items_planned += len(outcome.items)
            else:
                self.done += 1
        self._send("progress")

    def planning_done(self) -> None:
        self.planning_complete = True
        self._send("progress")

    def refresh(self, store: StateStore) -> None:
        """A worker that does not plan learns how far planning has got (cheap reads only)."""
        known = store.known_count()
        if known != self.known:
            self.known = known
            self.planning_complete = store.job().planning_complete
            self._send("progress")

    def items_landed(self, count: int) -> None:
        self.landed += count
        self._send("progress")

    def conversation_finished(self, status: Status) -> None:
        self.done += 1
        self._send("progress")

    def finished(self) -> None:
        self._send("finished")

    def _send(self, event: Literal["started", "progress", "finished"]) -> None:
        if self.callback is None:
            return
        self.callback(
            ProgressUpdate(
                event=event,
                job_id=self.job_id,
                target=self.target,
                conversations_known=self.known,
                planning_complete=self.planning_complete,
                conversations_done=self.done,
                items_planned=self.items_planned,
                items_landed=self.landed,
                rate_limit=None if self.limiter is None else self.limiter.rate,
                waiting_429=0.0 if self.limiter is None else self.limiter.pause_left,
            )
        )
