"""State that cannot be written stops the job with exit 3, says what to fix, and loses nothing.

How the tests make the state unwritable, honestly and as root too (where `chmod` stops no
write): "full" is SQLite's own limit on the database's size (`PRAGMA max_page_count`, set on
each connection of the job's state store), which fails writes with "database or disk is full"
exactly as a full disk does; "read-only" is the state file opened read-only through SQLite's
URI (`mode=ro`), which fails writes with "attempt to write a readonly database". A `chmod`
of the job directory is tested too where it stops writes (not as root).
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine, event

import migrate.state.store as store_module
from migrate.cli import main
from migrate.errors import EXIT_FAILED, EXIT_OK, StateWriteError, files_written
from migrate.jobs.models import JobRef
from migrate.jobs.run import run_job
from migrate.jobs.status import job_status
from migrate.replay.replayer import SimulatedCrash
from migrate.sqlite import configure_sqlite
from migrate.state.store import StateStore
from migrate.state.unwritable import database_cause
from tests.replay.helpers import assert_exactly_once, run_config, write_source
from tests.replay.test_replay_crash import crash_at

CONVERSATIONS = 30


def cli(*arguments: str) -> Result:
    return CliRunner().invoke(main, [*arguments, "--no-progress"])


def assert_stopped_cleanly(result: Result, *, says: str, job_dir: Path) -> None:
    """Exit 3 with the cause, what to do and how to resume; no traceback, nothing unexpected."""
    assert result.exit_code == EXIT_FAILED, result.output
    assert says in result.stderr, result.stderr
    assert f"`migrate resume {job_dir}`" in result.stderr, result.stderr
    assert "nothing is lost" in result.stderr
    assert "Traceback" not in result.output and "unexpected" not in result.output


@pytest.fixture
def full_state_store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Every state store opened from now on holds at most a few pages beyond its schema."""
    empty = StateStore.from_url(f"sqlite:///{tmp_path / 'empty.db'}", create=True)
    with empty.engine.connect() as conn:
        pages = int(conn.exec_driver_sql("PRAGMA page_count").scalar_one())
    empty.close()

    def limited(engine: Engine, **options: Any) -> None:
        configure_sqlite(engine, **options)

        @event.listens_for(engine, "connect")
        def _limit(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.execute(f"PRAGMA max_page_count = {pages + 12}")

    monkeypatch.setattr(store_module, "configure_sqlite", limited)
    yield
    monkeypatch.undo()


def test_a_full_state_store_stops_the_run_with_exit_3_then_resume_lands_everything_once(
    tmp_path: Path, full_state_store: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write_source(tmp_path / "source.jsonl", conversations=CONVERSATIONS, messages=20)
    job_dir = tmp_path / "job"
    ran = cli("run", str(source), "--job-dir", str(job_dir))
    assert_stopped_cleanly(ran, says="state.db is full (database or disk is full)", job_dir=job_dir)
    assert "free space on the disk" in ran.stderr
    monkeypatch.undo()  # space freed
    stopped = job_status(JobRef(job_dir=job_dir))
    assert stopped.conversations.migrated < CONVERSATIONS
    # The write the full store could not record settles first: the run is gone, so briefly.
    resumed = cli("resume", str(job_dir), "--settle", "0.1")
    assert resumed.exit_code == EXIT_OK, resumed.output
    assert_exactly_once(job_dir, migrated=CONVERSATIONS)


def test_a_read_only_state_file_stops_resume_with_exit_3_and_changes_nothing(
    tmp_path: Path,
) -> None:
    source = write_source(tmp_path / "source.jsonl", conversations=6, messages=12)
    job_dir = tmp_path / "job"
    with pytest.raises(SimulatedCrash):
        run_job(run_config(source, job_dir), crash_hook=crash_at("after_append_call"))
    before = job_status(JobRef(job_dir=job_dir))
    read_only = f"sqlite:///file:{job_dir / 'state.db'}?mode=ro&uri=true"
    refused = cli("resume", str(job_dir), "--state", read_only)
    assert_stopped_cleanly(refused, says="state.db is read-only", job_dir=job_dir)
    assert "writable for this user" in refused.stderr
    after = job_status(JobRef(job_dir=job_dir))
    assert after.conversations == before.conversations and after.items == before.items
    resumed = cli("resume", str(job_dir))
    assert resumed.exit_code == EXIT_OK, resumed.output
    assert_exactly_once(job_dir, migrated=6)


def chmod_stops_writes(directory: Path) -> bool:
    """False where permissions do not apply (root with CAP_DAC_OVERRIDE)."""
    probe = directory / "probe"
    probe.write_text("")
    probe.chmod(0o444)
    try:
        probe.open("a").close()
    except PermissionError:
        return True
    finally:
        probe.unlink()
    return False


def test_a_read_only_job_directory_stops_resume_with_exit_3(tmp_path: Path) -> None:
    if not chmod_stops_writes(tmp_path):
        pytest.skip("chmod stops no write here (root); the read-only URI test covers it")
    source = write_source(tmp_path / "source.jsonl", conversations=4, messages=12)
    job_dir = tmp_path / "job"
    with pytest.raises(SimulatedCrash):
        run_job(run_config(source, job_dir), crash_hook=crash_at("after_append_call"))
    modes = {path: path.stat().st_mode for path in [job_dir, *job_dir.iterdir()]}
    for path in modes:
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        refused = cli("resume", str(job_dir))
        assert refused.exit_code == EXIT_FAILED, refused.output
        assert "read-only" in refused.stderr and "Traceback" not in refused.output
    finally:
        for path, mode in modes.items():
            path.chmod(mode)
    assert cli("resume", str(job_dir)).exit_code == EXIT_OK
    assert_exactly_once(job_dir, migrated=4)


class _PgError(Exception):
    sqlstate = "53100"


def test_every_kind_of_unwritable_state_is_recognised() -> None:
    assert database_cause(_PgError("could not extend file")) == "full"
    assert database_cause(Exception(1290, "running with the --read-only option")) == "read-only"
    assert database_cause(Exception(1021, "Disk full")) == "full"
    assert database_cause(Exception("attempt to write a readonly database")) == "read-only"
    assert database_cause(Exception("no such table: job")) is None
    with pytest.raises(StateWriteError, match="is full") as raised, files_written("report"):
        raise OSError(errno.ENOSPC, "No space left on device", "/jobs/x/items.csv")
    assert "free space on the disk (or database server) that holds /jobs/x/items.csv" in str(
        raised.value
    )
    with pytest.raises(FileNotFoundError), files_written("report"):
        raise FileNotFoundError(errno.ENOENT, "gone")


def test_a_run_whose_state_store_is_read_only_records_nothing_and_says_to_start_again(
    tmp_path: Path,
) -> None:
    state = tmp_path / "shared.db"
    StateStore.from_url(f"sqlite:///{state}", create=True).close()
    source = write_source(tmp_path / "source.jsonl", conversations=2, messages=2)
    job_dir = tmp_path / "job"
    ran = cli(
        "run", str(source), "--job-dir", str(job_dir),
        "--state", f"sqlite:///file:{state}?mode=ro&uri=true",
    )  # fmt: skip
    assert ran.exit_code == EXIT_FAILED, ran.output
    assert "shared.db is read-only" in ran.stderr and "start the run again" in ran.stderr
    assert "Traceback" not in ran.output and not (job_dir / "job.json").exists()
    again = cli("run", str(source), "--job-dir", str(job_dir), "--state", f"sqlite:///{state}")
    assert again.exit_code == EXIT_OK, again.output
