"""Recording a new job: in the state store first, in one transaction, before any other file.

A `run` (or `sync`) writes nothing before its job is recorded: the job row (config, source,
target) goes into the state store in one transaction, which for a reused store also moves the
finished job before it into the ledger. Only then come `job.json`, `job.log`, planning and
every call. So a process killed at any moment leaves either no job at all (nothing was sent;
`migrate run` starts it again in the same directory) or a job `migrate resume` continues, even
one that never planned.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from adapters.base import Source
from migrate.errors import ConfigError, StateWriteError, files_written
from migrate.jobs.delta import target_identity
from migrate.jobs.directory import (
    JOB_FILE,
    STATE_FILE,
    archive_report_files,
    default_state_url,
    pinned_target,
    recorded_state_url,
    secret_free,
    write_job_file,
)
from migrate.jobs.models import DivergedPolicy, RunConfig
from migrate.plan.pipeline import skipped_files
from migrate.replay.target import TargetConfig, describe_target
from migrate.state.ledger import ledger_size
from migrate.state.records import JobRecord, NoJobError
from migrate.state.store import StateStore


def holds_job(job_dir: Path) -> bool:
    """The directory holds a recorded job: its `job.json`, or a `state.db` with a job in it.

    A `state.db` without a job is what a run killed before it recorded its job leaves.
    """
    if (job_dir / JOB_FILE).exists():
        return True
    if not (job_dir / STATE_FILE).exists():
        return False
    try:
        store = StateStore.from_url(default_state_url(job_dir))
    except NoJobError:
        return False
    try:
        return current_job(store) is not None
    finally:
        store.close()


def record_job(
    config: RunConfig, *, held: bool, diverged: DivergedPolicy | None, source: Source
) -> tuple[StateStore, JobRecord, TargetConfig]:
    """Record the job `config` describes (after the refusals a `run` makes); returns the open
    store, the job and its pinned target. `held`: the job directory holds an earlier job."""
    job_dir = config.job_dir
    target = pinned_target(config.target)
    identity = target_identity(target, job_dir)
    named_url = config.state_url or (recorded_state_url(job_dir) if held else None)
    try:
        with files_written(str(job_dir)):
            job_dir.mkdir(parents=True, exist_ok=True)
        store = StateStore.from_url(named_url or default_state_url(job_dir), create=True)
    except StateWriteError as exc:
        _not_recorded(exc)
        raise
    recorded = False
    try:
        previous = current_job(store)
        retire: str | None = None
        if previous is not None:
            retire = str(previous.config.get("ledger_target") or identity)
            if diverged is None and not config.allow_duplicates:
                _refuse_known_target(store, identity, retire, target)
            if held and previous.state in ("finished", "rolled_back"):
                archive_report_files(job_dir, previous.job_id)
        elif diverged is None and not config.allow_duplicates:
            _refuse_known_target(store, identity, None, target)
        record = JobRecord(
            job_id=uuid.uuid4().hex,
            created_at=time.time(),
            config={
                "job": secret_free(config.job.model_dump(mode="json")),
                "replay": config.replay.model_dump(mode="json"),
                "subset": config.subset.model_dump(mode="json"),
                "sync": None if diverged is None else {"diverged": diverged},
                "ledger_target": identity,
                "compress": config.compress,
                "skipped_files": skipped_files(source).model_dump(mode="json"),
            },
            source=source.describe(),
            target=target.model_dump(mode="json"),
        )
        store.create_job(record, retire=retire)
        recorded = True
        with files_written(f"{job_dir / JOB_FILE}"):
            write_job_file(job_dir, record.job_id, named_url)
    except StateWriteError as exc:
        store.close()
        if recorded:
            exc.resume_with(str(job_dir))
        else:
            _not_recorded(exc)
        raise
    except BaseException:
        store.close()
        raise
    return store, record, target


def _not_recorded(error: StateWriteError) -> None:
    """The job was not recorded: the run starts again, there is nothing to resume."""
    error.hint = f"{error.fix}, then start the run again (nothing was recorded or sent)"


def current_job(store: StateStore) -> JobRecord | None:
    try:
        return store.job()
    except NoJobError:
        return None


def _refuse_known_target(
    store: StateStore, identity: str, previous: str | None, target: TargetConfig
) -> None:
    """A `run` refuses a target the ledger (or the store's finished job) already wrote to."""
    known = ledger_size(store.engine, identity)
    if previous == identity:
        known += store.created_count()
    if known:
        raise ConfigError(
            f"the state store's ledger already holds {known} conversation(s) migrated to "
            f"{describe_target(target)}; another run would create them again",
            hint="use `migrate sync` to migrate only what is new (or --allow-duplicates to "
            "migrate everything again)",
        )
