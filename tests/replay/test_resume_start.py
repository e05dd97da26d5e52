"""`resume` reads a JSON Lines source from the first conversation not migrated, unread before.

Each job here stopped with conv-0000 migrated, conv-0001 in progress and the rest pending.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from adapters.json import files as json_files
from adapters.json.chat_completions import read_chat_completions, readable_id
from adapters.json.common import RecordContext
from adapters.model import SourceConversation
from migrate.errors import EXIT_OK, EXIT_PARTIAL
from migrate.jobs.models import JobRef, ResumeConfig
from migrate.jobs.run import resume_job, run_job
from migrate.replay.replayer import SimulatedCrash
from migrate.state.store import StateStore
from tests.replay.helpers import assert_exactly_once, run_config, server_contents, write_source
from tests.replay.test_replay_crash import crash_at
from tests.replay.test_resume_check import recording, rows


def interrupted_job(tmp_path: Path, *, conversations: int = 4) -> Path:
    source = write_source(
        tmp_path / "source.jsonl", conversations=conversations, messages=25, tools=False
    )
    with pytest.raises(SimulatedCrash):
        # Two appends a conversation: the third lands conv-0001's first batch.
        run_job(
            run_config(source, tmp_path / "job", concurrency=1),
            crash_hook=crash_at("after_append_outcome", 3),
        )
    before = rows(tmp_path / "job")
    assert [before[f"conv-000{n}"].status for n in range(3)] == [
        "migrated",
        "in_progress",
        "pending",
    ]
    return source


def watch_reads(monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], list[str]]:
    """The ids of the records read for their id only, and of those decoded whole."""
    parsed: list[str] = []
    decoded: list[str] = []

    def id_read(value: object, ctx: RecordContext) -> str | None:
        found = readable_id(value, ctx)
        parsed.append(str(found))
        return found

    def counted(value: Any, ctx: RecordContext, *, source_kind: str) -> SourceConversation:
        conversation = read_chat_completions(value, ctx, source_kind=source_kind)
        decoded.append(conversation.id)
        return conversation

    monkeypatch.setattr(json_files, "readable_id", id_read)
    monkeypatch.setattr(json_files, "read_chat_completions", counted)
    return parsed, decoded


def append_record(source: Path, record_id: str, text: str) -> None:
    messages = [{"role": "user", "content": text}, {"role": "assistant", "content": "ok"}]
    with source.open("a", encoding="utf-8") as out:
        out.write(json.dumps({"id": record_id, "messages": messages}) + "\n")


def test_resume_does_not_read_the_migrated_conversations_before_the_first_unfinished(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    interrupted_job(tmp_path)
    parsed, decoded = watch_reads(monkeypatch)
    summary = resume_job(ResumeConfig(job=JobRef(job_dir=tmp_path / "job")))
    assert summary.exit_code == EXIT_OK
    assert "conv-0000" not in parsed + decoded
    assert decoded == ["conv-0001", "conv-0002", "conv-0003"]
    assert_exactly_once(tmp_path / "job", migrated=4)


def test_a_changed_conversation_in_progress_still_fails_before_any_write_to_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = interrupted_job(tmp_path)
    job_dir = tmp_path / "job"
    conv1 = rows(job_dir)["conv-0001"].conversation_id
    assert conv1 is not None
    before = server_contents(job_dir).by_conversation[conv1]
    source.write_text(
        source.read_text(encoding="utf-8").replace("conv 1 says 3", "conv 1 said 3"),
        encoding="utf-8",
    )
    parsed, decoded = watch_reads(monkeypatch)
    events: list[tuple[str, int]] = []
    summary = resume_job(ResumeConfig(job=JobRef(job_dir=job_dir)), crash_hook=recording(events))
    assert summary.exit_code == EXIT_PARTIAL
    after = rows(job_dir)
    assert (after["conv-0001"].status, after["conv-0001"].error_code) == (
        "failed",
        "source_changed",
    )
    assert server_contents(job_dir).by_conversation[conv1] == before
    assert {seq for _, seq in events} == {2, 3}
    assert "conv-0000" not in parsed + decoded


def test_a_record_appended_to_the_source_is_planned_and_migrated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = interrupted_job(tmp_path)
    append_record(source, "new-0000", "a conversation added since the run")
    parsed, decoded = watch_reads(monkeypatch)
    summary = resume_job(ResumeConfig(job=JobRef(job_dir=tmp_path / "job")))
    assert summary.exit_code == EXIT_OK
    assert decoded == ["conv-0001", "conv-0002", "conv-0003", "new-0000"]
    assert "conv-0000" not in parsed
    assert rows(tmp_path / "job")["new-0000"].status == "migrated"
    assert_exactly_once(tmp_path / "job", migrated=5)


def test_a_change_before_the_first_unfinished_conversation_reads_the_source_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = interrupted_job(tmp_path)
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
    # A record inserted before conv-0000 moves every record after it.
    source.write_text("".join(lines))
    append_record(source, "new-0000", "a conversation inserted at the front")
    moved = source.read_text(encoding="utf-8").splitlines(keepends=True)
    source.write_text(moved[-1] + "".join(lines), encoding="utf-8")
    parsed, decoded = watch_reads(monkeypatch)
    summary = resume_job(ResumeConfig(job=JobRef(job_dir=tmp_path / "job")))
    assert summary.exit_code == EXIT_OK
    assert "conv-0000" in parsed
    assert "new-0000" in decoded
    assert_exactly_once(tmp_path / "job", migrated=5)


def test_a_copy_of_a_migrated_id_after_the_start_is_a_duplicate_naming_the_first_copy(
    tmp_path: Path,
) -> None:
    source = interrupted_job(tmp_path)
    append_record(source, "conv-0000", "a second copy of a migrated conversation")
    summary = resume_job(ResumeConfig(job=JobRef(job_dir=tmp_path / "job")))
    assert summary.exit_code == EXIT_OK
    store = StateStore.from_url(f"sqlite:///{tmp_path / 'job' / 'state.db'}")
    try:
        copies = [row for row, _ in store.iter_conversations() if row.source_id == "conv-0000"]
        assert [row.seq for row in copies] == [0, 4]
        plan = store.plan(4)
    finally:
        store.close()
    assert plan is not None
    [finding] = plan.findings
    assert finding.code == "duplicate_source_id"
    assert finding.value == {"first_location": f"{source}:1", "location": f"{source}:5"}
    assert_exactly_once(tmp_path / "job", migrated=5)
