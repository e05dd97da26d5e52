"""Several workers on one job: claims and leases, takeover after a kill, the shared pace."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, select, text, update

from migrate.cli import main
from migrate.config import build_job_config
from migrate.errors import EXIT_OK, EXIT_USAGE, ConfigError
from migrate.jobs.models import JobRef, ResumeConfig, RunConfig, WorkConfig
from migrate.jobs.run import resume_job, run_job, work_on_job
from migrate.jobs.status import job_status
from migrate.plan.model import ConversationPlan
from migrate.replay.ratelimit import RateLimiter
from migrate.replay.replayer import ReplayOptions, SimulatedCrash
from migrate.replay.target import TargetConfig
from migrate.replay.workers import WorkerSession
from migrate.server.store import ConversationStore
from migrate.server.testing import AdminClient, ServerFactory
from migrate.state import schema as state
from migrate.state.records import ClaimLostError, JobRecord
from migrate.state.store import StateStore
from migrate.transform.transformer import PlannedItem
from tests.replay.helpers import assert_exactly_once, run_config, write_source

ELSEWHERE = "another-machine|pid:[1]"
"""A host identity no process here has: a worker there can only be known dead by its lease."""


def plan_of(source_id: str, items: int) -> ConversationPlan:
    planned = [
        PlannedItem(item={"type": "message", "role": "user", "content": f"m{i}"}, entry_index=i)
        for i in range(items)
    ]
    return ConversationPlan(
        source_kind="test",
        source_id=source_id,
        location=f"test:{source_id}",
        metadata={"source_id": source_id},
        items=planned,
        batch_sizes=[items],
        fingerprint=f"fp-{source_id}",
        findings=[],
    )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A state store on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


def new_job_store(url: str, conversations: int) -> StateStore:
    store = StateStore.from_url(url, create=True)
    store.create_job(JobRecord(job_id="j", created_at=0.0, config={}, source="t", target={}))
    store.add_outcomes([(n, plan_of(f"c{n}", 2)) for n in range(conversations)])
    return store


# --- leases in the state store -----------------------------------------------------------------


def test_a_claim_is_free_again_only_after_its_lease_runs_out(state_url: str) -> None:
    store = new_job_store(state_url, 3)
    # bounds that hold on a loaded machine: each step takes far less than the 3 s lease
    held = store.claim_work("a", limit=2, lease=3.0)
    assert [(c.seq, c.status, c.plan.source_id) for c in held] == [
        (0, "pending", "c0"),
        (1, "pending", "c1"),
    ]
    assert [c.seq for c in store.claim_work("b", limit=5, lease=3.0)] == [2]
    assert store.claim_work("b", limit=5, lease=3.0) == []
    time.sleep(3.2)
    # "b" renewed nothing, so its claim on #2 ran out as well; #0 and #1 come back first.
    assert [c.seq for c in store.claim_work("c", limit=5, lease=30.0)] == [0, 1, 2]
    store.close()


def test_renewal_keeps_a_claim_and_a_lost_claim_refuses_every_write(state_url: str) -> None:
    store = new_job_store(state_url, 2)
    store.register_worker("a", host=ELSEWHERE, pid=1, plans=False, lease=3.0)
    assert [c.seq for c in store.claim_work("a", limit=1, lease=3.0)] == [0]
    started = time.monotonic()
    for _ in range(3):
        time.sleep(1.2)
        store.renew("a", lease=3.0)
    # three renewals carried the claim past its first lease
    assert time.monotonic() - started > 3.0
    assert [c.seq for c in store.claim_work("b", limit=5, lease=30.0)] == [1]
    time.sleep(3.2)
    assert [c.seq for c in store.claim_work("b", limit=5, lease=30.0)] == [0]
    # "a" comes back after its lease ran out: its writes no longer apply.
    store.owner = "a"
    with pytest.raises(ClaimLostError, match="no longer held by worker a"):
        store.record_intent(0, "create", start=0, count=0)
    store.owner = "b"
    intent = store.record_intent(0, "create", start=0, count=0)
    store.record_created(0, intent, "conv_b")
    assert store.conversation(0).conversation_id == "conv_b"
    store.close()


def test_live_workers_and_the_time_they_covered(tmp_path: Path) -> None:
    store = new_job_store(f"sqlite:///{tmp_path / 'state.db'}", 1)
    store.register_worker("a", host=ELSEWHERE, pid=1, plans=True, lease=30.0)
    store.register_worker("b", host=ELSEWHERE, pid=2, plans=False, lease=30.0)
    assert store.live_workers() == (2, True)
    store.stop_worker("a")
    assert store.live_workers() == (1, False)
    with store.engine.begin() as conn:
        # Two overlapping lifetimes and a later one: 0..10 and 5..12, then 20..21.
        conn.execute(
            update(state.workers)
            .values(started_at=0.0, seen_at=10.0)
            .where(state.workers.c.worker_id == "a")
        )
        conn.execute(
            update(state.workers)
            .values(started_at=5.0, seen_at=12.0)
            .where(state.workers.c.worker_id == "b")
        )
    store.register_worker("c", host=ELSEWHERE, pid=3, plans=False, lease=30.0)
    with store.engine.begin() as conn:
        conn.execute(
            update(state.workers)
            .values(started_at=20.0, seen_at=21.0)
            .where(state.workers.c.worker_id == "c")
        )
    assert store.worker_time() == pytest.approx(13.0)
    store.close()


# --- the shared pace ---------------------------------------------------------------------------


def test_a_share_of_the_budget_caps_rate_and_the_servers_remaining() -> None:
    now = [0.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(max_rate=10.0, clock=lambda: now[0], sleep=sleep)
    limiter.set_share(0.5)
    assert limiter.rate == 5.0

    async def send(count: int) -> None:
        for _ in range(count):
            await limiter.acquire()
            limiter.release(None)

    asyncio.run(send(11))
    # Half of 10 per second: 11 requests take about two seconds, not one.
    assert now[0] == pytest.approx(2.0, abs=0.25)
    limiter.hold(3.0)
    start = now[0]
    asyncio.run(send(1))
    assert now[0] - start == pytest.approx(3.0, abs=0.01)

    mirror = RateLimiter(clock=lambda: now[0], sleep=sleep)
    mirror.set_share(0.25)
    mirror.release({"x-ratelimit-remaining-requests": "8", "x-ratelimit-reset-requests": "60s"})
    start = now[0]
    asyncio.run(send_through(mirror, 3))
    # A quarter of the 8 the server says remain: two go at once, the third waits.
    assert now[0] - start > 0.0


async def send_through(limiter: RateLimiter, count: int) -> None:
    for _ in range(count):
        await limiter.acquire()
        limiter.release(None)


def test_a_429_met_by_one_worker_holds_the_others(tmp_path: Path) -> None:
    store = new_job_store(f"sqlite:///{tmp_path / 'state.db'}", 1)
    first = WorkerSession(store, timeout=1.0, lease=3.0, pace_interval=0.05)
    second = WorkerSession(store, timeout=1.0, lease=3.0, pace_interval=0.05)
    first.start()
    second.start()
    held: list[float] = []

    class Limiter(RateLimiter):
        def hold(self, seconds: float) -> None:
            held.append(seconds)
            super().hold(seconds)

    async def scenario() -> None:
        limiters = [Limiter(), Limiter()]
        for session, limiter in zip((first, second), limiters, strict=True):
            target: Any = type("T", (), {"limiter": limiter, "write_guard": None})()
            session.attach(target)
        limiters[0].rate_limited(2.0)
        deadline = time.monotonic() + 10.0
        while not held and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        # Both processes count two live workers: each takes half of the budget.
        assert limiters[1].share == 0.5

    try:
        asyncio.run(scenario())
    finally:
        first.stop()
        second.stop()
        store.close()
    assert held, "the other worker never heard of the 429"
    assert 0.0 < held[0] <= 2.0


# --- whole jobs --------------------------------------------------------------------------------


def test_run_and_an_extra_worker_share_one_job(
    state_url: str, tmp_path: Path, local_server: ServerFactory
) -> None:
    base_url = local_server(latency_ms=20)
    source = write_source(tmp_path / "source.jsonl", conversations=40, messages=25)
    job_dir = tmp_path / "job"
    config = RunConfig(
        job=build_job_config(source=str(source), job_file=None),
        job_dir=job_dir,
        target=TargetConfig(kind="openai", base_url=base_url, timeout=5.0),
        replay=ReplayOptions(concurrency=2, backoff_base=0.01),
        state_url=state_url,
    )
    results: dict[str, Any] = {}

    def in_thread(name: str, call: Callable[[], Any]) -> threading.Thread:
        def target() -> None:
            try:
                results[name] = call()
            except BaseException as exc:  # reported by the assertions below
                results[name] = exc

        thread = threading.Thread(target=target)
        thread.start()
        return thread

    runner = in_thread("run", lambda: run_job(config))
    job_id = wait_for_job_id(job_dir, lambda: runner.is_alive())
    worker = in_thread("work", lambda: work_on_job(WorkConfig(state_url=state_url, job_id=job_id)))
    runner.join(60)
    worker.join(60)
    assert results["run"].exit_code == EXIT_OK, results
    assert results["work"].exit_code == EXIT_OK, results
    assert results["work"].job_dir is None
    store = StateStore.from_url(state_url)
    with store.engine.connect() as conn:
        owners = conn.execute(
            select(state.conversations.c.claimed_by, text("count(*)")).group_by(
                state.conversations.c.claimed_by
            )
        ).all()
        workers_seen = conn.execute(select(state.workers.c.plans)).scalars().all()
    store.close()
    # Both processes replayed part of the job; only the run planned it.
    assert len(owners) == 2, owners
    assert sorted(workers_seen) == [False, True]
    summary = job_status(JobRef(state_url=state_url, job_id=job_id))
    assert summary.conversations.migrated == 40
    assert summary.items.landed == summary.items.planned
    contents = ConversationStore.from_path(tmp_path / "servers" / "server-0.db")
    try:
        live = contents.summaries(include_deleted=False)
        assert sum(1 for s in live if s.item_count) == 40
        assert sum(s.item_count for s in live) == summary.items.planned
    finally:
        contents.close()


def test_resume_refuses_while_another_worker_is_alive(tmp_path: Path) -> None:
    source = write_source(tmp_path / "source.jsonl", conversations=2, messages=3)
    job_dir = tmp_path / "job"
    crash = iter([True])

    def hook(point: str, seq: int) -> None:
        if point == "after_create_call" and next(crash, False):
            raise SimulatedCrash(point)

    with pytest.raises(SimulatedCrash):
        run_job(run_config(source, job_dir), crash_hook=hook)
    store = StateStore.from_url(f"sqlite:///{job_dir / 'state.db'}")
    store.register_worker("elsewhere-1", host=ELSEWHERE, pid=1, plans=False, lease=60.0)
    store.close()
    with pytest.raises(ConfigError, match="still alive: elsewhere-1") as refused:
        resume_job(ResumeConfig(job=JobRef(job_dir=job_dir)))
    assert "migrate work" in str(refused.value)
    store = StateStore.from_url(f"sqlite:///{job_dir / 'state.db'}")
    store.stop_worker("elsewhere-1")
    store.close()
    # The crashed run of this process is known to be gone: its claims are taken over at once.
    resume_job(ResumeConfig(job=JobRef(job_dir=job_dir)))
    assert_exactly_once(job_dir, migrated=2)


def test_a_job_is_named_by_directory_or_by_store_and_id(tmp_path: Path) -> None:
    source = write_source(tmp_path / "source.jsonl", conversations=2, messages=3)
    runner = CliRunner()
    job_dir = tmp_path / "job"
    assert runner.invoke(main, ["run", str(source), "--job-dir", str(job_dir)]).exit_code == 0
    url = f"sqlite:///{job_dir / 'state.db'}"
    job_id = json.loads((job_dir / "job.json").read_text())["job_id"]

    unnamed = runner.invoke(main, ["status"])
    assert unnamed.exit_code == EXIT_USAGE
    assert "--state URL --job JOB_ID" in unnamed.stderr
    wrong = runner.invoke(main, ["status", "--state", url, "--job", "nope"])
    assert wrong.exit_code == EXIT_USAGE
    assert f"holds job {job_id}, not nope" in wrong.stderr
    by_id = runner.invoke(main, ["status", "--state", url, "--job", job_id, "--json"])
    assert by_id.exit_code == EXIT_OK, by_id.output
    assert json.loads(by_id.stdout)["job_dir"] is None

    no_out = runner.invoke(main, ["report", "--state", url, "--job", job_id])
    assert no_out.exit_code == EXIT_USAGE
    assert "--out" in no_out.stderr
    out = tmp_path / "elsewhere"
    reported = runner.invoke(main, ["report", "--state", url, "--job", job_id, "--out", str(out)])
    assert reported.exit_code == EXIT_OK, reported.output
    assert len((out / "conversations.csv").read_text().splitlines()) == 3

    # The local target lives in the job directory: other workers cannot reach it.
    joined = runner.invoke(main, ["work", "--state", url, "--job", job_id])
    assert joined.exit_code == EXIT_USAGE
    assert "migrate serve" in joined.stderr
    verified = runner.invoke(main, ["verify", "--state", url, "--job", job_id])
    assert verified.exit_code == EXIT_USAGE
    assert "job directory" in verified.stderr


# --- three processes, one killed ---------------------------------------------------------------


def start(arguments: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "migrate", *arguments],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


@contextlib.contextmanager
def served(db: Path, log: Path, *arguments: str) -> Iterator[str]:
    """`migrate serve` in its own process; yields its base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = start(["serve", "--port", str(port), "--db", str(db), *arguments], log)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=20)


