"""What a replay is given: its options, its units of work, its listener and its crash points."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from migrate.plan.model import ConversationPlan
from migrate.state.schema import Status

CrashPoint = Literal[
    "after_create_intent",
    "after_create_call",
    "after_create_outcome",
    "after_append_intent",
    "after_append_call",
    "after_append_outcome",
    "after_reconcile",
    "after_repair_intent",
    "after_repair_call",
]
"""Named moments between the steps of the protocol where a test may stop the process."""

CRASH_POINTS: tuple[CrashPoint, ...] = (
    "after_create_intent",
    "after_create_call",
    "after_create_outcome",
    "after_append_intent",
    "after_append_call",
    "after_append_outcome",
    "after_reconcile",
)
"""The moments every replay passes through; an audit's deletions add `REPAIR_CRASH_POINTS`."""

REPAIR_CRASH_POINTS: tuple[CrashPoint, ...] = ("after_repair_intent", "after_repair_call")

CrashHook = Callable[[CrashPoint, int], None]
"""Called at each `CrashPoint` with the conversation's `seq`; may raise `SimulatedCrash`."""


JOB_TOKEN_KEY = "migrate_token"
"""Conversation metadata key holding `<job id>/<seq>` on targets that list conversations."""


class SimulatedCrash(BaseException):
    """Stops the replayer at once, as if the process died; no `except Exception` catches it."""


class ReplayOptions(BaseModel):
    """How hard the replayer works and how patiently it retries."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    concurrency: int = Field(default=8, ge=1, le=1024)
    """Conversations in flight at once."""
    retry_budget: int = Field(default=10, ge=0)
    """Failed calls a conversation may take before it fails (the job goes on)."""
    backoff_base: float = Field(default=0.5, gt=0)
    backoff_max: float = Field(default=30.0, gt=0)
    max_wait: float | None = Field(default=None, gt=0)
    """Seconds a storm of 429s (no request served since the first) may last before the job
    stops for a later `migrate resume`; None: wait as long as it takes."""
    lease: float | None = Field(default=None, gt=0)
    """Seconds a claim on a conversation lasts unless renewed (other workers take it over
    after a crash); None: twice the call timeout, at least 30 s. Must exceed the timeout."""
    create_with_items: bool = False
    """On a target that cannot list conversations (OpenAI), send the first batch with the
    create call (one call fewer per conversation). A create whose answer is lost may then
    leave a conversation holding items whose id never reached us (`orphans_with_items`).
    Targets that list conversations (Azure) always do this: a lost create is found there."""
    read_item_ids: bool = False
    """After a create that carried items, list them at once for their ids (one call more).
    Without it those ids are recorded unread and the next listing of the conversation
    (a reconciliation, `migrate verify` at the latest) reads them."""
    settle: float | None = Field(default=None, ge=0)
    """Seconds after a write's intent before a write in doubt (timeout, dropped connection,
    5xx) counts as landed or lost, for reconciling and auditing; None: `default_settle`."""


MIN_SETTLE = 10.0
"""The least default settle time, in seconds."""


def default_settle(timeout: float) -> float:
    """Twice the call timeout, at least `MIN_SETTLE`: a request its client gave up on after
    `timeout` can sit in a server's queues about as long again before it is applied."""
    return max(MIN_SETTLE, 2 * timeout)


def settle_seconds(options: ReplayOptions, timeout: float) -> float:
    """The settle time a job uses with these options and this call timeout."""
    return options.settle if options.settle is not None else default_settle(timeout)


class Work(BaseModel):
    """One conversation to land: its row number in the state store and its plan."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seq: int
    plan: ConversationPlan
    fresh: bool = False
    """Claimed while still pending: nothing was ever sent for it, so there is no state to read."""
    audit: bool = False
    """Claimed for its audit (every item landed, a write was in doubt)."""


class ReplayListener(Protocol):
    """What the replayer tells the job as it goes (for progress bars)."""

    def items_landed(self, count: int) -> None: ...

    def conversation_finished(self, status: Status) -> None: ...
