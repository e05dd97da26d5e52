"""429 is pacing, not failure: a storm of 429s fails no conversation and spends no retry budget,
on writes or on reads; a storm longer than `--max-wait` stops the job cleanly for a resume."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from migrate.cli import main
from migrate.errors import EXIT_FAILED, EXIT_OK
from migrate.jobs.directory import open_job
from migrate.jobs.models import JobRef, ResumeConfig
from migrate.jobs.run import resume_job, run_job
from migrate.jobs.status import job_status
from migrate.jobs.verify import verify_job
from migrate.replay.replayer import CrashPoint, SimulatedCrash
from migrate.server.options import ServerOptions
from migrate.server.testing import AdminClient, ServerFactory
from tests.replay.helpers import assert_exactly_once, run_config

STORM: dict[str, Any] = {"rpm": 6000, "rate_headers": False}
"""A limit another client spends entirely while drained; no x-ratelimit headers, as OpenAI."""


def test_a_storm_of_429s_fails_no_conversation_even_without_retry_budget(
    tmp_path: Path, source_file: Callable[..., Path]
) -> None:
    source = source_file(conversations=4, messages=25)
    job_dir = tmp_path / "job"
    config = run_config(
        source,
        job_dir,
        concurrency=4,
        retry_budget=0,
        server={**STORM, "drain_seconds": 1.0},
    )
    started = time.monotonic()
    summary = run_job(config)
    assert time.monotonic() - started >= 1.0, "the job went on only once the storm ended"
    assert summary.exit_code == EXIT_OK, summary
    assert summary.conversations.failed == 0
    # Every one of the first writes met a 429 and was sent again, free of charge.
    assert summary.retries >= 4
    assert_exactly_once(job_dir, migrated=4)


def test_reads_meeting_429s_wait_without_spending_the_budget(
    tmp_path: Path, source_file: Callable[..., Path]
) -> None:
    source = source_file(conversations=4, messages=30)
    job_dir = tmp_path / "job"

    def crash(point: CrashPoint, seq: int) -> None:
        if point == "after_append_call":
            raise SimulatedCrash(f"{point} (conversation #{seq})")

    with pytest.raises(SimulatedCrash):
        run_job(run_config(source, job_dir, concurrency=2, retry_budget=0), crash_hook=crash)
    # The resume lists what was in flight first, and those reads meet the storm.
    summary = resume_job(
        ResumeConfig(job=JobRef(job_dir=job_dir), server_options={**STORM, "drain_seconds": 1.0})
    )
    assert summary.exit_code == EXIT_OK, summary
    assert summary.reconciliations >= 1
    assert summary.retries >= 1
    assert_exactly_once(job_dir, migrated=4)


def test_a_storm_longer_than_max_wait_stops_the_job_and_resume_completes_it(
    tmp_path: Path, source_file: Callable[..., Path], local_server: ServerFactory
) -> None:
    base_url = local_server(ServerOptions(**STORM, drain_seconds=120))
    source = source_file(conversations=5, messages=30)
    job_dir = tmp_path / "job"
    runner = CliRunner()
    target = ["--target", "openai", "--base-url", base_url, "--job-dir", str(job_dir)]
    ran = runner.invoke(
        main,
        [
            "run",
            str(source),
            *target,
            "--max-wait",
            "0.5",
            "--concurrency",
            "2",
            "--retry-budget",
            "0",
        ],
    )
    assert ran.exit_code == EXIT_FAILED, ran.output
    assert "the account is rate limited since " in ran.stderr
    assert "--max-wait 0.5" in ran.stderr
    assert f"migrate resume {job_dir}" in ran.stderr
    assert "Traceback" not in ran.output
    stopped = job_status(JobRef(job_dir=job_dir))
    assert stopped.state == "interrupted"
    assert stopped.conversations.failed == 0
    assert stopped.conversations.migrated < 5
    # Nothing in doubt: every call that was sent has its outcome recorded.
    store = open_job(JobRef(job_dir=job_dir))
    try:
        assert all(not store.open_intents(row.seq) for row, _ in store.iter_conversations())
    finally:
        store.close()

    with AdminClient(base_url) as admin:
        admin.drain(0)  # the other client is done with the account
        resumed = runner.invoke(main, ["resume", str(job_dir)])
        assert resumed.exit_code == EXIT_OK, resumed.output
        stats = admin.stats()
    summary = job_status(JobRef(job_dir=job_dir))
    assert summary.conversations.migrated == 5
    assert summary.items.landed == summary.items.planned
    report = verify_job(JobRef(job_dir=job_dir))
    assert report.checked == 5 and report.differing == 0
    # Exactly once on the server itself: no item committed twice, no conversation but orphans.
    assert stats["items_committed"] == summary.items.planned
    assert stats["conversations_created"] - 5 <= summary.possible_orphans
