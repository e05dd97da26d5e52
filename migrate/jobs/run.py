"""Run, resume and work: plan the source into the state store and replay it.

Decisions worth knowing:

- `run` plans and replays at once: the source is planned chunk by chunk into the state store,
  and the process claims its work from the store like any other worker of the job, so neither
  the plans nor the work queue grow in memory with the size of the source.
- `resume` re-reads the source lazily (`migrate.jobs.resume`): replay starts after the first
  chunk is compared, and only conversations already compared are claimed. Conversations
  nothing was sent for take the new plan; one in progress whose source changed fails before
  any further write. Conversations that failed for a transient reason (retry budget) are
  tried again.
- Elapsed time is the time during which at least one worker of the job was alive (a process
  killed with `kill -9` counts until its last heartbeat).
- `resume` takes a job over: it frees the claims of workers known to be dead and refuses while
  another worker of the job is still alive (`migrate work` adds capacity to a running job).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from adapters import Source
from migrate.config import JobConfig
from migrate.errors import ConfigError, StateWriteError
from migrate.jobs.delta import sync_outcomes, take_subset
from migrate.jobs.directory import job_name, open_job, with_server_options
from migrate.jobs.drive import _drive
from migrate.jobs.models import (
    CountCallback,
    DivergedPolicy,
    JobRef,
    JobSummary,
    ProgressCallback,
    ResumeConfig,
    RunConfig,
    Subset,
    WorkConfig,
)
from migrate.jobs.planner import _Planner
from migrate.jobs.processes import check_processes
from migrate.jobs.progress import _Listener
from migrate.jobs.record import holds_job, record_job
from migrate.jobs.resume import SourceCheck, retry_all_failures, retry_transient_failures
from migrate.plan.pipeline import (
    PlanOutcome,
    iterate_plans,
    open_configured_source,
    source_marks,
    start_read_at,
)
from migrate.replay.options import CrashHook, ReplayOptions
from migrate.replay.target import TargetConfig, describe_target, preflight, validate_target
from migrate.replay.workers import forget_gone_workers
from migrate.reporting.collect import sampler
from migrate.state.records import JobRecord
from migrate.state.store import StateStore

logger = logging.getLogger(__name__)


def run_job(
    config: RunConfig,
    *,
    progress: ProgressCallback | None = None,
    stop: threading.Event | None = None,
    crash_hook: CrashHook | None = None,
    on_ready: Callable[[Path], object] | None = None,
) -> JobSummary:
    """Plan the source and replay it into the target, into a new job directory.

    `on_ready` is called with the job directory once it exists (the CLI starts `job.log`).

    Returns the job's summary (its `exit_code` tells success, partial success, or an
    incomplete job). Raises `ConfigError` for bad configuration (including a target the state
    store's ledger already knows, unless `allow_duplicates`), `JobError` when the job cannot go
    on (target refuses every call, state store broken).
    """
    return start_job(
        config,
        diverged=None,
        progress=progress,
        stop=stop,
        crash_hook=crash_hook,
        on_ready=on_ready,
    )


def start_job(
    config: RunConfig,
    *,
    diverged: DivergedPolicy | None,
    progress: ProgressCallback | None = None,
    stop: threading.Event | None = None,
    crash_hook: CrashHook | None = None,
    on_ready: Callable[[Path], object] | None = None,
) -> JobSummary:
    """Start a `run` (`diverged` None) or a `sync` (with its policy for diverged sources).

    A store whose job has finished takes the new job; the finished one moves into the ledger.
    A `sync` may reuse the job directory of a finished job (its state store and local target).
    """
    validate_target(config.target)
    check_processes(config.processes, config.target, config.state_url)
    job_dir = config.job_dir
    held = holds_job(job_dir)
    if held and diverged is None:
        raise ConfigError(
            f"{job_dir} already holds a job",
            hint=f"continue it with `migrate resume {job_dir}`; bring what is new in the source "
            f"across with `migrate sync SOURCE --job-dir {job_dir}`",
        )
    source = open_configured_source(config.job.source)
    preflight(config.target)
    store, record, target = record_job(config, held=held, diverged=diverged, source=source)
    try:
        if on_ready is not None:
            on_ready(job_dir)
        outcomes = _job_outcomes(
            store, record, iterate_plans(source, config.job.policy, observe=sampler(job_dir))
        )
        listener = _Listener(progress, store.totals(), planning_complete=False)
        return _drive(
            store,
            job_dir,
            target,
            config.replay,
            listener,
            stop,
            crash_hook,
            planner=_Planner(store, outcomes, first_seq=0, marks=source_marks(source)),
            processes=config.processes,
        )
    finally:
        store.close()


def _job_outcomes(
    store: StateStore, job: JobRecord, outcomes: Iterator[PlanOutcome]
) -> Iterator[PlanOutcome]:
    """The job's records: its subset of the source, planned against the ledger for a sync."""
    outcomes = take_subset(outcomes, Subset.model_validate(job.config.get("subset") or {}))
    sync = job.config.get("sync")
    if sync is None:
        return outcomes
    identity = str(job.config["ledger_target"])
    return sync_outcomes(outcomes, store.engine, identity, sync["diverged"])


def resume_job(
    config: ResumeConfig,
    *,
    progress: ProgressCallback | None = None,
    stop: threading.Event | None = None,
    crash_hook: CrashHook | None = None,
    check_progress: CountCallback | None = None,
) -> JobSummary:
    """Finish an interrupted job: check the source, reconcile what was in flight, go on.

    `check_progress` is called with (checked, stored) while the source is compared with the
    stored plans.
    """
    try:
        return _resume(config, progress, stop, crash_hook, check_progress)
    except StateWriteError as exc:
        exc.resume_with(job_name(config.job))
        raise


def _resume(
    config: ResumeConfig,
    progress: ProgressCallback | None,
    stop: threading.Event | None,
    crash_hook: CrashHook | None,
    check_progress: CountCallback | None,
) -> JobSummary:
    store = open_job(config.job)
    try:
        job = store.job()
        if job.state == "rolled_back":
            raise ConfigError(f"{job_name(config.job)} was rolled back; start a new run instead")
        if config.compress is not None:
            store.update_job(config={**job.config, "compress": config.compress})
        stored_replay = ReplayOptions.model_validate(job.config.get("replay", {}))
        replay = stored_replay.model_copy(
            update={
                "concurrency": config.concurrency or stored_replay.concurrency,
                "max_wait": config.max_wait or stored_replay.max_wait,
            }
        )
        if config.settle is not None:
            replay = replay.model_copy(update={"settle": config.settle})
        target = TargetConfig.model_validate(job.target)
        updates: dict[str, Any] = {}
        if config.timeout is not None:
            updates["timeout"] = config.timeout
        target = target.model_copy(update=updates)
        if config.server_options is not None:
            target = with_server_options(target, config.server_options)
        validate_target(target)
        check_processes(config.processes, target, config.job.state_url)
        preflight(target)
        _take_over(store)
        planner: _Planner | None = None
        if config.retry_failed:
            retry_all_failures(store)
        if config.check_source:
            job_config = JobConfig.model_validate(job.config["job"])
            try:
                source = open_configured_source(job_config.source)
            except ConfigError as exc:
                exc.message = f"cannot re-read the source to check it: {exc.message}"
                exc.hint = "use --no-source-check to replay the stored plans as they are"
                raise
            check = SourceCheck(
                store,
                progress=check_progress,
                first=_read_start(store, job, source),
                marks=source_marks(source),
            )
            observe = sampler(config.job.job_dir)
            check.outcomes = _job_outcomes(
                store,
                job,
                iterate_plans(
                    source,
                    job_config.policy,
                    observe=observe,
                    skip=check.skips,
                    earlier=check.earlier,
                ),
            )
            check.start()
            planner = _Planner(store, check.outcomes, first_seq=check.next_seq, check=check)
        else:
            if not job.planning_complete:
                raise ConfigError(
                    "the run stopped before the whole source was planned; "
                    "resume needs the source (drop --no-source-check)"
                )
            store.update_job(checked_below=None)
            retry_transient_failures(store)
        listener = _Listener(progress, store.totals(), planning_complete=job.planning_complete)
        return _drive(
            store,
            config.job.job_dir,
            target,
            replay,
            listener,
            stop,
            crash_hook,
            planner=planner,
            processes=config.processes,
        )
    finally:
        store.close()


def _read_start(store: StateStore, job: JobRecord, source: Source) -> int:
    """The first stored conversation `resume`'s read of the source reaches: the first one not
    migrated, when the source can start a read at its record and is unchanged before it (all
    before it are migrated, so reading them would change nothing); else 0, the beginning.
    Not for a job cut to its first `--limit` records (the cut counts from the beginning)."""
    start = store.read_start()
    if start is None or Subset.model_validate(job.config.get("subset") or {}).limit is not None:
        return 0
    first, mark = start
    if first == 0 or mark is None or not start_read_at(source, mark):
        return 0
    logger.info(
        "the source check starts at conversation %d: the %d before it are migrated and the "
        "source is unchanged up to there",
        first,
        first,
        extra={"event": "source_check_start", "seq": first},
    )
    return first


def work_on_job(
    config: WorkConfig,
    *,
    progress: ProgressCallback | None = None,
    stop: threading.Event | None = None,
    crash_hook: CrashHook | None = None,
) -> JobSummary:
    """Join a job shared through its state store as one more worker, until the job is done.

    The worker needs no source and no job directory: the plans are in the state store, put
    there by the `run` (or `resume`) that plans the job. Returns the job's summary.
    """
    store = open_job(JobRef(state_url=config.state_url, job_id=config.job_id))
    try:
        job = store.job()
        if job.state == "rolled_back":
            raise ConfigError(f"job {job.job_id} was rolled back; there is nothing to do")
        target = TargetConfig.model_validate(job.target)
        if config.target_kind is not None and config.target_kind != target.kind:
            raise ConfigError(
                f"job {job.job_id} writes to {describe_target(target)}, not --target "
                f"{config.target_kind}"
            )
        if target.kind == "local":
            raise ConfigError(
                f"job {job.job_id} writes to the local server inside the process that ran it; "
                "other workers cannot reach it",
                hint="to rehearse with several workers, run `migrate serve` and give `migrate "
                "run` --target openai --base-url http://HOST:PORT/v1",
            )
        if config.timeout is not None:
            target = target.model_copy(update={"timeout": config.timeout})
        validate_target(target)
        preflight(target)
        stored_replay = ReplayOptions.model_validate(job.config.get("replay", {}))
        updates: dict[str, Any] = {}
        if config.concurrency is not None:
            updates["concurrency"] = config.concurrency
        if config.lease is not None:
            updates["lease"] = config.lease
        if config.max_wait is not None:
            updates["max_wait"] = config.max_wait
        if config.settle is not None:
            updates["settle"] = config.settle
        replay = stored_replay.model_copy(update=updates)
        listener = _Listener(progress, store.totals(), planning_complete=job.planning_complete)
        return _drive(store, None, target, replay, listener, stop, crash_hook, planner=None)
    finally:
        store.close()


def _take_over(store: StateStore) -> None:
    """Before `resume`: free the claims of dead workers; refuse if another worker is alive."""
    live = forget_gone_workers(store)
    if live:
        shown = ", ".join(f"{row.worker_id} (pid {row.pid})" for row in live[:5])
        longest = max(row.lease for row in live)
        raise ConfigError(
            f"{len(live)} worker(s) of this job are still alive: {shown}",
            hint="`migrate work` adds a worker to a running job; resume only once they have "
            f"stopped (a worker that died elsewhere counts as alive for up to {longest:g}s)",
        )
    store.release_claims()
