"""`--processes N`: worker processes of one machine share a job on the default SQLite store."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, func, select

from migrate.cli import main
from migrate.config import build_job_config
from migrate.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, ConfigError
from migrate.jobs.models import JobRef, JobSummary, ProgressUpdate, RunConfig
from migrate.jobs.run import run_job
from migrate.jobs.status import job_status
from migrate.replay.replayer import ReplayOptions
from migrate.replay.target import TargetConfig
from migrate.server.store import ConversationStore
from migrate.server.testing import AdminClient
from migrate.state import schema as state
from tests.replay.helpers import served, start, wait_for_job_id, wait_until, write_source

FAULTS = ("--fault", "drop_after_commit=0.04", "--fault", "error_after_commit=0.04")


def assert_on_server_once(server_db: Path, summary: JobSummary, conversations: int) -> None:
    """The server's own database: each conversation once, holding exactly its items."""
    store = ConversationStore.from_path(server_db)
    try:
        live = store.summaries(include_deleted=False)
    finally:
        store.close()
    assert summary.conversations.migrated == conversations, summary
    assert summary.items.landed == summary.items.planned
    assert sum(1 for s in live if s.item_count) == conversations
    assert sum(s.item_count for s in live) == summary.items.planned
    assert sum(1 for s in live if not s.item_count) <= summary.possible_orphans


def owners(state_db: Path) -> dict[str, int]:
    """Migrated conversations by the worker that finished them."""
    engine = create_engine(f"sqlite:///{state_db}")
    c = state.conversations.c
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(c.claimed_by, func.count())
                .where(c.status == "migrated")
                .group_by(c.claimed_by)
            ).all()
    finally:
        engine.dispose()
    return {str(worker): int(count) for worker, count in rows}


def workers(state_db: Path) -> list[Any]:
    engine = create_engine(f"sqlite:///{state_db}")
    w = state.workers.c
    try:
        with engine.connect() as conn:
            return list(conn.execute(select(w.worker_id, w.pid, w.stopped_at)).all())
    finally:
        engine.dispose()


def joined_all(state_db: Path, count: int) -> list[Any] | None:
    """The job's workers once all `count` processes have joined (else None)."""
    rows = workers(state_db)
    return rows if len(rows) == count else None


def in_flight(state_db: Path, worker_id: str) -> list[int]:
    engine = create_engine(f"sqlite:///{state_db}")
    c = state.conversations.c
    try:
        with engine.connect() as conn:
            query = select(c.seq).where(c.claimed_by == worker_id, c.status == "in_progress")
            return [int(seq) for seq in conn.execute(query).scalars()]
    finally:
        engine.dispose()


@pytest.mark.slow
def test_three_processes_migrate_every_conversation_once_through_faults(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="migrate")
    conversations = 90
    source = write_source(tmp_path / "source.jsonl", conversations=conversations, messages=45)
    server_db = tmp_path / "server.db"
    log = tmp_path / "server.log"
    job_dir = tmp_path / "job"
    updates: list[ProgressUpdate] = []
    held = [False]

    def hold_until_all_joined(point: str, seq: int) -> None:
        # The parent's first write waits for the two children, so that they get work too
        # however slowly they start on a loaded machine.
        if not held[0]:
            held[0] = True
            wait_until(lambda: joined_all(job_dir / "state.db", 3), "all joined", 180)

    with served(server_db, log, "--latency-ms", "30", "--seed", "5", *FAULTS) as base_url:
        config = RunConfig(
            job=build_job_config(source=str(source), job_file=None),
            job_dir=job_dir,
            target=TargetConfig(kind="openai", base_url=base_url, timeout=5.0),
            replay=ReplayOptions(concurrency=2, backoff_base=0.01, settle=0.3),
            processes=3,
        )
        summary = run_job(config, progress=updates.append, crash_hook=hold_until_all_joined)
        with AdminClient(base_url) as admin:
            faults = admin.stats()["faults"]
    assert summary.exit_code == EXIT_OK, summary
    assert faults.get("drop_after_commit", 0) > 0 and faults.get("error_after_commit", 0) > 0
    assert_on_server_once(server_db, summary, conversations)
    finished_by = owners(job_dir / "state.db")
    assert len(finished_by) == 3, finished_by
    # Every worker left the job; the report, written once, counts every conversation.
    assert all(row.stopped_at is not None for row in workers(job_dir / "state.db"))
    assert len((job_dir / "conversations.csv").read_text().splitlines()) == conversations + 1
    # The progress the parent reports counts the children's work too.
    assert updates[-1].event == "finished"
    assert updates[-1].conversations_done == conversations
    assert updates[-1].items_landed == summary.items.planned
    # The children's log records reached the parent's logging.
    started = {
        str(getattr(record, "worker_id", ""))
        for record in caplog.records
        if getattr(record, "event", None) == "session_start"
    }
    assert started == set(finished_by)
    assert "database is locked" not in caplog.text


