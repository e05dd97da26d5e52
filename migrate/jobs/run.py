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

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from pathlib import Path
from typing import Any, Literal

from migrate.config import JobConfig
from migrate.errors import (
    ConfigError,
    JobError,
    MigrateError,
    SourceReadError,
    StateWriteError,
    files_written,
)
from migrate.jobs.delta import sync_outcomes, take_subset
from migrate.jobs.directory import job_name, open_job, with_server_options
from migrate.jobs.models import (
    CountCallback,
    DivergedPolicy,
    JobRef,
    JobSummary,
    ProgressCallback,
    ProgressUpdate,
    ResumeConfig,
    RunConfig,
    Subset,
    WorkConfig,
)
from migrate.jobs.record import holds_job, record_job
from migrate.jobs.report import keep_report_tables, write_report_files
from migrate.jobs.resume import SourceCheck, retry_all_failures, retry_transient_failures
from migrate.jobs.status import job_summary
from migrate.plan.model import ConversationPlan
from migrate.plan.pipeline import (
    PlanOutcome,
    iterate_plans,
    open_configured_source,
)
from migrate.replay.ratelimit import RateLimiter
from migrate.replay.replayer import (
    CrashHook,
    Replayer,
    ReplayOptions,
    SimulatedCrash,
    settle_seconds,
)
from migrate.replay.target import (
    TargetConfig,
    describe_target,
    open_target,
    preflight,
    validate_target,
)
from migrate.replay.workers import WorkerSession, claimed_work, forget_gone_workers
from migrate.reporting.collect import sampler
from migrate.reporting.events import log_pauses
from migrate.state.records import JobRecord, Totals
from migrate.state.schema import Status
from migrate.state.store import StateStore

logger = logging.getLogger(__name__)

PLAN_CHUNK = 100
"""Conversations planned (and stored) per transaction while a run streams its source."""
CLAIM_BATCH = 32
"""Most conversations a worker claims at once (fewer when its concurrency is lower)."""
PLAN_AHEAD = 512
"""Unfinished conversations (pending or in progress) beyond which planning waits for replay,
at least `PLAN_AHEAD_PER_WORKER` per unit of concurrency: the planner stays a bounded
distance ahead, so it neither holds the GIL for a whole source nor fills the store first."""
PLAN_AHEAD_PER_WORKER = 16
PLAN_WAIT = 0.1
"""Seconds between two looks at how far replay has got while planning waits."""


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
            planner=_Planner(store, outcomes, first_seq=0),
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
            check = SourceCheck(store, progress=check_progress)
            observe = sampler(config.job.job_dir)
            check.outcomes = _job_outcomes(
                store,
                job,
                iterate_plans(source, job_config.policy, observe=observe, skip=check.skips),
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
        )
    finally:
        store.close()


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


class _Planner:
    """Reads the source chunk by chunk (in a thread) and stores each chunk's plans."""

    def __init__(
        self,
        store: StateStore,
        outcomes: Iterator[PlanOutcome],
        *,
        first_seq: int,
        check: SourceCheck | None = None,
    ) -> None:
        self.store = store
        self.outcomes = outcomes
        self.seq = first_seq
        self.check = check
        """`resume`'s source check, which runs first, over the stored conversations."""

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
                self.store.add_outcomes(numbered)
                listener.planned(numbered)
                planned.set()
        finally:
            executor.shutdown(wait=False, cancel_futures=True)


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
) -> JobSummary:
    stop = stop or threading.Event()
    session = WorkerSession(
        store, timeout=target_config.timeout, lease=options.lease, plans=planner is not None
    )
    job = store.job()
    session.start()
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
                ahead = max(PLAN_AHEAD, PLAN_AHEAD_PER_WORKER * options.concurrency)
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
            reporting = (
                None if job_dir is None else asyncio.create_task(keep_report_tables(store, job_dir))
            )
            try:
                await replayer.replay_all(work)
            finally:
                for task in (planning, reporting):
                    if task is not None:
                        task.cancel()
                        await asyncio.gather(task, return_exceptions=True)

    where = str(job_dir or f"--state URL --job {job.job_id}")
    try:
        try:
            asyncio.run(replay())
        except SimulatedCrash:
            session.stop(crashed=True)
            raise
        except StateWriteError as exc:
            # Nothing more can be recorded: the job stops as it stands, as after a kill.
            session.stop()
            logger.info("stopping: %s", exc.message, extra={"event": "state_unwritable"})
            raise
        except JobError as exc:
            session.stop()
            summary = _finish(store, job_dir, listener)
            _log_session_end(summary, session.worker_id, str(exc))
            if exc.hint is None:
                exc.hint = f"continue it with `migrate resume {where}`"
            raise
        except BaseException as exc:
            session.stop()
            summary = _finish(store, job_dir, listener)
            _log_session_end(summary, session.worker_id, f"{type(exc).__name__}: {exc}")
            raise
        session.stop()
        summary = _finish(store, job_dir, listener)
    except StateWriteError as exc:
        exc.resume_with(where)
        raise
    _log_session_end(summary, session.worker_id, None)
    return summary


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


def _take(outcomes: Iterator[PlanOutcome], count: int) -> list[PlanOutcome]:
    return list(islice(outcomes, count))


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
