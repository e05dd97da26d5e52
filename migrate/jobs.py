"""The job verbs as library functions: run, resume, status, verify, rollback, report.

Each takes a config object (and, where it runs for a while, a progress callback) and returns a
pydantic result; the CLI (`migrate.cli.replay`) only parses flags, calls one of these and
prints. A job lives in a directory: `job.json` (which state store holds it), `state.db` (the
default SQLite state store), `server.db` (the local target's conversations, for
`--target local`) and the report files (`migrate.report`).

A job whose state store is a database server (`--state postgresql://...`) can be shared:
`work_on_job` (`migrate work --state URL --job JOB_ID`) joins it as one more worker from any
machine, and `status`, `verify`, `report` and `rollback` take the same `--state URL --job
JOB_ID` instead of the job directory. How the work is shared: `migrate.workers`.

Decisions worth knowing:

- `run` plans and replays at once: the source is planned chunk by chunk into the state store,
  and the process claims its work from the store like any other worker of the job, so neither
  the plans nor the work queue grow in memory with the size of the source.
- `resume` re-reads the source first and compares each conversation with the stored plan.
  Conversations nothing was sent for take the new plan; a conversation already in progress or
  migrated whose plan changed makes `resume` refuse (nothing is written). Conversations that
  failed for a transient reason (retry budget) are tried again.
- Elapsed time is the time during which at least one worker of the job was alive (a process
  killed with `kill -9` counts until its last heartbeat).
- `resume` takes a job over: it frees the claims of workers known to be dead and refuses while
  another worker of the job is still alive (`migrate work` adds capacity to a running job).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from pathlib import Path
from typing import Any, Literal

import openai
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from adapters import SourceOpenError, open_source
from migrate.config import JobConfig
from migrate.context.count import count_items
from migrate.context.exact import TokenCheck, exact_input_tokens
from migrate.context.models import ModelSpec, model_spec
from migrate.errors import EXIT_FAILED, EXIT_OK, EXIT_PARTIAL, ConfigError, JobError
from migrate.findings import ErrorRecord
from migrate.pipeline import PlanOutcome, iterate_plans, open_configured_source
from migrate.plan import ConversationPlan
from migrate.replay import CrashHook, Replayer, ReplayOptions, SimulatedCrash
from migrate.report import write_report_files
from migrate.state import ConversationRow, JobRecord, StateStore, Status, Totals
from migrate.target import (
    CallError,
    Target,
    TargetConfig,
    classify,
    describe_target,
    item_difference,
    open_target,
    resolve_base_url,
    validate_target,
)
from migrate.workers import WorkerSession, claimed_work, forget_gone_workers

logger = logging.getLogger(__name__)

JOB_FILE = "job.json"
STATE_FILE = "state.db"
PLAN_CHUNK = 100
"""Conversations planned (and stored) per transaction while a run streams its source."""
CLAIM_BATCH = 32
"""Most conversations a worker claims at once (fewer when its concurrency is lower)."""
READ_ATTEMPTS = 6
"""Attempts of one listing or deletion in `verify` and `rollback` before giving up on it."""


# --- configs and results ---------------------------------------------------------------------


class RunConfig(BaseModel):
    """Everything `migrate run` needs: what to read, where to write, how hard to push."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    job: JobConfig
    job_dir: Path
    target: TargetConfig = Field(default_factory=TargetConfig)
    replay: ReplayOptions = Field(default_factory=ReplayOptions)
    state_url: str | None = None
    """SQLAlchemy URL of the state store; `sqlite:///<job_dir>/state.db` when unset."""


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
    target_kind: Literal["local", "openai"] | None = None
    """The target the worker expects (a check against the job's own)."""
    concurrency: int | None = Field(default=None, ge=1, le=1024)
    timeout: float | None = Field(default=None, gt=0)
    lease: float | None = Field(default=None, gt=0)


class ResumeConfig(BaseModel):
    """`migrate resume`: the job, and what may differ from the original run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    job: JobRef
    concurrency: int | None = Field(default=None, ge=1, le=1024)
    timeout: float | None = Field(default=None, gt=0)
    server_options: dict[str, Any] | None = None
    """Local target only: replaces the run's latency/fault options (None keeps them)."""
    check_source: bool = True
    """Re-read the source and refuse if conversations in progress changed. Without it the
    stored plans are replayed as they are (only possible once planning was complete)."""


