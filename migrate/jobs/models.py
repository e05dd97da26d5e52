"""The verbs' configs and results: pydantic models the CLI and the Python API share."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from migrate.config import JobConfig
from migrate.context.exact import TokenCheck
from migrate.errors import EXIT_FAILED, EXIT_OK, EXIT_PARTIAL
from migrate.plan.pipeline import SkippedFiles
from migrate.replay.options import ReplayOptions
from migrate.replay.target import (
    TargetConfig,
)

logger = logging.getLogger(__name__)


class Subset(BaseModel):
    """Which source conversations a job takes (SQL filters live in the source config)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    limit: int | None = Field(default=None, ge=0)
    """At most this many source records, the first in source order."""
    ids: list[str] | None = None
    """Only these source conversation ids."""


class RunConfig(BaseModel):
    """Everything `migrate run` needs: what to read, where to write, how hard to push."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    job: JobConfig
    job_dir: Path
    target: TargetConfig = Field(default_factory=TargetConfig)
    replay: ReplayOptions = Field(default_factory=ReplayOptions)
    state_url: str | None = None
    """SQLAlchemy URL of the state store; `sqlite:///<job_dir>/state.db` when unset."""
    subset: Subset = Field(default_factory=Subset)
    allow_duplicates: bool = False
    """Run even though the state store's ledger already knows conversations in this target."""
    compress: bool = False
    """Write the report's id maps, findings and errors gzip-compressed (`items.csv.gz`)."""


DivergedPolicy = Literal["skip", "fail", "new_conversation"]


class SyncConfig(RunConfig):
    """`migrate sync`: a run that migrates only what the ledger does not hold yet.

    `job_dir` may hold a finished job of the same state store: the new job takes its place.
    """

    diverged: DivergedPolicy = "skip"
    """What to do with a conversation whose already-landed items changed in the source."""


class JobRef(BaseModel):
    """An existing job: its directory, or its state store URL and job id (from any machine)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    job_dir: Path | None = None
    state_url: str | None = None
    """The state store, when it is not the job directory's default (or there is no directory)."""
    job_id: str | None = None
    """Required without a job directory: the store must hold this job."""


