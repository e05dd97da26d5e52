"""A job's elapsed time covers every session, a killed one until its last sign of life."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from migrate.state.records import JobRecord
from migrate.state.store import StateStore
from tests.replay.test_state_store import plan_of

ENGINES = [
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("mariadb", marks=pytest.mark.mariadb),
]


def store_on(engine: str, request: pytest.FixtureRequest, tmp_path: Path) -> StateStore:
    url = (
        f"sqlite:///{tmp_path / 'state.db'}"
        if engine == "sqlite"
        else str(request.getfixturevalue(f"{engine}_url"))
    )
    store = StateStore.from_url(url, create=True)
    store.create_job(JobRecord(job_id="j", created_at=0.0, config={}, source="t", target={}))
    store.add_outcomes([(n, plan_of(f"c{n}", 2)) for n in range(2)])
    return store


def killed_session(store: StateStore, *, lease: float, quiet: float) -> None:
    """A worker that heartbeats once, writes to its journal `quiet` s later, then dies."""
    store.register_worker("w1", host="h", pid=1, plans=True, lease=lease)
    store.claim_work("w1", limit=2, lease=lease)
    time.sleep(quiet)
    store.owner = "w1"
    store.record_intent(0, "append", start=0, count=2)
    store.owner = None


@pytest.mark.parametrize("engine", ENGINES)
def test_a_killed_session_counts_until_its_last_journal_write(
    engine: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    store = store_on(engine, request, tmp_path)
    killed_session(store, lease=60.0, quiet=0.4)
    assert store.worker_time() >= 0.35  # before resume: the journal says it was alive
    store.forget_workers(["w1"])  # resume takes over, then frees every claim
    store.release_claims()
    assert store.worker_time() >= 0.35
    (row,), _ = store.worker_rows()
    assert row.stopped_at == row.seen_at and row.seen_at - row.started_at >= 0.35
    store.close()


def test_a_session_never_counts_beyond_a_lease_after_its_heartbeat(tmp_path: Path) -> None:
    store = StateStore.from_url(f"sqlite:///{tmp_path / 'state.db'}", create=True)
    store.create_job(JobRecord(job_id="j", created_at=0.0, config={}, source="t", target={}))
    store.add_outcomes([(0, plan_of("c0", 2))])
    killed_session(store, lease=0.1, quiet=0.4)
    assert 0.05 <= store.worker_time() <= 0.15
    store.close()