class ConversationCounts(BaseModel):
    """Conversations by status; `total = migrated + failed + skipped + pending + in_progress`."""

    total: int = 0
    migrated: int = 0
    failed: int = 0
    skipped: int = 0
    pending: int = 0
    in_progress: int = 0


class ItemCounts(BaseModel):
    planned: int = 0
    landed: int = 0


class JobSummary(BaseModel):
    """The state of a job, as `migrate status --json` prints it and `summary.json` holds it."""

    job_id: str
    job_dir: str | None
    state: str
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
    findings: int
    deleted: int
    elapsed: float

    @property
    def complete(self) -> bool:
        counts = self.conversations
        return self.planning_complete and counts.pending == 0 and counts.in_progress == 0

    @property
    def exit_code(self) -> int:
        if not self.complete:
            return EXIT_FAILED
        return EXIT_PARTIAL if self.conversations.failed else EXIT_OK


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
    conversation_id: str | None
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
    log: str = ""

    @property
    def exit_code(self) -> int:
        return EXIT_PARTIAL if self.failed else EXIT_OK


# --- run, resume, work -----------------------------------------------------------------------


def run_job(
    config: RunConfig,
    *,
    progress: ProgressCallback | None = None,
    stop: threading.Event | None = None,
    crash_hook: CrashHook | None = None,
) -> JobSummary:
    """Plan the source and replay it into the target, into a new job directory.

    Returns the job's summary (its `exit_code` tells success, partial success, or an
    incomplete job). Raises `ConfigError` for bad configuration, `JobError` when the job
    cannot go on (target refuses every call, state store broken).
    """
    validate_target(config.target)
    job_dir = config.job_dir
    if (job_dir / JOB_FILE).exists() or (job_dir / STATE_FILE).exists():
        raise ConfigError(
            f"{job_dir} already holds a job", hint=f"continue it with `migrate resume {job_dir}`"
        )
    source = open_configured_source(config.job.source)
    job_dir.mkdir(parents=True, exist_ok=True)
    state_url = config.state_url or _default_state_url(job_dir)
    store = StateStore.from_url(state_url, create=True)
    try:
        target = _pinned_target(config.target)
        record = JobRecord(
            job_id=uuid.uuid4().hex,
            created_at=time.time(),
            config={
                "job": _secret_free(config.job.model_dump(mode="json")),
                "replay": config.replay.model_dump(mode="json"),
            },
            source=source.describe(),
            target=target.model_dump(mode="json"),
        )
        store.create_job(record)
        _write_job_file(job_dir, record.job_id, config.state_url)
        outcomes = iterate_plans(source, config.job.policy)
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


def resume_job(
    config: ResumeConfig,
    *,
    progress: ProgressCallback | None = None,
    stop: threading.Event | None = None,
    crash_hook: CrashHook | None = None,
) -> JobSummary:
    """Finish an interrupted job: check the source, reconcile what was in flight, go on."""
    store = open_job(config.job)
    try:
        job = store.job()
        if job.state == "rolled_back":
            raise ConfigError(f"{_name(config.job)} was rolled back; start a new run instead")
        stored_replay = ReplayOptions.model_validate(job.config.get("replay", {}))
        replay = stored_replay.model_copy(
            update={"concurrency": config.concurrency or stored_replay.concurrency}
        )
        target = TargetConfig.model_validate(job.target)
        updates: dict[str, Any] = {}
        if config.timeout is not None:
            updates["timeout"] = config.timeout
        if config.server_options is not None:
            updates["server_options"] = config.server_options
        target = target.model_copy(update=updates)
        validate_target(target)
        _take_over(store)
        planner: _Planner | None = None
        stored = store.planned_count()
        if config.check_source:
            job_config = JobConfig.model_validate(job.config["job"])
            try:
                source = open_source(job_config.source)
            except SourceOpenError as exc:
                raise ConfigError(
                    f"cannot re-read the source to check it: {exc}",
                    hint="use --no-source-check to replay the stored plans as they are",
                ) from exc
            outcomes = iterate_plans(source, job_config.policy)
            _check_source(store, outcomes)
            planner = _Planner(store, outcomes, first_seq=stored)
        else:
            if not job.planning_complete:
                raise ConfigError(
                    "the run stopped before the whole source was planned; "
                    "resume needs the source (drop --no-source-check)"
                )
            _retry_transient_failures(store)
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
        stored_replay = ReplayOptions.model_validate(job.config.get("replay", {}))
        updates: dict[str, Any] = {}
        if config.concurrency is not None:
            updates["concurrency"] = config.concurrency
        if config.lease is not None:
            updates["lease"] = config.lease
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
        self, store: StateStore, outcomes: Iterator[PlanOutcome], *, first_seq: int
    ) -> None:
        self.store = store
        self.outcomes = outcomes
        self.seq = first_seq

    async def run(self, planned: asyncio.Event, stop: threading.Event, listener: _Listener) -> None:
        """Plan until the source ends (then mark planning complete) or a stop is requested."""
        loop = asyncio.get_running_loop()
        # One thread only: some sources hold connections that must stay on one thread.
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="migrate-plan")
        try:
            while not stop.is_set():
                try:
                    chunk = await loop.run_in_executor(executor, _take, self.outcomes, PLAN_CHUNK)
                except Exception as exc:
                    raise JobError(
                        f"reading the source failed after {self.seq} records: {exc}",
                        hint="fix the source, then `migrate resume` the job",
                    ) from exc
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

    async def replay() -> None:
        async with open_target(target_config, job_dir=job_dir) as target:
            session.attach(target)
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
                planning = asyncio.create_task(planner.run(planned, stop, listener))
            work = claimed_work(
                store,
                session,
                batch=min(options.concurrency, CLAIM_BATCH),
                stop=stop,
                planning=planning,
                planned=planned,
                idle=lambda: listener.refresh(store) if planner is None else None,
            )
            try:
                await replayer.replay_all(work)
            finally:
                if planning is not None:
                    planning.cancel()
                    await asyncio.gather(planning, return_exceptions=True)

    try:
        asyncio.run(replay())
    except SimulatedCrash:
        session.stop(crashed=True)
        raise
    except BaseException:
        session.stop()
        _finish(store, job_dir, listener)
        raise
    session.stop()
    return _finish(store, job_dir, listener)