@pytest.mark.slow
def test_a_child_killed_mid_job_leaves_its_conversations_to_the_others(tmp_path: Path) -> None:
    conversations = 150
    source = write_source(tmp_path / "source.jsonl", conversations=conversations, messages=45)
    server_db = tmp_path / "server.db"
    log = tmp_path / "processes.log"
    job_dir = tmp_path / "job"
    state_db = job_dir / "state.db"
    with served(server_db, log, "--latency-ms", "40", "--seed", "9", *FAULTS) as base_url:
        run = start(
            [
                *("run", str(source), "--target", "openai", "--base-url", base_url),
                *("--job-dir", str(job_dir), "--processes", "3", "--concurrency", "2"),
                *("--timeout", "5", "--settle", "0.3"),
            ],
            log,
        )
        try:
            wait_for_job_id(job_dir, lambda: run.poll() is None)
            joined = wait_until(lambda: joined_all(state_db, 3), "all joined", 180)
            doomed = next(row for row in joined if row.pid != run.pid)
            held = wait_until(lambda: in_flight(state_db, doomed.worker_id), "a child mid-job", 120)
            os.kill(doomed.pid, signal.SIGKILL)
            assert run.wait(timeout=300) == EXIT_OK, log.read_text(errors="replace")
        finally:
            if run.poll() is None:
                run.kill()
                run.wait()
    output = log.read_text(errors="replace")
    assert f"(pid {doomed.pid}) was killed by signal 9" in output
    summary = job_status(JobRef(job_dir=job_dir))
    assert_on_server_once(server_db, summary, conversations)
    engine = create_engine(f"sqlite:///{state_db}")
    c = state.conversations.c
    with engine.connect() as conn:
        taken = conn.execute(select(c.seq, c.status, c.claimed_by).where(c.seq.in_(held))).all()
    engine.dispose()
    # What the killed child held was finished by the others.
    assert taken and all(row.status == "migrated" for row in taken)
    assert all(row.claimed_by != doomed.worker_id for row in taken)
    assert "database is locked" not in output


@pytest.mark.slow
def test_sigterm_to_the_parent_stops_every_process_and_resume_finishes(tmp_path: Path) -> None:
    conversations = 120
    source = write_source(tmp_path / "source.jsonl", conversations=conversations, messages=45)
    server_db = tmp_path / "server.db"
    log = tmp_path / "processes.log"
    job_dir = tmp_path / "job"
    state_db = job_dir / "state.db"
    with served(server_db, log, "--latency-ms", "40") as base_url:
        run = start(
            [
                *("run", str(source), "--target", "openai", "--base-url", base_url),
                *("--job-dir", str(job_dir), "--processes", "3", "--concurrency", "2"),
                *("--timeout", "5", "--settle", "0.3"),
            ],
            log,
        )
        try:
            wait_for_job_id(job_dir, lambda: run.poll() is None)
            joined = wait_until(lambda: joined_all(state_db, 3), "all joined", 180)
            child = next(row for row in joined if row.pid != run.pid)
            wait_until(lambda: in_flight(state_db, child.worker_id), "a child mid-job", 120)
            run.send_signal(signal.SIGTERM)
            assert run.wait(timeout=120) == EXIT_FAILED, log.read_text(errors="replace")
        finally:
            if run.poll() is None:
                run.kill()
                run.wait()
        # Every worker stopped and said so; no child outlives the parent.
        rows = workers(state_db)
        assert len(rows) == 3 and all(row.stopped_at is not None for row in rows), rows
        for row in rows:
            with pytest.raises(ProcessLookupError):
                os.kill(row.pid, 0)
        stopped = job_status(JobRef(job_dir=job_dir))
        assert stopped.state == "interrupted"
        assert stopped.conversations.migrated < conversations
        resumed = CliRunner().invoke(
            main, ["resume", str(job_dir), "--processes", "2", "--json", "--no-progress"]
        )
        assert resumed.exit_code == EXIT_OK, resumed.output
    summary = job_status(JobRef(job_dir=job_dir))
    assert_on_server_once(server_db, summary, conversations)


def test_a_target_other_processes_cannot_reach_refuses_more_processes(tmp_path: Path) -> None:
    source = write_source(tmp_path / "source.jsonl", conversations=2, messages=3)
    job_dir = tmp_path / "job"
    refused = CliRunner().invoke(
        main, ["run", str(source), "--job-dir", str(job_dir), "--processes", "2"]
    )
    assert refused.exit_code == EXIT_USAGE, refused.output
    assert "other processes cannot reach it" in refused.stderr
    assert "migrate serve" in refused.stderr
    assert not job_dir.exists()
    synced = CliRunner().invoke(
        main, ["sync", str(source), "--job-dir", str(job_dir), "--processes", "2"]
    )
    assert synced.exit_code == EXIT_USAGE, synced.output
    assert "other processes cannot reach it" in synced.stderr
    assert not job_dir.exists()
    # A finished local job cannot be resumed with more processes either.
    assert CliRunner().invoke(main, ["run", str(source), "--job-dir", str(job_dir)]).exit_code == 0
    again = CliRunner().invoke(main, ["resume", str(job_dir), "--processes", "2"])
    assert again.exit_code == EXIT_USAGE, again.output
    assert "other processes cannot reach it" in again.stderr
    memory = RunConfig(
        job=build_job_config(source=str(source), job_file=None),
        job_dir=tmp_path / "other",
        target=TargetConfig(kind="openai", base_url="http://127.0.0.1:9/v1"),
        state_url="sqlite://",
        processes=2,
    )
    with pytest.raises(ConfigError, match="in-memory state store cannot be shared"):
        run_job(memory)