def wait_for_job_id(job_dir: Path, alive: Callable[[], bool]) -> str:
    deadline = time.monotonic() + 120  # start-up imports take long on a loaded machine
    while time.monotonic() < deadline and alive():
        with contextlib.suppress(OSError, ValueError, KeyError):
            return str(json.loads((job_dir / "job.json").read_text())["job_id"])
        time.sleep(0.02)
    raise AssertionError("the run never created its job")


def wait_until(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting until {what}")


@pytest.mark.postgres
@pytest.mark.slow
def test_three_workers_one_killed_every_conversation_lands_once(
    tmp_path: Path, postgres_url: str
) -> None:
    conversations = 240
    source = write_source(tmp_path / "source.jsonl", conversations=conversations, messages=45)
    log = tmp_path / "processes.log"
    server_db = tmp_path / "server.db"
    faults = ["--fault", "drop_after_commit=0.04", "--fault", "error_after_commit=0.04"]
    with served(server_db, log, "--latency-ms", "40", "--seed", "7", *faults) as base_url:
        job_dir = tmp_path / "job"
        run = start(
            [
                *("run", str(source), "--target", "openai", "--base-url", base_url),
                *("--state", postgres_url, "--job-dir", str(job_dir), "--concurrency", "4"),
                *("--timeout", "2", "--lease", "4", "--settle", "0.3"),
            ],
            log,
        )
        processes = [run]
        engine = create_engine(postgres_url)
        w, c = state.workers.c, state.conversations.c
        try:
            job_id = wait_for_job_id(job_dir, lambda: run.poll() is None)
            work = ["work", "--state", postgres_url, "--job", job_id, "--target", "openai"]
            work += ["--settle", "0.3"]
            doomed = start([*work, "--concurrency", "4"], log)
            processes.append(doomed)
            survivor = start([*work, "--concurrency", "4"], log)
            processes.append(survivor)
            doomed_id = wait_until(
                lambda: _scalar(engine, select(w.worker_id).where(w.pid == doomed.pid)),
                "the doomed worker joined",
            )
            with engine.begin() as conn:
                # As if it ran on another machine: only its leases can free its conversations.
                conn.execute(
                    update(state.workers).where(w.pid == doomed.pid).values(host=ELSEWHERE)
                )
            in_flight = select(c.seq).where(c.claimed_by == doomed_id, c.status == "in_progress")
            wait_until(lambda: _scalar(engine, in_flight), "the doomed worker was mid-job")
            doomed.send_signal(signal.SIGKILL)
            doomed.wait(timeout=10)
            with engine.connect() as conn:
                orphaned = conn.execute(
                    select(c.seq, c.conversation_id, c.lease_until).where(
                        c.claimed_by == doomed_id, c.status.in_(("pending", "in_progress"))
                    )
                ).all()
            assert orphaned, "the kill left nothing to take over"
            assert run.wait(timeout=90) == EXIT_OK, log.read_text(errors="replace")
            assert survivor.wait(timeout=30) == EXIT_OK, log.read_text(errors="replace")
            with engine.connect() as conn:
                taken = {
                    row.seq: row
                    for row in conn.execute(
                        select(
                            c.seq, c.status, c.claimed_by, c.claimed_at, c.reconciliations
                        ).where(c.seq.in_([row.seq for row in orphaned]))
                    )
                }
                owners = (
                    conn.execute(select(c.claimed_by).where(c.status == "migrated").distinct())
                    .scalars()
                    .all()
                )
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.wait()
            engine.dispose()
        for seq, conversation_id, lease_until in orphaned:
            row = taken[seq]
            assert row.status == "migrated"
            assert row.claimed_by != doomed_id
            # Taken over only once the dead worker's lease had run out.
            assert row.claimed_at >= lease_until - 0.05, (row, lease_until)
            if conversation_id is not None:
                # Read back before anything else was written into it.
                assert row.reconciliations >= 1, row
        assert len(owners) >= 2
        # `run` told how to add workers, with a password-free URL.
        assert f"add workers with: migrate work --state {postgres_url} --job {job_id}" in (
            log.read_text(errors="replace")
        )
        with AdminClient(base_url) as admin:
            stats = admin.stats()
        assert stats["faults"].get("drop_after_commit", 0) > 0, stats
        assert stats["faults"].get("error_after_commit", 0) > 0, stats
        # From a machine without the job directory: by state store and job id.
        runner = CliRunner()
        named = ["--state", postgres_url, "--job", job_id]
        verified = runner.invoke(main, ["verify", *named, "--json"])
        assert verified.exit_code == EXIT_OK, verified.output
        report = json.loads(verified.stdout)
        assert (report["matching"], report["differing"]) == (conversations, 0)

    summary = job_status(JobRef(state_url=postgres_url, job_id=job_id))
    assert summary.conversations.migrated == conversations
    assert summary.conversations.pending == summary.conversations.in_progress == 0
    assert summary.items.landed == summary.items.planned
    assert summary.reconciliations >= 1
    # The server's own database: each conversation once, with exactly its items.
    store = ConversationStore.from_path(server_db)
    try:
        live = store.summaries(include_deleted=False)
    finally:
        store.close()
    assert sum(1 for s in live if s.item_count) == conversations
    assert sum(s.item_count for s in live) == summary.items.planned
    assert sum(1 for s in live if not s.item_count) <= summary.possible_orphans
    reported = runner.invoke(main, ["report", *named, "--out", str(tmp_path / "report")])
    assert reported.exit_code == EXIT_OK, reported.output
    rows = (tmp_path / "report" / "conversations.csv").read_text().splitlines()
    assert len(rows) == conversations + 1


def _scalar(engine: Any, query: Any) -> Any:
    with engine.connect() as conn:
        return conn.execute(query).scalars().first()