def _finish(store: StateStore, job_dir: Path | None, listener: _Listener) -> JobSummary:
    job = store.job()
    totals = store.totals()
    complete = job.planning_complete and totals.pending == 0 and totals.in_progress == 0
    if complete:
        store.update_job(state="finished", finished_at=job.finished_at or time.time())
    elif store.live_workers()[0] == 0:
        store.update_job(state="interrupted", finished_at=None)
    summary = _summary(store, job_dir)
    if job_dir is not None:
        write_report_files(store, job_dir, summary.model_dump(mode="json"))
    listener.finished()
    return summary


def _take(outcomes: Iterator[PlanOutcome], count: int) -> list[PlanOutcome]:
    return list(islice(outcomes, count))


def _check_source(store: StateStore, outcomes: Iterator[PlanOutcome]) -> None:
    """Compare the source with the stored plans; refuse if work in progress would change."""
    conflicts: list[str] = []
    for row, _ in store.iter_conversations():
        outcome = next(outcomes, None)
        if outcome is None:
            missing = ErrorRecord(
                code="missing_from_source",
                message="the conversation is no longer in the source",
                location=row.location,
                conversation_id=row.source_id,
            )
            problem = _compare(store, row, missing, gone=True)
        else:
            problem = _compare(store, row, outcome)
        if problem is not None:
            conflicts.append(problem)
    if conflicts:
        shown = "\n  ".join(conflicts[:20])
        more = f"\n  ... and {len(conflicts) - 20} more" if len(conflicts) > 20 else ""
        raise JobError(
            f"the source changed under {len(conflicts)} conversation(s) already in progress "
            f"or migrated; nothing was sent:\n  {shown}{more}",
            hint="restore the source as it was, or roll back this job and start a new run",
        )


def _compare(
    store: StateStore, row: ConversationRow, outcome: PlanOutcome, *, gone: bool = False
) -> str | None:
    source_id: str | None
    fingerprint: str | None
    if isinstance(outcome, ConversationPlan):
        source_id, fingerprint = outcome.source_id, outcome.fingerprint
    else:
        source_id, fingerprint = outcome.conversation_id, None
    if not gone and row.source_id == source_id and row.fingerprint == fingerprint:
        if row.status == "failed" and row.retryable:
            store.reset_for_retry(row.seq)
        return None
    who = f"conversation {row.source_id} ({row.location})"
    if row.conversation_id is not None:
        if row.status in ("in_progress", "migrated"):
            change = "is no longer in the source" if gone else "changed in the source"
            return f"{who} {change}; it is {row.status} as {row.conversation_id}"
        # Failed after a partial write: it stays failed, with what the report already says.
        return None
    store.replace_outcome(row.seq, outcome)
    return None


