"""`resume` checks the source lazily: conversation by conversation, before writing to each."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from migrate.errors import EXIT_PARTIAL
from migrate.jobs import planner as planner_module
from migrate.jobs import run as run_module
from migrate.jobs.models import JobRef, ResumeConfig
from migrate.jobs.run import resume_job, run_job
from migrate.plan.pipeline import PlanOutcome, iterate_plans
from migrate.replay.replayer import CrashHook, CrashPoint, SimulatedCrash
from migrate.state.records import ConversationRow
from migrate.state.store import StateStore
from tests.replay.helpers import assert_exactly_once, run_config, server_contents, write_source
from tests.replay.test_replay_crash import crash_at

WRITES: tuple[CrashPoint, ...] = ("after_create_intent", "after_append_intent")


def rows(job_dir: Path) -> dict[str, ConversationRow]:
    store = StateStore.from_url(f"sqlite:///{job_dir / 'state.db'}")
    try:
        return {str(row.source_id): row for row, _ in store.iter_conversations()}
    finally:
        store.close()


def recording(events: list[tuple[str, int]]) -> CrashHook:
    """A hook that records each write about to be sent, with the conversation's `seq`."""

    def hook(reached: CrashPoint, seq: int) -> None:
        if reached in WRITES:
            events.append(("write", seq))

    return hook


def interrupted_job(tmp_path: Path, *, conversations: int, messages: int = 25) -> Path:
    """A job stopped after the first batch of conversation 0 landed (the rest pending)."""
    source = write_source(
        tmp_path / "source.jsonl", conversations=conversations, messages=messages, tools=False
    )
    job_dir = tmp_path / "job"
    with pytest.raises(SimulatedCrash):
        run_job(
            run_config(source, job_dir, concurrency=1),
            crash_hook=crash_at("after_append_outcome", 1),
        )
    assert rows(job_dir)["conv-0000"].status == "in_progress"
    return source


def test_a_changed_conversation_in_progress_fails_before_any_write_and_the_rest_land(
    tmp_path: Path,
) -> None:
    source = interrupted_job(tmp_path, conversations=3)
    job_dir = tmp_path / "job"
    original = source.read_text(encoding="utf-8")
    conv0 = rows(job_dir)["conv-0000"].conversation_id
    assert conv0 is not None
    before = server_contents(job_dir).by_conversation[conv0]
    source.write_text(original.replace("conv 0 says 3", "conv 0 said 3"), encoding="utf-8")
    events: list[tuple[str, int]] = []
    summary = resume_job(ResumeConfig(job=JobRef(job_dir=job_dir)), crash_hook=recording(events))
    assert summary.exit_code == EXIT_PARTIAL
    after = rows(job_dir)
    assert after["conv-0000"].status == "failed"
    assert after["conv-0000"].error_code == "source_changed"
    assert "conv-0000" in str(after["conv-0000"].error_message)
    assert after["conv-0001"].status == after["conv-0002"].status == "migrated"
    # Nothing was written to the changed conversation; the others were.
    assert server_contents(job_dir).by_conversation[conv0] == before
    assert ("write", 0) not in events
    assert {seq for _, seq in events} == {1, 2}
    # With the source restored, the next resume takes the conversation up again.
    source.write_text(original, encoding="utf-8")
    resume_job(ResumeConfig(job=JobRef(job_dir=job_dir)))
    assert_exactly_once(job_dir, migrated=3)


def test_conversations_deleted_from_the_source_are_reported_under_their_own_ids(
    tmp_path: Path,
) -> None:
    source = interrupted_job(tmp_path, conversations=4)
    job_dir = tmp_path / "job"
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
    # conv-0000 (in progress) and conv-0002 (nothing sent yet) leave the source.
    source.write_text(lines[1] + lines[3], encoding="utf-8")
    summary = resume_job(ResumeConfig(job=JobRef(job_dir=job_dir)))
    assert summary.exit_code == EXIT_PARTIAL
    after = rows(job_dir)
    assert {sid: row.status for sid, row in after.items()} == {
        "conv-0000": "failed",
        "conv-0001": "migrated",
        "conv-0002": "failed",
        "conv-0003": "migrated",
    }
    assert after["conv-0000"].error_code == after["conv-0002"].error_code == "missing_from_source"
    assert "conv-0000" in str(after["conv-0000"].error_message)
    # The conversation in progress kept what it had; nothing was created for the pending one.
    conv0 = after["conv-0000"].conversation_id
    assert conv0 is not None
    assert after["conv-0002"].conversation_id is None
    assert len(server_contents(job_dir).by_conversation[conv0]) == 20


def test_resume_writes_before_the_source_has_been_read_to_its_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small chunks and a short distance ahead, so that a 30-conversation job shows the order.
    monkeypatch.setattr(planner_module, "PLAN_CHUNK", 2)
    monkeypatch.setattr(planner_module, "PLAN_AHEAD", 4)
    monkeypatch.setattr(planner_module, "PLAN_AHEAD_PER_WORKER", 1)
    source = interrupted_job(tmp_path, conversations=30)
    job_dir = tmp_path / "job"
    events: list[tuple[str, int]] = []

    def observed(*args: Any, **kwargs: Any) -> Iterator[PlanOutcome]:
        for outcome in iterate_plans(*args, **kwargs):
            events.append(("read", 0))
            yield outcome
        events.append(("source_end", 0))

    monkeypatch.setattr(run_module, "iterate_plans", observed)
    resume_job(ResumeConfig(job=JobRef(job_dir=job_dir)), crash_hook=recording(events))
    kinds = [kind for kind, _ in events]
    first_write = kinds.index("write")
    assert kinds.count("read") == 30
    assert first_write < kinds.index("source_end")
    assert kinds[:first_write].count("read") < 30
    assert source.exists()
    assert_exactly_once(job_dir, migrated=30)
