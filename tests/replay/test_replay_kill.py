"""`kill -9` of a real `migrate run` at random moments, then `migrate resume`, several times."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from migrate.errors import MigrateError
from migrate.jobs.models import JobRef
from migrate.jobs.status import job_status
from tests.replay.helpers import assert_exactly_once, write_source

ROUNDS = 5


def start(arguments: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "migrate", *arguments],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


def wait_until_started(log: Path, offset: int, process: subprocess.Popen[bytes]) -> None:
    """Until the process has its target up (it prints `target:`), so kills land mid-job."""
    deadline = time.monotonic() + 60.0
    while process.poll() is None and time.monotonic() < deadline:
        if b"target:" in log.read_bytes()[offset:]:
            return
        time.sleep(0.01)


def wait_until_landing(job_dir: Path, before: int, process: subprocess.Popen[bytes]) -> None:
    """Until this process has landed an item, however slow the machine is to get going."""
    deadline = time.monotonic() + 60.0
    while process.poll() is None and time.monotonic() < deadline:
        try:
            if job_status(JobRef(job_dir=job_dir)).items.landed > before:
                return
        except MigrateError:
            pass  # the job is not recorded yet
        time.sleep(0.02)


@pytest.mark.slow
def test_kill_9_at_random_moments_then_resume_lands_everything_once(tmp_path: Path) -> None:
    # large enough that five short sessions cannot finish it, even on a fast machine
    source = write_source(tmp_path / "source.jsonl", conversations=300, messages=30)
    job_dir = tmp_path / "job"
    log = tmp_path / "migrate.log"
    chance = random.Random(20261122)
    killed = 0
    landed: list[int] = []
    for round_number in range(ROUNDS):
        if round_number == 0:
            arguments = ["run", str(source), "--job-dir", str(job_dir)]
        else:
            arguments = ["resume", str(job_dir)]
        offset = log.stat().st_size if log.exists() else 0
        # The latency keeps a round longer than the kill window (0.5 s), so kills land mid-job.
        # a small settle time: the in-process server died with the process, nothing lands late
        process = start(
            [*arguments, "--concurrency", "4", "--latency-ms", "15", "--settle", "0.2"], log
        )
        wait_until_started(log, offset, process)
        # every other kill waits for the first landed item: the kills must fall mid-work even
        # when a loaded machine makes the start slow; the others may fall anywhere
        if round_number % 2 == 0:
            wait_until_landing(job_dir, landed[-1] if landed else 0, process)
        time.sleep(chance.uniform(0.0, 0.5))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            killed += 1
        process.wait(timeout=30)
        landed.append(job_status(JobRef(job_dir=job_dir)).items.landed)
    assert killed >= 3, log.read_text(errors="replace")
    # The kills fell in the middle of the work, not only before or after it.
    planned = job_status(JobRef(job_dir=job_dir)).items.planned
    assert any(0 < count < planned for count in landed), landed
    assert landed == sorted(landed), landed
    final = start(["resume", str(job_dir), "--settle", "0.2"], log)
    assert final.wait(timeout=120) == 0, log.read_text(errors="replace")
    verify = subprocess.run(
        [sys.executable, "-m", "migrate", "verify", str(job_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "differing:   0" in verify.stdout
    assert_exactly_once(job_dir, migrated=300)
