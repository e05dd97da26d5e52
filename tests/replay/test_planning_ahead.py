"""`migrate run` plans only a bounded distance ahead of what it has replayed."""

from __future__ import annotations

from pathlib import Path

import pytest

from migrate.jobs import planner as run_module
from migrate.jobs.models import ProgressUpdate
from migrate.jobs.run import run_job
from tests.replay.helpers import assert_exactly_once, run_config, write_source

AHEAD = 6
CHUNK = 4


def test_planning_waits_while_enough_conversations_are_unfinished(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(run_module, "PLAN_AHEAD", AHEAD)
    monkeypatch.setattr(run_module, "PLAN_AHEAD_PER_WORKER", 1)
    monkeypatch.setattr(run_module, "PLAN_CHUNK", CHUNK)
    source = write_source(tmp_path / "source.jsonl", conversations=40, messages=3, tools=False)
    planned_not_done: list[int] = []

    def progress(update: ProgressUpdate) -> None:
        planned_not_done.append(update.conversations_known - update.conversations_done)

    # Replay is slow (20 ms a call, two at a time) next to planning three-message chats, so
    # without the bound the planner would run through the whole source at once.
    config = run_config(source, tmp_path / "job", concurrency=2, server={"latency_ms": 20})
    summary = run_job(config, progress=progress)
    assert summary.conversations.migrated == 40
    # The planner takes a chunk only while fewer than AHEAD are unfinished.
    assert max(planned_not_done) < AHEAD + CHUNK
    assert_exactly_once(tmp_path / "job", migrated=40)