class WorkConfig(BaseModel):
    """`migrate work`: join a shared job as one more worker."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    state_url: str
    job_id: str
    target_kind: Literal["local", "openai", "azure"] | None = None
    """The target the worker expects (a check against the job's own)."""
    concurrency: int | None = Field(default=None, ge=1, le=1024)
    timeout: float | None = Field(default=None, gt=0)
    lease: float | None = Field(default=None, gt=0)
    max_wait: float | None = Field(default=None, gt=0)
    """Replaces the run's `--max-wait` (None keeps it)."""
    settle: float | None = Field(default=None, ge=0)
    """Overrides the job's settle time (`ReplayOptions.settle`)."""


class ResumeConfig(BaseModel):
    """`migrate resume`: the job, and what may differ from the original run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    job: JobRef
    concurrency: int | None = Field(default=None, ge=1, le=1024)
    timeout: float | None = Field(default=None, gt=0)
    max_wait: float | None = Field(default=None, gt=0)
    """Replaces the run's `--max-wait` (None keeps it)."""
    settle: float | None = Field(default=None, ge=0)
    """Overrides the job's settle time (`ReplayOptions.settle`)."""
    server_options: dict[str, Any] | None = None
    """Local target only: replaces the run's latency/fault options (None keeps them)."""
    check_source: bool = True
    """Re-read the source and refuse if conversations in progress changed. Without it the
    stored plans are replayed as they are (only possible once planning was complete)."""
    retry_failed: bool = False
    """Try every failed conversation again, not only those that failed for a transient reason."""
    compress: bool | None = None
    """Write the report files compressed from now on (True) or plain (False); None keeps the
    job's choice."""


class ConversationCounts(BaseModel):
    """Conversations by status; `total = migrated + failed + skipped + pending + in_progress`."""

    total: int = 0
    migrated: int = 0
    failed: int = 0
    skipped: int = 0
    pending: int = 0
    in_progress: int = 0
    up_to_date: int = 0
    """`migrate sync`: skipped because the target already holds them as they are."""
    diverged: int = 0
    """`migrate sync`: an item that already landed changed or vanished in the source."""


class ItemCounts(BaseModel):
    planned: int = 0
    landed: int = 0
    unread_ids: int = 0
    """Landed items whose new id is not read yet (a create that carried them answers
    without item ids): `migrate verify` reads them, `migrate report` then writes them."""


class JobSummary(BaseModel):
    """The state of a job, as `migrate status --json` prints it and `summary.json` holds it."""

    job_id: str
    job_dir: str | None
    state: str
    process_gone_since: float | None = None
    """For an `interrupted` job whose process died: its last heartbeat (Unix time)."""
    source: str
    target: str
    planning_complete: bool
    conversations: ConversationCounts
    items: ItemCounts
    calls: int
    retries: int
    reconciliations: int
    possible_orphans: int
    """Conversations that may have been created without their id reaching us (empty ones)."""
    possible_orphans_with_items: int = 0
    """The same, holding the first batch the create carried (`--create-with-items` on a
    target that cannot list conversations)."""
    findings: int
    deleted: int
    late_writes_repaired: int = 0
    """Items the audits deleted (surplus copies late writes left) or appended."""
    elapsed: float
    skipped_files: SkippedFiles = Field(default_factory=SkippedFiles)
    """Files of a directory source that hold no conversations to read, and why."""

    @property
    def complete(self) -> bool:
        counts = self.conversations
        return self.planning_complete and counts.pending == 0 and counts.in_progress == 0

    @property
    def exit_code(self) -> int:
        if not self.complete:
            return EXIT_FAILED
        return EXIT_PARTIAL if self.conversations.failed else EXIT_OK


CountCallback = Callable[[int, int], None]
"""Progress of a verb that walks the job's conversations: called with (done, total)."""


class ProgressUpdate(BaseModel):
    """Where a run stands; sent to the progress callback after each step."""

    event: Literal["started", "progress", "finished"]
    job_id: str | None = None
    target: str | None = None
    conversations_known: int = 0
    """Conversations read from the source so far (the total once planning is complete)."""
    planning_complete: bool = False
    conversations_done: int = 0
    items_planned: int = 0
    items_landed: int = 0
    rate_limit: float | None = None
    """Requests per second the target currently allows this process (None: unlimited)."""
    waiting_429: float = 0.0
    """Seconds every call still waits after a 429."""


ProgressCallback = Callable[[ProgressUpdate], None]


class ItemProblem(BaseModel):
    """One difference between a migrated conversation and its plan."""

    kind: Literal["missing", "extra", "duplicated", "reordered", "changed"]
    position: int | None = None
    item_id: str | None = None
    detail: str


class ConversationCheck(BaseModel):
    """`verify`'s finding for one conversation that differs from its plan."""

    source_id: str | None
    location: str
    target_conversation_id: str | None
    planned: int
    found: int
    problems: list[ItemProblem]


class VerifyReport(BaseModel):
    """What `migrate verify` found."""

    job_dir: str | None
    target: str
    checked: int = 0
    matching: int = 0
    differing: int = 0
    not_migrated: int = 0
    """Conversations not verified because they are not (yet) migrated."""
    repaired: int = 0
    """With `repair`: items deleted (surplus copies late writes left) or appended."""
    repaired_conversations: int = 0
    """With `repair`: conversations those repairs went into."""
    conversations: list[ConversationCheck] = Field(default_factory=list)
    """Only the conversations that differ."""
    tokens: TokenCheck | None = None
    """With `count_tokens`: the estimate against the target's own count."""

    @property
    def exit_code(self) -> int:
        return EXIT_PARTIAL if self.differing else EXIT_OK


class RollbackResult(BaseModel):
    """What `migrate rollback` deleted."""

    job_dir: str | None
    target: str
    deleted: int = 0
    already_gone: int = 0
    failed: list[str] = Field(default_factory=list)
    possible_orphans: int = 0
    """Empty conversations whose ids never reached the job: they cannot be deleted."""
    possible_orphans_with_items: int = 0
    """The same, holding the first batch a lost create carried (`--create-with-items`)."""
    log: str = ""

    @property
    def exit_code(self) -> int:
        return EXIT_PARTIAL if self.failed else EXIT_OK
