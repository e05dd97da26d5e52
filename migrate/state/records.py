"""Rows of the state store as pydantic models, and the store's own errors."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from migrate.errors import JobError
from migrate.plan.model import ConversationPlan
from migrate.state.schema import IntentKind, Status


class JobRecord(BaseModel):
    """The `job` row."""

    model_config = ConfigDict(extra="forbid")

    job_id: str
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    state: Literal["created", "running", "interrupted", "finished", "rolled_back"] = "created"
    config: dict[str, Any]
    source: str
    target: dict[str, Any]
    planning_complete: bool = False
    elapsed: float = 0.0
    checked_below: int | None = None


class ConversationRow(BaseModel):
    """One `conversations` row, without the plan."""

    model_config = ConfigDict(extra="forbid")

    seq: int
    source_id: str | None
    source_kind: str | None
    location: str
    status: Status
    conversation_id: str | None
    planned_items: int
    landed_items: int
    planned_calls: int
    fingerprint: str | None
    findings: int
    calls: int
    retries: int
    reconciliations: int
    possible_orphans: int
    orphans_with_items: int = 0
    """Creates that carried items and whose outcome is unknown (no target lists them)."""
    unread_items: int = 0
    """Landed items whose new id is not read yet (a create that carried them answers
    without item ids; the next listing, `migrate verify`'s at the latest, reads them)."""
    error_code: str | None
    error_message: str | None
    error_hint: str | None
    retryable: bool
    deleted_at: float | None
    base_items: int | None = None
    """Items the conversation held before this job appended to it (None: this job created it)."""
    ambiguous_at: float | None = None
    """When its last write whose outcome is unknown was recorded (None: none since its audit)."""
    repairs: int = 0
    """Items the audit deleted (surplus copies a late write left) or appended."""
    tokens: int | None = None
    """The plan's input tokens (`migrate.state.plan_facts`)."""
    tokens_estimated: bool = False
    first_response_id: str | None = None
    leaf_response_id: str | None = None


class OpenIntent(BaseModel):
    """A remote write whose outcome was never recorded (the process died or the call hung)."""

    model_config = ConfigDict(extra="forbid")

    id: int
    kind: IntentKind
    start: int
    count: int
    created_at: float = 0.0
    """When the intent was written (our clock)."""
    item_id: str | None = None
    """An audit's deletion: the surplus item it deletes."""


class Claim(BaseModel):
    """A conversation a worker now holds, with its status at the moment of the claim."""

    model_config = ConfigDict(extra="forbid")

    seq: int
    status: Status
    plan: ConversationPlan
    audit: bool = False
    """Claimed for its audit: every item landed, but a write's outcome was unknown."""


class WorkerRow(BaseModel):
    """One `workers` row (times in the database's clock)."""

    model_config = ConfigDict(extra="forbid")

    worker_id: str
    host: str
    pid: int
    plans: bool
    lease: float
    started_at: float
    seen_at: float
    stopped_at: float | None


class NoJobError(JobError):
    """The state store holds no job (yet): a run stopped before it recorded one."""


class ClaimLostError(JobError):
    """This worker no longer holds the conversation: its lease ran out and it may be another's."""


class Totals(BaseModel):
    """Counts over the whole job."""

    model_config = ConfigDict(extra="forbid")

    total: int = 0
    pending: int = 0
    in_progress: int = 0
    migrated: int = 0
    failed: int = 0
    skipped: int = 0
    items_planned: int = 0
    items_landed: int = 0
    calls: int = 0
    retries: int = 0
    reconciliations: int = 0
    possible_orphans: int = 0
    orphans_with_items: int = 0
    unread_item_ids: int = 0
    findings: int = 0
    deleted: int = 0
    repairs: int = 0
