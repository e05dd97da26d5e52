"""A `migrate run` killed at any moment, even before it planned anything, can be resumed.

The run's command line is kept in the job directory (`invocation.json`) before the verb's
heavy imports, and the job is recorded in the state store (one transaction) before any other
file, plan or call: a kill before anything was kept leaves no directory and sent nothing
(`resume` says so; `run` starts it again in the same directory), a kill after it leaves a
directory `resume` completes the job from (starting the run as it was given, if the job was
not recorded yet).
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest
from click.testing import CliRunner

from migrate.cli import main
from migrate.cli.invocation import INVOCATION_FILE
from migrate.errors import EXIT_OK, EXIT_USAGE
from migrate.jobs.models import JobRef, ResumeConfig
from migrate.jobs.record import holds_job
from migrate.jobs.run import resume_job, run_job
from migrate.jobs.status import job_status
from migrate.replay.replayer import SimulatedCrash
from tests.replay.helpers import assert_exactly_once, run_config, server_contents, write_source

CONVERSATIONS = 12


def migrate(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "migrate", *arguments, "--no-progress"],
        capture_output=True,
        text=True,
        timeout=300,
    )


def kill_run(source: Path, job_dir: Path, *, delay: float, after_record: bool) -> None:
    """Start `migrate run` and SIGKILL it `delay` s after it starts (or after `job.json`)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "migrate", "run", str(source), "--job-dir", str(job_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    if after_record:
        deadline = time.monotonic() + 120.0
        while not (job_dir / "job.json").exists() and time.monotonic() < deadline:
            if process.poll() is not None:
                break
            time.sleep(0.005)
    time.sleep(delay)
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)


def finish_after_kill(source: Path, job_dir: Path) -> str:
    """Resume the killed run (or start it again if nothing was kept); returns which:
    "resumed", "started by resume" (only the command line was kept) or "run again"."""
    kept = (job_dir / INVOCATION_FILE).exists() and not holds_job(job_dir)
    resumed = migrate("resume", str(job_dir))
    if kept:
        assert resumed.returncode == 0, resumed.stderr
        assert "not recorded yet" in resumed.stderr
        return "started by resume"
    if not holds_job(job_dir):
        assert resumed.returncode == 2, resumed.stderr
        assert "holds no job" in resumed.stderr and "sent nothing" in resumed.stderr
        assert "Traceback" not in resumed.stderr
        if (job_dir / "server.db").exists():
            assert server_contents(job_dir).conversations == 0
        again = migrate("run", str(source), "--job-dir", str(job_dir))
        assert again.returncode == 0, again.stderr
        return "run again"
    assert resumed.returncode == 0, resumed.stderr
    return "resumed"


def test_a_job_killed_before_it_planned_anything_is_resumed(tmp_path: Path) -> None:
    source = write_source(tmp_path / "source.jsonl", conversations=CONVERSATIONS, messages=4)
    job_dir = tmp_path / "job"

    def die(_: Path) -> None:  # right after the job is recorded, before any plan or call
        raise SimulatedCrash("killed")

    with pytest.raises(SimulatedCrash):
        run_job(run_config(source, job_dir), on_ready=die)
    status = job_status(JobRef(job_dir=job_dir))
    assert status.state == "created" and status.conversations.total == 0
    summary = resume_job(ResumeConfig(job=JobRef(job_dir=job_dir)))
    assert summary.exit_code == 0
    assert_exactly_once(job_dir, migrated=CONVERSATIONS)


def test_a_directory_left_without_a_job_is_refused_by_resume_and_taken_by_run(
    tmp_path: Path,
) -> None:
    source = write_source(tmp_path / "source.jsonl", conversations=3, messages=2)
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    (job_dir / "state.db").write_bytes(b"")  # a kill while SQLite created the file
    assert not holds_job(job_dir)
    assert finish_after_kill(source, job_dir) == "run again"
    assert_exactly_once(job_dir, migrated=3)


@pytest.mark.slow
def test_sigkill_at_early_moments_then_resume_completes_the_job_once(tmp_path: Path) -> None:
    source = write_source(tmp_path / "source.jsonl", conversations=CONVERSATIONS, messages=4)
    outcomes: list[str] = []
    # 0.1 s after the start, then at the record and just after it (planning, first calls).
    moments = [(0.0, False), (0.1, False), (0.3, False), (0.0, True), (0.05, True), (0.3, True)]
    for number, (delay, after_record) in enumerate(moments):
        job_dir = tmp_path / f"job{number}"
        kill_run(source, job_dir, delay=delay, after_record=after_record)
        outcomes.append(finish_after_kill(source, job_dir))
        assert_exactly_once(job_dir, migrated=CONVERSATIONS)
    # the kills at and after the record found a job to resume
    assert outcomes[3:] == ["resumed"] * 3, outcomes


def test_a_run_dying_while_it_loads_leaves_what_resume_starts_it_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write_source(tmp_path / "source.jsonl", conversations=3, messages=5)
    job_dir = tmp_path / "job"
    state = "postgresql+psycopg://migrate:s3cret@db.invalid/state"
    real_import = importlib.import_module

    def die_loading_the_verb(name: str, package: str | None = None) -> ModuleType:
        if name == "migrate.cli.run":
            raise SimulatedCrash("killed while importing")
        return real_import(name, package)

    arguments = ["run", str(source), "--job-dir", str(job_dir), "--settle", "0.1"]
    with monkeypatch.context() as patched:
        patched.setattr(importlib, "import_module", die_loading_the_verb)
        with pytest.raises(SimulatedCrash):
            main.main([*arguments, "--state", state], standalone_mode=False)
    kept = json.loads((job_dir / INVOCATION_FILE).read_text(encoding="utf-8"))
    assert kept["verb"] == "run"
    assert "s3cret" not in json.dumps(kept)
    assert "postgresql+psycopg://migrate:***@db.invalid/state" in kept["args"]
    # The password was not kept: resume cannot start the run without it, and says so.
    refused = CliRunner().invoke(main, ["resume", str(job_dir)])
    assert refused.exit_code == EXIT_USAGE, refused.output
    assert "password" in refused.output and "s3cret" not in refused.output
    # Killed again while loading, this time without --state: resume starts the run.
    with monkeypatch.context() as patched:
        patched.setattr(importlib, "import_module", die_loading_the_verb)
        with pytest.raises(SimulatedCrash):
            main.main(arguments, standalone_mode=False)
    resumed = CliRunner().invoke(main, ["resume", str(job_dir)])
    assert resumed.exit_code == EXIT_OK, resumed.output
    assert "not recorded yet" in resumed.output
    assert_exactly_once(job_dir, migrated=3)
    # A finished job resumes as itself, not as its command line again.
    again = CliRunner().invoke(main, ["resume", str(job_dir)])
    assert again.exit_code == EXIT_OK, again.output
    assert "not recorded yet" not in again.output
    assert_exactly_once(job_dir, migrated=3)


def test_a_run_that_stops_before_recording_its_job_keeps_nothing(tmp_path: Path) -> None:
    job_dir = tmp_path / "job"
    missing = str(tmp_path / "missing.jsonl")
    refused = CliRunner().invoke(main, ["run", missing, "--job-dir", str(job_dir)])
    assert refused.exit_code == EXIT_USAGE, refused.output
    assert not job_dir.exists()
    resumed = CliRunner().invoke(main, ["resume", str(job_dir)])
    assert resumed.exit_code == EXIT_USAGE
    assert "sent nothing" in resumed.output
