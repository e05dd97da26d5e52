"""The job driver: one worker session replays claimed work (the planner alongside), with the
job's other worker processes of this machine if it has any (`migrate.jobs.processes`), and
writes the job's summary and report at its end."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path

from migrate.errors import JobError, StateWriteError, files_written
from migrate.jobs.heap import long_lived_heap
from migrate.jobs.models import JobSummary, WorkConfig
from migrate.jobs.planner import _Planner, plan_ahead
from migrate.jobs.processes import WorkerProcesses
from migrate.jobs.progress import _Listener
from migrate.jobs.report import keep_report_tables, write_report_files
from migrate.jobs.status import job_summary
from migrate.replay.options import CrashHook, ReplayOptions, SimulatedCrash, settle_seconds
from migrate.replay.replayer import Replayer
from migrate.replay.target import TargetConfig, open_target
from migrate.replay.workers import WorkerSession, claimed_work
from migrate.reporting.events import log_pauses
from migrate.state.store import StateStore

logger = logging.getLogger("migrate.jobs.run")
"""The session's events keep the name of the job commands' logger (`migrate.jobs.run`)."""

CLAIM_BATCH = 32
"""Most conversations a worker claims at once (fewer when its concurrency is lower)."""


def _drive(
    store: StateStore,
    job_dir: Path | None,
    target_config: TargetConfig,
    options: ReplayOptions,
    listener: _Listener,
    stop: threading.Event | None,
    crash_hook: CrashHook | None,
    *,
    planner: _Planner | None,
    processes: int = 1,
) -> JobSummary:
    stop = stop or threading.Event()
    session = WorkerSession(
        store, timeout=target_config.timeout, lease=options.lease, plans=planner is not None
    )
    job = store.job()
    session.start()
    extra = _extra_workers(processes, store, job.job_id, target_config, options, listener, stop)
    store.update_job(state="running", started_at=job.started_at or time.time())
    logger.info(
        "session started: job %s, worker %s",
        job.job_id,
        session.worker_id,
        extra={"event": "session_start", "job_id": job.job_id, "worker_id": session.worker_id},
    )

    async def replay() -> None:
        async with open_target(target_config, job_dir=job_dir) as target:
            session.attach(target)
            listener.limiter = target.limiter
            log_pauses(target.limiter, job_dir)
            listener.started(target.description, job.job_id)
            replayer = Replayer(
                store,
                target,
                options=options,
                listener=listener,
                stop=stop,
                crash_hook=crash_hook,
            )
            planned = asyncio.Event()
            planning = None
            if planner is not None:
                ahead = plan_ahead(options.concurrency)
                planning = asyncio.create_task(planner.run(planned, stop, listener, ahead=ahead))
            work = claimed_work(
                store,
                session,
                batch=min(options.concurrency, CLAIM_BATCH),
                stop=stop,
                settle=settle_seconds(options, target_config.timeout),
                planning=planning,
                planned=planned,
                idle=lambda: listener.refresh(store) if planner is None else None,
            )
            pumping = None if extra is None else asyncio.create_task(extra.pump_forever())
            reporting = (
                None if job_dir is None else asyncio.create_task(keep_report_tables(store, job_dir))
            )
            try:
                await replayer.replay_all(work)
            finally:
                for task in (planning, pumping, reporting):
                    if task is not None:
                        task.cancel()
                        await asyncio.gather(task, return_exceptions=True)

    def end_workers(*, stopping: bool = False, at_once: bool = False) -> None:
        """Wait for the extra worker processes (stopping them first): the job's end, its
        state and its report come only once every worker has stopped."""
        if extra is not None:
            if stopping or at_once:
                extra.stop(at_once=at_once)
            extra.wait(grace=session.lease)

    where = str(job_dir or f"--state URL --job {job.job_id}")
    try:
        try:
            if extra is not None:
                extra.start()
            with long_lived_heap(planning=planner is not None):
                asyncio.run(replay())
        except SimulatedCrash:
            end_workers(at_once=True)
            session.stop(crashed=True)
            raise
        except StateWriteError as exc:
            # Nothing more can be recorded: the job stops as it stands, as after a kill.
            end_workers(stopping=True)
            session.stop()
            logger.info("stopping: %s", exc.message, extra={"event": "state_unwritable"})
            raise
        except JobError as exc:
            end_workers(stopping=True)
            session.stop()
            summary = _finish(store, job_dir, listener)
            _log_session_end(summary, session.worker_id, str(exc))
            if exc.hint is None:
                exc.hint = f"continue it with `migrate resume {where}`"
            raise
        except BaseException as exc:
            end_workers(at_once=isinstance(exc, KeyboardInterrupt), stopping=True)
            session.stop()
            summary = _finish(store, job_dir, listener)
            _log_session_end(summary, session.worker_id, f"{type(exc).__name__}: {exc}")
            raise
        # Nothing is left to claim (or a stop was asked for): the others need not look again.
        end_workers(stopping=True)
        session.stop()
        summary = _finish(store, job_dir, listener)
    except StateWriteError as exc:
        exc.resume_with(where)
        raise
    _log_session_end(summary, session.worker_id, None)
    return summary


def _extra_workers(
    processes: int,
    store: StateStore,
    job_id: str,
    target: TargetConfig,
    options: ReplayOptions,
    listener: _Listener,
    stop: threading.Event,
) -> WorkerProcesses | None:
    """The `processes - 1` worker processes that join this one (not started yet)."""
    if processes <= 1:
        return None
    config = WorkConfig(
        state_url=store.engine.url.render_as_string(hide_password=False),
        job_id=job_id,
        target_kind=target.kind,
        concurrency=options.concurrency,
        timeout=target.timeout,
        lease=options.lease,
        max_wait=options.max_wait,
        settle=options.settle,
    )
    return WorkerProcesses(processes - 1, config, on_progress=listener.add, stop=stop)


def _log_session_end(summary: JobSummary, worker_id: str, error: str | None) -> None:
    counts = summary.conversations
    logger.info(
        "session ended: %s (%d migrated, %d failed, %d skipped of %d)%s",
        summary.state,
        counts.migrated,
        counts.failed,
        counts.skipped,
        counts.total,
        f"; {error}" if error else "",
        extra={
            "event": "session_end",
            "job_id": summary.job_id,
            "worker_id": worker_id,
            "state": summary.state,
            "migrated": counts.migrated,
            "failed": counts.failed,
            "skipped": counts.skipped,
            "total": counts.total,
            **({"error": error} if error else {}),
        },
    )


def _finish(store: StateStore, job_dir: Path | None, listener: _Listener) -> JobSummary:
    job = store.job()
    totals = store.totals()
    complete = job.planning_complete and totals.pending == 0 and totals.in_progress == 0
    if complete:
        store.update_job(state="finished", finished_at=job.finished_at or time.time())
    elif store.live_workers()[0] == 0:
        store.update_job(state="interrupted", finished_at=None)
    summary = job_summary(store, job_dir)
    if job_dir is not None:
        with files_written(f"the report files in {job_dir}"):
            write_report_files(store, job_dir, summary.model_dump(mode="json"))
    listener.finished()
    return summary
