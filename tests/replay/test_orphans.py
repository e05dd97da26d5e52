"""Every create whose outcome is unknown counts as a possible orphan, resumed or not."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import pytest

from migrate.jobs.models import JobRef
from migrate.jobs.rollback import rollback_job
from migrate.jobs.run import run_job
from migrate.jobs.status import job_status, write_report
from migrate.replay.replayer import SimulatedCrash
from migrate.replay.target import TargetConfig
from migrate.server.store import ConversationStore
from migrate.server.testing import ServerFactory
from tests.replay.helpers import run_config
from tests.replay.test_replay_crash import crash_at


def live_conversations(database: Path) -> int:
    store = ConversationStore.from_path(database)
    try:
        return len(store.summaries(include_deleted=False))
    finally:
        store.close()


def test_a_rollback_after_a_kill_counts_the_creates_it_cannot_undo(
    tmp_path: Path, local_server: ServerFactory, source_file: Callable[..., Path]
) -> None:
    # A target that cannot list conversations: a create whose answer was lost stays unknown.
    base_url = local_server()
    target = TargetConfig(kind="openai", base_url=base_url, timeout=10)
    job_dir = tmp_path / "job"
    source = source_file(conversations=5, messages=4)
    with pytest.raises(SimulatedCrash):
        run_job(
            run_config(source, job_dir, concurrency=1, target=target),
            crash_hook=crash_at("after_create_call", 3),
        )
    ref = JobRef(job_dir=job_dir)
    assert job_status(ref).possible_orphans == 1  # the third create: applied, id never recorded
    write_report(ref)
    with (job_dir / "conversations.csv").open(encoding="utf-8", newline="") as file:
        assert sum(int(row["possible_orphans"]) for row in csv.DictReader(file)) == 1
    result = rollback_job(ref)
    assert result.deleted == 2
    remaining = live_conversations(tmp_path / "servers" / "server-0.db")
    assert remaining == result.possible_orphans == 1