def _retry_transient_failures(store: StateStore) -> None:
    for row, _ in store.iter_conversations(statuses=["failed"]):
        if row.retryable:
            store.reset_for_retry(row.seq)


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
            )
        )


# --- status, report ----------------------------------------------------------------------------


def job_status(ref: JobRef) -> JobSummary:
    """Counts of the job as the state store holds them (no target call)."""
    store = open_job(ref)
    try:
        return _summary(store, ref.job_dir)
    finally:
        store.close()


def write_report(ref: JobRef, *, out: Path | None = None) -> list[Path]:
    """(Re)write the report files into `out` (default: the job directory); returns their paths."""
    directory = _output_dir(ref, out, "the report")
    store = open_job(ref)
    try:
        summary = _summary(store, ref.job_dir)
        return write_report_files(store, directory, summary.model_dump(mode="json"))
    finally:
        store.close()


def _output_dir(ref: JobRef, out: Path | None, what: str) -> Path:
    directory = out or ref.job_dir
    if directory is None:
        raise ConfigError(f"without a job directory, {what} needs a directory to go to (--out)")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _summary(store: StateStore, job_dir: Path | None) -> JobSummary:
    job = store.job()
    totals = store.totals()
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


# --- verify ------------------------------------------------------------------------------------


def verify_job(
    ref: JobRef, *, concurrency: int = 8, count_tokens: str | None = None
) -> VerifyReport:
    """Read every migrated conversation back and compare it item by item with its plan.

    With `count_tokens` (a model name), also ask the target for each conversation's input
    tokens (`POST /responses/input_tokens`) and compare them with the estimate.
    """
    token_model = None if count_tokens is None else model_spec(count_tokens)
    store = open_job(ref)
    try:
        target_config = _clean_target(store)

        async def check_all() -> VerifyReport:
            async with open_target(target_config, job_dir=ref.job_dir) as target:
                report = VerifyReport(
                    job_dir=None if ref.job_dir is None else str(ref.job_dir),
                    target=target.description,
                    tokens=None if count_tokens is None else TokenCheck(model=count_tokens),
                )
                gate = asyncio.Semaphore(concurrency)

                async def check(row: ConversationRow, plan: ConversationPlan) -> None:
                    async with gate:
                        result = await _check_conversation(store, target, row, plan)
                        if report.tokens is not None and token_model is not None:
                            await _check_tokens(target, row, plan, report.tokens, token_model)
                    report.checked += 1
                    if result is None:
                        report.matching += 1
                    else:
                        report.differing += 1
                        report.conversations.append(result)

                pending: set[asyncio.Task[None]] = set()
                for row, plan in store.iter_conversations(with_plans=True):
                    if row.status != "migrated" or row.deleted_at is not None:
                        if row.status in ("pending", "in_progress"):
                            report.not_migrated += 1
                        continue
                    assert plan is not None
                    if len(pending) >= concurrency * 2:
                        done, pending = await asyncio.wait(
                            pending, return_when=asyncio.FIRST_COMPLETED
                        )
                        for task in done:
                            task.result()
                    pending.add(asyncio.create_task(check(row, plan)))
                if pending:
                    for outcome in await asyncio.gather(*pending, return_exceptions=True):
                        if isinstance(outcome, BaseException):
                            raise outcome
                report.conversations.sort(key=lambda c: c.location)
                return report

        return asyncio.run(check_all())
    finally:
        store.close()


async def _check_conversation(
    store: StateStore, target: Target, row: ConversationRow, plan: ConversationPlan
) -> ConversationCheck | None:
    conversation_id = row.conversation_id
    assert conversation_id is not None
    check = ConversationCheck(
        source_id=row.source_id,
        location=row.location,
        conversation_id=conversation_id,
        planned=len(plan.items),
        found=0,
        problems=[],
    )
    try:
        listed = await _with_retries(lambda: target.list_items(conversation_id))
    except CallError as error:
        check.problems.append(
            ItemProblem(kind="missing", detail=f"cannot read the conversation: {error.message}")
        )
        return check
    check.found = len(listed)
    check.problems = compare_with_plan(plan, listed, store.item_ids(row.seq))
    return check if check.problems else None


