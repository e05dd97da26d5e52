"""The replayer's base: its state, each conversation's retry budget, back-off and 429 pacing."""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time

from migrate.errors import CallError, CallRateLimited, ConversationError, JobError, RateLimitedError
from migrate.plan.model import ConversationPlan
from migrate.replay.options import (
    CrashHook,
    CrashPoint,
    ReplayListener,
    ReplayOptions,
    settle_seconds,
)
from migrate.replay.target import Target
from migrate.state.schema import Status
from migrate.state.store import StateStore

logger = logging.getLogger("migrate.replay.replayer")
"""Every part of the replayer logs under one name, the replayer's (`migrate.replay.replayer`)."""


class _Failed(ConversationError):
    """This conversation cannot go on (`retryable`: a resume tries it again)."""

    def __init__(
        self, code: str, message: str, *, hint: str | None = None, retryable: bool = False
    ) -> None:
        super().__init__(code, message, hint=hint)
        self.retryable = retryable


class _Stopped(Exception):
    """A stop was requested; the conversation stays in progress for `migrate resume`."""


class _Parked(Exception):
    """The conversation waits, its claim let go: for a write in doubt to settle, or its audit."""


class _Budget:
    def __init__(self, allowed: int, source_id: str) -> None:
        self.source_id = source_id
        self.left = allowed
        self.spent = 0
        self.attempts = 0

    def spend(self, error: CallError) -> None:
        if isinstance(error, CallRateLimited):
            # The account is busy, not this conversation: the shared limiter paces it.
            return
        self.attempts += 1
        if error.target_silent:
            # The target answered nobody: that is the job's problem (it stops after
            # `unreachable_after`), not this conversation's.
            return
        if self.left <= 0:
            raise _Failed(
                "retries_exhausted",
                f"gave up after {self.spent + 1} failed calls; last: {error.message}",
                hint="the target kept failing; `migrate resume` tries this conversation again",
                retryable=True,
            )
        self.left -= 1
        self.spent += 1


class ReplayerCore:
    """What every part of the replayer shares: the store, the target, the options, the hooks."""

    def __init__(
        self,
        store: StateStore,
        target: Target,
        *,
        options: ReplayOptions | None = None,
        listener: ReplayListener | None = None,
        stop: threading.Event | None = None,
        crash_hook: CrashHook | None = None,
        parking: bool = True,
    ) -> None:
        self.store = store
        self.target = target
        self.options = options or ReplayOptions()
        self.settle = settle_seconds(self.options, target.timeout)
        self.listener = listener
        self.stop = stop or threading.Event()
        self.crash_hook = crash_hook
        self.parking = parking
        self._random = random.Random()
        self._job_id: str | None = None
        self._rate_limited: RateLimitedError | None = None
        """Set when a storm of 429s outlasted `max_wait`: the job stops, then raises it."""
        self._budgets: dict[int, _Budget] = {}
        """Budgets of conversations parked by this process: a park does not refill them."""

    def _raise_if_final(
        self,
        error: CallError,
        seq: int,
        plan: ConversationPlan,
        intent: int,
        conversation_id: str | None = None,
    ) -> None:
        if error.kind == "fatal":
            self.store.record_attempt_failed(seq, intent, "rejected")
            raise JobError(
                f"the target refuses every call: {error.message}",
                hint="check OPENAI_API_KEY, the organization/project and the account's quota",
            )
        if error.kind == "rejected":
            self.store.resolve_intents([intent], "rejected")
            raise _Failed(
                f"api_{error.code or error.status or 'rejected'}",
                f"the target rejected the request: {error.message}",
                hint="fix the source or the policy, then migrate this conversation again",
            )
        if error.kind == "not_found" and conversation_id is None:
            # Creating a conversation cannot find nothing: there is no Conversations API here.
            self.store.resolve_intents([intent], "rejected")
            raise JobError(
                f"the target has no Conversations API at this address: {error.message}",
                hint="check --base-url (or OPENAI_BASE_URL), then `migrate resume` the job",
            )
        if error.kind == "not_found":
            self.store.resolve_intents([intent], "rejected")
            raise _Failed(
                "target_missing",
                f"conversation {conversation_id} no longer exists on the target",
                hint="it was deleted on the target; roll back and run the job again",
            )

    async def _back_off(self, error: CallError, budget: _Budget) -> None:
        if isinstance(error, CallRateLimited):
            self._paced(error, budget)
            return
        self.target.raise_if_unreachable()
        logger.info(
            "conversation %s: retrying after %s",
            budget.source_id,
            error.message,
            extra={"event": "retry", "source_id": budget.source_id, "attempt": budget.attempts},
        )
        attempt = min(30, max(0, budget.attempts - 1))
        delay = min(self.options.backoff_max, self.options.backoff_base * 2**attempt)
        await asyncio.sleep(delay * (0.5 + self._random.random() / 2))

    def _paced(self, error: CallRateLimited, budget: _Budget) -> None:
        """After a 429: the shared limiter already holds every worker; stop after `max_wait`."""
        limiter = self.target.limiter
        logger.info(
            "conversation %s: rate limited; every worker waits %.1f s",
            budget.source_id,
            error.retry_after or 0.0,
            extra={
                "event": "rate_limited",
                "source_id": budget.source_id,
                "retry_after": error.retry_after,
            },
        )
        max_wait = self.options.max_wait
        since = limiter.storm_since
        if max_wait is None or since is None or limiter.storm_seconds < max_wait:
            return
        if self._rate_limited is None:
            when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(since))
            self._rate_limited = RateLimitedError(
                f"the account is rate limited since {when}: the target answered only 429s for "
                f"{limiter.storm_seconds:.0f} s (--max-wait {max_wait:g}); the calls in flight "
                "have ended and nothing is lost; `migrate resume` the job later"
            )
            logger.error(
                "stopping: %s",
                self._rate_limited.message,
                extra={"event": "rate_limit_stop", "since": since},
            )
            self.stop.set()
        raise _Stopped()

    def _check_stop(self) -> None:
        if self.stop.is_set():
            raise _Stopped()

    def _crash_point(self, point: CrashPoint, seq: int) -> None:
        if self.crash_hook is not None:
            self.crash_hook(point, seq)

    def _items_landed(self, count: int) -> None:
        if self.listener is not None and count:
            self.listener.items_landed(count)

    def _finished(self, status: Status) -> None:
        if self.listener is not None:
            self.listener.conversation_finished(status)
