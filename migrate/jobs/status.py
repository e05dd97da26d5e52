"""Status and report: a job's counts, and its report files written again."""

from __future__ import annotations

import logging
from pathlib import Path

from migrate.errors import ConfigError
from migrate.jobs.directory import open_job
from migrate.jobs.models import (
    ConversationCounts,
    CountCallback,
    ItemCounts,
    JobRef,
    JobSummary,
)
from migrate.jobs.report import write_report_files
from migrate.plan.pipeline import SkippedFiles
from migrate.replay.target import (
    TargetConfig,
    describe_target,
)
from migrate.replay.workers import host_identity, is_gone
from migrate.state.ledger import sync_counts
from migrate.state.store import StateStore

logger = logging.getLogger(__name__)


def job_status(ref: JobRef) -> JobSummary:
    """Counts of the job as the state store holds them (no target call)."""
    store = open_job(ref)
    try:
        return job_summary(store, ref.job_dir)
    finally:
        store.close()


def write_report(
    ref: JobRef,
    *,
    out: Path | None = None,
    html_only: bool = False,
    progress: CountCallback | None = None,
    compress: bool | None = None,
) -> list[Path]:
    """(Re)write the report files into `out` (default: the job directory); returns their paths.

    `html_only` rewrites only `summary.json` and `report.html`. `progress` is called with
    (conversations written, total) as the id map is written. `compress`: write `.gz` files
    (None: as the job was started).
    """
    directory = output_dir(ref, out, "the report")
    store = open_job(ref)
    try:
        summary = job_summary(store, ref.job_dir)
        return write_report_files(
            store,
            directory,
            summary.model_dump(mode="json"),
            html_only=html_only,
            progress=progress,
            compress=compress,
            kept=ref.job_dir is not None and directory.resolve() == ref.job_dir.resolve(),
        )
    finally:
        store.close()


def output_dir(ref: JobRef, out: Path | None, what: str) -> Path:
    directory = out or ref.job_dir
    if directory is None:
        raise ConfigError(f"without a job directory, {what} needs a directory to go to (--out)")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _liveness(store: StateStore, state: str) -> tuple[str, float | None]:
    """A `running` job with no live worker is `interrupted`; since its last heartbeat.

    A worker is live while its heartbeat (`workers.seen_at`) is within its lease and, on this
    machine, its process exists (so `kill -9` shows at once here, after the lease elsewhere).
    """
    if state != "running":
        return state, None
    rows, now = store.worker_rows()
    host = host_identity()
    if any(not is_gone(row, host=host) and row.seen_at + row.lease > now for row in rows):
        return state, None
    return "interrupted", max((row.seen_at for row in rows), default=None)


def job_summary(store: StateStore, job_dir: Path | None) -> JobSummary:
    job = store.job()
    totals = store.totals()
    up_to_date, diverged = sync_counts(store.engine)
    target = TargetConfig.model_validate(job.target)
    state, gone_since = _liveness(store, job.state)
    return JobSummary(
        job_id=job.job_id,
        job_dir=None if job_dir is None else str(job_dir),
        state=state,
        process_gone_since=gone_since,
        source=job.source,
        target=describe_target(target),
        planning_complete=job.planning_complete,
        conversations=ConversationCounts(
            total=totals.total,
            migrated=totals.migrated,
            failed=totals.failed,
            skipped=totals.skipped,
            pending=totals.pending,
            in_progress=totals.in_progress,
            up_to_date=up_to_date,
            diverged=diverged,
        ),
        items=ItemCounts(
            planned=totals.items_planned,
            landed=totals.items_landed,
            unread_ids=totals.unread_item_ids,
        ),
        calls=totals.calls,
        retries=totals.retries,
        reconciliations=totals.reconciliations,
        possible_orphans=totals.possible_orphans,
        possible_orphans_with_items=totals.orphans_with_items,
        findings=totals.findings,
        deleted=totals.deleted,
        late_writes_repaired=totals.repairs,
        metadata_updates=store.metadata_updates(),
        elapsed=round(job.elapsed + store.worker_time(), 3),
        skipped_files=SkippedFiles.model_validate(job.config.get("skipped_files") or {}),
    )
