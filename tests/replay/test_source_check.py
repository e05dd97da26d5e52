"""`resume` matches the source with the stored plans by source id, not by position."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from migrate.jobs.models import JobRef, ResumeConfig
from migrate.jobs.run import resume_job, run_job
from migrate.jobs.status import job_status
from migrate.replay.replayer import SimulatedCrash
from migrate.state.store import StateStore
from tests.replay.helpers import assert_exactly_once, run_config, write_source
from tests.replay.test_replay_crash import crash_at

CONVERSATIONS = 8


def interrupted_job(tmp_path: Path) -> tuple[Path, Path, list[str]]:
    """A job stopped after two conversations migrated; the source's lines."""
    source = write_source(tmp_path / "source.jsonl", conversations=CONVERSATIONS, messages=25)
    job_dir = tmp_path / "job"
    with pytest.raises(SimulatedCrash):
        run_job(
            run_config(source, job_dir, concurrency=1),
            crash_hook=crash_at("after_create_outcome", 3),
        )
    store = StateStore.from_url(f"sqlite:///{job_dir / 'state.db'}")
    statuses = {row.source_id: row.status for row, _ in store.iter_conversations()}
    store.close()
    assert statuses["conv-0000"] == statuses["conv-0001"] == "migrated", statuses
    assert statuses["conv-0004"] == "pending", statuses
    return source, job_dir, source.read_text(encoding="utf-8").splitlines(keepends=True)


def source_ids_in(job_dir: Path, name: str) -> list[str]:
    if name.endswith(".csv"):
        with (job_dir / name).open(encoding="utf-8", newline="") as file:
            return [row["source_id"] for row in csv.DictReader(file)]
    lines = (job_dir / name).read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["source_id"] for line in lines]


def test_a_conversation_deleted_from_the_source_before_it_was_sent_is_the_only_one_blamed(
    tmp_path: Path,
) -> None:
    source, job_dir, lines = interrupted_job(tmp_path)
    source.write_text("".join(line for line in lines if '"conv-0004"' not in line), "utf-8")
    resume_job(ResumeConfig(job=JobRef(job_dir=job_dir)))
    summary = job_status(JobRef(job_dir=job_dir))
    assert (summary.conversations.migrated, summary.conversations.failed) == (7, 1)
    assert source_ids_in(job_dir, "errors.jsonl") == ["conv-0004"]
    errors = (job_dir / "errors.jsonl").read_text(encoding="utf-8")
    assert "missing_from_source" in errors
    listed = source_ids_in(job_dir, "conversations.csv")
    assert sorted(listed) == [f"conv-{n:04d}" for n in range(CONVERSATIONS)]
    assert_exactly_once(job_dir, migrated=7)


def test_a_conversation_inserted_into_the_source_is_planned_and_nothing_else_moves(
    tmp_path: Path,
) -> None:
    source, job_dir, lines = interrupted_job(tmp_path)
    inserted = lines[4].replace('"conv-0004"', '"new-0001"').replace("conv 4 says", "new 1 says")
    source.write_text("".join([*lines[:3], inserted, *lines[3:]]), "utf-8")
    resume_job(ResumeConfig(job=JobRef(job_dir=job_dir)))
    summary = job_status(JobRef(job_dir=job_dir))
    assert summary.conversations.failed == 0
    listed = source_ids_in(job_dir, "conversations.csv")
    assert sorted(listed) == sorted([*(f"conv-{n:04d}" for n in range(CONVERSATIONS)), "new-0001"])
    assert_exactly_once(job_dir, migrated=CONVERSATIONS + 1)