async def _check_tokens(
    target: Target,
    row: ConversationRow,
    plan: ConversationPlan,
    check: TokenCheck,
    model: ModelSpec,
) -> None:
    conversation_id = row.conversation_id
    assert conversation_id is not None
    estimate = count_items([planned.item for planned in plan.items], model).total

    async def count() -> int:
        try:
            return await exact_input_tokens(
                target.client, conversation_id=conversation_id, model=check.model
            )
        except openai.APIError as exc:
            raise classify(exc) from exc

    check.add(row.source_id, conversation_id, estimate, await _with_retries(count))


def compare_with_plan(
    plan: ConversationPlan, listed: list[dict[str, Any]], recorded: dict[int, str]
) -> list[ItemProblem]:
    """Every difference between the items a conversation holds and its plan.

    Items are matched by the ids the job recorded when they landed; content is compared after
    the target's normalisation (`migrate.target.item_difference`).
    """
    problems: list[ItemProblem] = []
    index_of = {str(item.get("id")): index for index, item in enumerate(listed)}
    expected_ids = {item_id: position for position, item_id in recorded.items()}
    found_positions: list[int] = []
    for position, planned in enumerate(plan.items):
        item_id = recorded.get(position)
        if item_id is None or item_id not in index_of:
            problems.append(
                ItemProblem(
                    kind="missing",
                    position=position,
                    item_id=item_id,
                    detail=f"planned item {position} (source {planned.source_id}) is not there",
                )
            )
            continue
        found_positions.append(index_of[item_id])
        difference = item_difference(planned.item, listed[index_of[item_id]])
        if difference is not None:
            problems.append(
                ItemProblem(kind="changed", position=position, item_id=item_id, detail=difference)
            )
    if found_positions != sorted(found_positions):
        problems.append(
            ItemProblem(kind="reordered", detail="the items are not in the planned order")
        )
    for index, item in enumerate(listed):
        listed_id = str(item.get("id"))
        if listed_id in expected_ids:
            continue
        copies = [
            position
            for position, planned in enumerate(plan.items)
            if item_difference(planned.item, item) is None
        ]
        if copies:
            problems.append(
                ItemProblem(
                    kind="duplicated",
                    position=copies[0],
                    item_id=listed_id,
                    detail=f"item {index} repeats planned item {copies[0]}",
                )
            )
        else:
            problems.append(
                ItemProblem(
                    kind="extra",
                    item_id=listed_id,
                    detail=f"item {index} ({item.get('type')}) is not in the plan",
                )
            )
    return problems


# --- rollback ----------------------------------------------------------------------------------


def rollback_preview(ref: JobRef) -> tuple[int, str]:
    """How many conversations a rollback would delete, and from which target."""
    store = open_job(ref)
    try:
        return store.created_count(), describe_target(
            TargetConfig.model_validate(store.job().target)
        )
    finally:
        store.close()


def rollback_job(ref: JobRef, *, concurrency: int = 8, out: Path | None = None) -> RollbackResult:
    """Delete every conversation the job created; record each deletion (and `rollback.jsonl`).

    The log goes to `out`, by default the job directory.
    """
    log_path = _output_dir(ref, out, "the rollback log") / "rollback.jsonl"
    store = open_job(ref)
    try:
        target_config = _clean_target(store)

        async def delete_all() -> RollbackResult:
            async with open_target(target_config, job_dir=ref.job_dir) as target:
                result = RollbackResult(
                    job_dir=None if ref.job_dir is None else str(ref.job_dir),
                    target=target.description,
                    log=str(log_path),
                )
                gate = asyncio.Semaphore(concurrency)
                with log_path.open("a", encoding="utf-8") as log:

                    async def delete(row: ConversationRow) -> None:
                        conversation_id = row.conversation_id
                        assert conversation_id is not None
                        intent = store.record_intent(row.seq, "delete", start=0, count=0)
                        outcome = "deleted"
                        async with gate:
                            try:
                                await _with_retries(
                                    lambda: target.delete_conversation(conversation_id)
                                )
                            except CallError as error:
                                if error.kind != "not_found":
                                    store.resolve_intents([intent], "rejected")
                                    result.failed.append(f"{conversation_id}: {error.message}")
                                    outcome = "failed"
                                else:
                                    outcome = "already_gone"
                        if outcome != "failed":
                            store.record_deleted(row.seq, intent)
                        if outcome == "deleted":
                            result.deleted += 1
                        elif outcome == "already_gone":
                            result.already_gone += 1
                        entry = {
                            "source_id": row.source_id,
                            "conversation_id": conversation_id,
                            "outcome": outcome,
                            "at": time.time(),
                        }
                        log.write(json.dumps(entry) + "\n")

                    tasks = [
                        asyncio.create_task(delete(row))
                        for row, _ in store.iter_conversations()
                        if row.conversation_id is not None and row.deleted_at is None
                    ]
                    for outcome in await asyncio.gather(*tasks, return_exceptions=True):
                        if isinstance(outcome, BaseException):
                            raise outcome
                result.possible_orphans = store.totals().possible_orphans
                return result

        result = asyncio.run(delete_all())
        if not result.failed:
            store.update_job(state="rolled_back")
        return result
    finally:
        store.close()


