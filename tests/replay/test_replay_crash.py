"""A crash between any two steps of the protocol, then `resume`: every conversation once.

`SimulatedCrash` stands for the process dying at a named point; the other workers are
cancelled mid-call, exactly as a real crash leaves them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from openai import OpenAI

from migrate.errors import EXIT_FAILED
from migrate.jobs.models import JobRef, ResumeConfig
from migrate.jobs.run import resume_job, run_job
from migrate.jobs.status import job_status
from migrate.replay.replayer import CRASH_POINTS, CrashHook, CrashPoint, SimulatedCrash
from migrate.server.embedded import running_server
from migrate.state.store import StateStore
from tests.replay.helpers import assert_exactly_once, run_config, server_contents, write_source


def crash_at(point: CrashPoint, nth: int = 2) -> CrashHook:
    """A hook that stops the process the `nth` time it reaches `point`."""
    seen = 0

    def hook(reached: CrashPoint, seq: int) -> None:
        nonlocal seen
        if reached == point:
            seen += 1
            if seen == nth:
                raise SimulatedCrash(f"{point} #{nth} (conversation #{seq})")

    return hook


@contextmanager
def sdk_on(job_dir: Path) -> Iterator[OpenAI]:
    """An SDK client on the job's local server database, as another application would use it."""
    with (
        running_server(None, job_dir / "server.db") as base_url,
        OpenAI(base_url=base_url, api_key="test", max_retries=0) as client,
    ):
        yield client


def resume(job_dir: Path, hook: CrashHook | None = None) -> None:
    resume_job(ResumeConfig(job=JobRef(job_dir=job_dir)), crash_hook=hook)


@pytest.mark.parametrize("point", [p for p in CRASH_POINTS if p != "after_reconcile"])
def test_a_crash_at_any_step_then_resume_lands_everything_once(
    point: CrashPoint, tmp_path: Path, source_file: Callable[..., Path]
) -> None:
    source = source_file(conversations=4, messages=25)
    job_dir = tmp_path / "job"
    with pytest.raises(SimulatedCrash):
        run_job(run_config(source, job_dir), crash_hook=crash_at(point))
    assert job_status(JobRef(job_dir=job_dir)).conversations.migrated < 4
    resume(job_dir)
    summary = job_status(JobRef(job_dir=job_dir))
    if point in ("after_create_intent", "after_create_call"):
        assert summary.possible_orphans >= 1
    if point in ("after_append_intent", "after_append_call", "after_append_outcome"):
        # What was in flight was read back before anything else was written.
        assert summary.reconciliations >= 1
    assert_exactly_once(job_dir, migrated=4)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("after_append_call", "after_reconcile"),
        ("after_append_intent", "after_append_call"),
        ("after_create_call", "after_create_call"),
    ],
)
def test_a_crash_during_resume_is_resumed_too(
    first: CrashPoint, second: CrashPoint, tmp_path: Path, source_file: Callable[..., Path]
) -> None:
    source = source_file(conversations=4, messages=25)
    job_dir = tmp_path / "job"
    with pytest.raises(SimulatedCrash):
        run_job(run_config(source, job_dir), crash_hook=crash_at(first))
    with pytest.raises(SimulatedCrash):
        resume(job_dir, crash_at(second, nth=1))
    resume(job_dir)
    assert_exactly_once(job_dir, migrated=4)


def test_resume_takes_the_new_plan_of_a_conversation_not_started_yet(tmp_path: Path) -> None:
    source = write_source(tmp_path / "source.jsonl", conversations=3, messages=25)
    original = source.read_text(encoding="utf-8")
    job_dir = tmp_path / "job"
    with pytest.raises(SimulatedCrash):
        run_job(
            run_config(source, job_dir, concurrency=1),
            crash_hook=crash_at("after_append_outcome", 1),
        )
    source.write_text(original.replace("conv 2 says 3", "conv 2 said 3"), encoding="utf-8")
    resume(job_dir)
    assert_exactly_once(job_dir, migrated=3)
    texts = [
        part["text"]
        for items in server_contents(job_dir).by_conversation.values()
        for item in items
        for part in item.get("content", [])
    ]
    assert "conv 2 said 3" in texts
    assert "conv 2 says 3" not in texts


def test_a_conversation_someone_else_wrote_into_fails_and_keeps_their_items(
    tmp_path: Path,
) -> None:
    source = write_source(tmp_path / "source.jsonl", conversations=3, messages=25)
    job_dir = tmp_path / "job"
    with pytest.raises(SimulatedCrash):
        run_job(
            run_config(source, job_dir, concurrency=1),
            crash_hook=crash_at("after_append_outcome", 1),
        )
    (conversation_id,) = server_contents(job_dir).by_conversation
    with sdk_on(job_dir) as client:
        client.conversations.items.create(
            conversation_id, items=[{"type": "message", "role": "user", "content": "hi!"}]
        )
    resume(job_dir)
    summary = job_status(JobRef(job_dir=job_dir))
    assert summary.conversations.migrated == 2
    assert summary.conversations.failed == 1
    errors = (job_dir / "errors.jsonl").read_text(encoding="utf-8")
    assert "target_diverged" in errors
    assert conversation_id in errors
    # Nothing was deleted to make it fit: the foreign item is still there.
    items = server_contents(job_dir).by_conversation[conversation_id]
    assert items[-1]["content"][0]["text"] == "hi!"
    assert len(items) == 21


def test_a_conversation_deleted_on_the_target_fails_with_a_clear_error(tmp_path: Path) -> None:
    source = write_source(tmp_path / "source.jsonl", conversations=2, messages=25)
    job_dir = tmp_path / "job"
    with pytest.raises(SimulatedCrash):
        run_job(
            run_config(source, job_dir, concurrency=1),
            crash_hook=crash_at("after_append_outcome", 1),
        )
    (conversation_id,) = server_contents(job_dir).by_conversation
    with sdk_on(job_dir) as client:
        client.conversations.delete(conversation_id)
    resume(job_dir)
    summary = job_status(JobRef(job_dir=job_dir))
    assert (summary.conversations.migrated, summary.conversations.failed) == (1, 1)
    errors = (job_dir / "errors.jsonl").read_text(encoding="utf-8")
    assert "target_missing" in errors


def test_a_stop_request_finishes_the_calls_in_flight_and_resume_goes_on(
    tmp_path: Path,
) -> None:
    source = write_source(tmp_path / "source.jsonl", conversations=6, messages=25)
    job_dir = tmp_path / "job"
    stop = threading.Event()

    def press_ctrl_c(point: CrashPoint, seq: int) -> None:
        if point == "after_append_outcome":
            stop.set()

    summary = run_job(run_config(source, job_dir), stop=stop, crash_hook=press_ctrl_c)
    assert summary.exit_code == EXIT_FAILED
    assert not summary.complete
    assert summary.state == "interrupted"
    assert summary.conversations.migrated < 6
    # Stopping left no write in doubt: every intent has its outcome.
    store = StateStore.from_url(f"sqlite:///{job_dir / 'state.db'}")
    assert all(not store.open_intents(row.seq) for row, _ in store.iter_conversations())
    store.close()
    resume(job_dir)
    assert_exactly_once(job_dir, migrated=6)
