"""Status and report: a job's counts, and its report files written again."""

from __future__ import annotations

import logging
from pathlib import Path

from migrate.errors import ConfigError
from migrate.jobs.directory import open_job
from migrate.jobs.models import ConversationCounts, ItemCounts, JobRef, JobSummary
from migrate.jobs.report import write_report_files
from migrate.replay.target import (
    TargetConfig,
    describe_target,
)
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


def write_report(ref: JobRef, *, out: Path | None = None, html_only: bool = False) -> list[Path]:
    """(Re)write the report files into `out` (default: the job directory); returns their paths.

    `html_only` rewrites only `summary.json` and `report.html`."""
    directory = output_dir(ref, out, "the report")
    store = open_job(ref)
    try:
        summary = job_summary(store, ref.job_dir)
        return write_report_files(
            store, directory, summary.model_dump(mode="json"), html_only=html_only
        )
    finally:
        store.close()


def output_dir(ref: JobRef, out: Path | None, what: str) -> Path:
    directory = out or ref.job_dir
    if directory is None:
        raise ConfigError(f"without a job directory, {what} needs a directory to go to (--out)")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def job_summary(store: StateStore, job_dir: Path | None) -> JobSummary:
    job = store.job()
    totals = store.totals()
    up_to_date, diverged = sync_counts(store.engine)
    target = TargetConfig.model_validate(job.target)
    return JobSummary(
        job_id=job.job_id,
        job_dir=None if job_dir is None else str(job_dir),
        state=job.state,
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
        items=ItemCounts(planned=totals.items_planned, landed=totals.items_landed),
        calls=totals.calls,
        retries=totals.retries,
        reconciliations=totals.reconciliations,
        possible_orphans=totals.possible_orphans,
        findings=totals.findings,
        deleted=totals.deleted,
        elapsed=round(job.elapsed + store.worker_time(), 3),
    )