async def _with_retries(call: Callable[[], Any]) -> Any:
    """A read or a delete, retried on anything that may pass (they are safe to repeat)."""
    for attempt in range(READ_ATTEMPTS):
        try:
            return await call()
        except CallError as error:
            if error.kind not in ("not_applied", "ambiguous") or attempt == READ_ATTEMPTS - 1:
                raise
            if error.retry_after is None:
                await asyncio.sleep(min(8.0, 0.25 * 2**attempt))
    raise AssertionError("unreachable")


# --- job directory -----------------------------------------------------------------------------


def open_job(ref: JobRef) -> StateStore:
    """Open the state store of an existing job (by its directory, or by store URL and job id)."""
    if ref.job_dir is None:
        if ref.state_url is None or ref.job_id is None:
            raise ConfigError(
                "name the job: its directory, or --state URL and --job JOB_ID",
                hint="`migrate status` on the machine that ran it shows the job id",
            )
        return _checked(StateStore.from_url(ref.state_url), ref.job_id, ref.state_url)
    job_file = ref.job_dir / JOB_FILE
    recorded: dict[str, Any] = {}
    if job_file.exists():
        try:
            recorded = json.loads(job_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read {job_file}: {exc}") from exc
    elif ref.state_url is None and not (ref.job_dir / STATE_FILE).exists():
        raise ConfigError(f"{ref.job_dir} holds no job (no {JOB_FILE}, no {STATE_FILE})")
    url = ref.state_url
    if url is None:
        stored = recorded.get("state_url")
        if stored is None:
            url = _default_state_url(ref.job_dir)
        elif "***" in stored:
            raise ConfigError(
                f"the job's state store URL needs its password: {stored}",
                hint="pass --state (or set MIGRATE_STATE_URL)",
            )
        else:
            url = stored
    store = StateStore.from_url(url)
    # A run killed before it wrote job.json still has its job in the default store.
    if "job_id" in recorded and store.job().job_id != recorded["job_id"]:
        store.close()
        raise ConfigError(
            f"the state store at {shown_url(url)} holds another job than {ref.job_dir}"
        )
    return store if ref.job_id is None else _checked(store, ref.job_id, url)


def _checked(store: StateStore, job_id: str, url: str) -> StateStore:
    """The store, if it holds job `job_id`."""
    try:
        held = store.job().job_id
    except JobError:
        store.close()
        raise
    if held != job_id:
        store.close()
        raise ConfigError(f"the state store at {shown_url(url)} holds job {held}, not {job_id}")
    return store


def _name(ref: JobRef) -> str:
    return str(ref.job_dir) if ref.job_dir is not None else f"job {ref.job_id}"


def _write_job_file(job_dir: Path, job_id: str, state_url: str | None) -> None:
    content = {"job_id": job_id, "state_url": shown_url(state_url) if state_url else None}
    (job_dir / JOB_FILE).write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")


def _default_state_url(job_dir: Path) -> str:
    return f"sqlite:///{(job_dir / STATE_FILE).resolve()}"


def shown_url(url: str) -> str:
    """A database URL fit to print: its password masked."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"


def _pinned_target(config: TargetConfig) -> TargetConfig:
    """The target with its base URL fixed, so that `resume` writes where `run` wrote."""
    if config.kind == "openai":
        return config.model_copy(update={"base_url": resolve_base_url(config)})
    return config


def _clean_target(store: StateStore) -> TargetConfig:
    """The job's target without rehearsal faults (for reading back and deleting)."""
    target = TargetConfig.model_validate(store.job().target)
    return target.model_copy(update={"server_options": {}})


def _secret_free(data: dict[str, Any]) -> dict[str, Any]:
    """The job config with any password in a database URL masked."""
    source = data.get("source")
    if isinstance(source, dict) and isinstance(source.get("url"), str):
        source["url"] = shown_url(source["url"])
    return data
