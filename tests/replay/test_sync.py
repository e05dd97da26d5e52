"""`sync`: a ledger across jobs, only the new items appended, nothing migrated twice."""

from __future__ import annotations

import json
import math
import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from migrate.config import build_job_config
from migrate.errors import ConfigError, MigrateError
from migrate.jobs.lookup import export_ledger_csv, export_ledger_table, lookup_conversations
from migrate.jobs.models import JobRef, ResumeConfig, RunConfig, SyncConfig, WorkConfig
from migrate.jobs.run import resume_job, run_job, work_on_job
from migrate.jobs.status import job_status
from migrate.jobs.sync import sync_job
from migrate.jobs.verify import verify_job
from migrate.plan.model import ConversationPlan
from migrate.plan.pipeline import iterate_plans, open_configured_source
from migrate.replay.replayer import CrashPoint, ReplayOptions, SimulatedCrash
from migrate.replay.stored import item_difference
from migrate.replay.target import TargetConfig
from migrate.server.store import ConversationStore
from migrate.server.testing import AdminClient, ServerFactory
from migrate.state.schema import conversations, intents
from migrate.state.store import StateStore
from migrate.transform.policy import Policy
from tests.replay.helpers import wait_for_job_id, write_source
from tests.replay.test_replay_kill import ROUNDS, start, wait_until_started


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def write_lines(path: Path, records: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def grow(record: dict[str, Any], count: int) -> None:
    for turn in range(count):
        role = "user" if turn % 2 == 0 else "assistant"
        record["messages"].append({"role": role, "content": f"{record['id']} later {turn}"})


def plans_of(source: Path) -> dict[str, ConversationPlan]:
    config = build_job_config(source=str(source), job_file=None)
    plans: dict[str, ConversationPlan] = {}
    for outcome in iterate_plans(open_configured_source(config.source), Policy()):
        assert isinstance(outcome, ConversationPlan)
        plans[outcome.source_id] = outcome
    return plans


def writes_seen(base_url: str) -> tuple[int, int]:
    """(POST requests, item listings) the server answered under /v1 (not the preflight read)."""
    with AdminClient(base_url) as admin:
        seen = admin.stats()["requests"]
    posts = gets = 0
    for route, by_status in seen.items():
        method, path = route.split(" ", 1)
        if not path.startswith("/v1/"):
            continue
        if method == "POST":
            posts += sum(by_status.values())
        elif method == "GET" and path.endswith("/items"):
            gets += sum(by_status.values())
    return posts, gets


def server_items(server_db: Path) -> dict[str, list[dict[str, Any]]]:
    store = ConversationStore.from_path(server_db)
    try:
        return {s.id: store.all_items(s.id) for s in store.summaries(include_deleted=False)}
    finally:
        store.close()


def configs(
    source: Path, job_dir: Path, base_url: str, **extra: Any
) -> tuple[RunConfig, SyncConfig]:
    common: dict[str, Any] = {
        "job": build_job_config(source=str(source), job_file=None),
        "job_dir": job_dir,
        "target": TargetConfig(kind="openai", base_url=base_url, timeout=10),
        "replay": ReplayOptions(concurrency=4, backoff_base=0.01),
        **extra,
    }
    diverged = common.pop("diverged", "skip")
    return RunConfig(**common), SyncConfig(**common, diverged=diverged)


def minimum_writes(plan: ConversationPlan, *, already: int) -> int:
    """The fewest calls that land `plan`'s items after `already` of them: the create (or, when
    appending, the metadata update) and the batches."""
    new = len(plan.items) - already
    return 1 + math.ceil(new / 20)


def test_sync_sends_only_the_new_items_once_and_reports_diverged_ones(
    tmp_path: Path, local_server: ServerFactory
) -> None:
    total = 200
    source = write_source(tmp_path / "source.jsonl", conversations=total, messages=6)
    base_url = local_server()
    server_db = tmp_path / "servers" / "server-0.db"
    job_dir = tmp_path / "job"
    run, sync = configs(source, job_dir, base_url)
    first = run_job(run)
    assert first.exit_code == 0, first
    before = plans_of(source)

    records = read_lines(source)
    grown = records[0:10]  # 5% get new messages (3 each; the first is a tool conversation)
    for record in grown:
        grow(record, 3)
    changed = records[100]  # 0.5%: an already-landed message changes
    changed["messages"][2]["content"] = "edited after the migration"
    grow(changed, 2)
    added: list[dict[str, Any]] = [
        {"id": f"new-{n}", "messages": [{"role": "user", "content": f"hi {n}"}]} for n in (1, 2)
    ]
    write_lines(source, [*records, *added])  # 1% new conversations
    after = plans_of(source)

    expected = sum(
        minimum_writes(after[r["id"]], already=len(before[r["id"]].items)) for r in grown
    )
    expected += sum(minimum_writes(after[r["id"]], already=0) for r in added)
    posts, gets = writes_seen(base_url)
    summary = sync_job(sync)
    assert summary.exit_code == 0, summary
    posts_after, gets_after = writes_seen(base_url)
    assert posts_after - posts == expected == summary.calls
    assert gets_after == gets  # nothing was listed: no fault, no need to reconcile
    counts = summary.conversations
    assert counts.total == total + 2
    assert (counts.migrated, counts.up_to_date, counts.diverged) == (12, total - 11, 1)
    assert counts.total == counts.migrated + counts.failed + counts.skipped
    assert summary.metadata_updates == len(grown)
    assert summary.items.landed == sum(
        len(after[r["id"]].items) - len(before[r["id"]].items) for r in grown
    ) + sum(len(after[r["id"]].items) for r in added)

    # On the target: every conversation holds exactly its current plan, once; the diverged one
    # is as the first run left it.
    held = server_items(server_db)
    assert len(held) == total + 2
    found = lookup_conversations(f"sqlite:///{job_dir / 'state.db'}", list(after))
    assert len(found) == total + 2
    for result in found:
        plan = (
            before[result.source_id]
            if result.source_id == changed["id"]
            else after[result.source_id]
        )
        items = held[result.conversation_id]
        assert len(items) == len(plan.items) == result.items, result
        for planned, listed in zip(plan.items, items, strict=True):
            assert item_difference(planned.item, listed) is None
    report = verify_job(JobRef(job_dir=job_dir))
    assert (report.checked, report.differing) == (12, 0)
    findings = read_lines(job_dir / "findings.jsonl")
    assert [f["source_id"] for f in findings if f["code"] == "source_diverged"] == [changed["id"]]
    assert (job_dir / "previous" / first.job_id / "conversations.csv").exists()

    # A second sync with no change sends nothing.
    posts, _ = writes_seen(base_url)
    again = sync_job(sync)
    assert writes_seen(base_url)[0] == posts
    assert again.calls == 0
    assert (again.conversations.up_to_date, again.conversations.diverged) == (total + 1, 1)

    # The ledger as CSV and as a table in another database.
    store = StateStore.from_url(f"sqlite:///{job_dir / 'state.db'}")
    try:
        assert export_ledger_csv(store, tmp_path / "ledger.csv") == total + 2
        assert export_ledger_table(store, f"sqlite:///{tmp_path / 'app.db'}", "id_map") == total + 2
    finally:
        store.close()
    lines = (tmp_path / "ledger.csv").read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("source_id,target_conversation_id,target")
    assert any(line.startswith("new-1,") for line in lines)


def test_sync_updates_a_grown_conversations_metadata_once_through_a_lost_answer(
    tmp_path: Path, local_server: ServerFactory
) -> None:
    records: list[dict[str, Any]] = [
        {"id": f"c{n}", "title": f"title {n}", "messages": [{"role": "user", "content": "hi"}]}
        for n in range(3)
    ]
    source = tmp_path / "source.jsonl"
    write_lines(source, records)
    base_url = local_server()
    server_db = tmp_path / "servers" / "server-0.db"
    job_dir = tmp_path / "job"
    run, sync = configs(source, job_dir, base_url)
    assert run_job(run).exit_code == 0
    records[0]["title"] = "renamed in the app"
    grow(records[0], 2)
    records[1]["title"] = "renamed, but no new message"
    write_lines(source, records)
    plan = plans_of(source)["c0"]
    assert plan.metadata["title"] == "renamed in the app"

    # The first write of the sync is the metadata update: applied, its answer lost.
    with AdminClient(base_url) as admin:
        admin.set_faults(script=["drop_after_commit"])
        log_start = len(admin.log())
    summary = sync_job(sync)
    assert summary.exit_code == 0, summary
    assert summary.metadata_updates == 1
    assert (summary.conversations.migrated, summary.conversations.up_to_date) == (1, 2)
    assert summary.calls == 2 + 1  # the update (sent twice: idempotent), then one batch

    with AdminClient(base_url) as admin:
        writes = [entry["operation"] for entry in admin.log()[log_start:]]
    assert writes == ["conversations.update", "conversations.update", "items.create"]
    state = StateStore.from_url(f"sqlite:///{job_dir / 'state.db'}")
    try:
        with state.engine.connect() as conn:
            outcomes = conn.execute(
                select(intents.c.kind, intents.c.outcome).order_by(intents.c.id)
            ).all()
    finally:
        state.close()
    assert [tuple(row) for row in outcomes] == [
        ("update_metadata", "ambiguous"),
        ("update_metadata", "applied"),
        ("append", "applied"),
    ]
    server = ConversationStore.from_path(server_db)
    try:
        by_source = {s.metadata["source_id"]: s.id for s in server.summaries()}
        held = {key: server.get_conversation(cid) for key, cid in by_source.items()}
    finally:
        server.close()
    assert {key: record.metadata["title"] for key, record in held.items() if record} == {
        "c0": "renamed in the app",
        "c1": "title 1",  # unchanged messages: the conversation is not written to
        "c2": "title 2",
    }
    assert held["c0"] is not None and held["c0"].metadata == plan.metadata

    # A resume of the finished sync, and a second sync, send no update again.
    again = sync_job(sync)
    assert (again.calls, again.metadata_updates) == (0, 0)


def test_run_into_a_target_the_ledger_knows_refuses_unless_told(
    tmp_path: Path, local_server: ServerFactory
) -> None:
    source = write_source(tmp_path / "source.jsonl", conversations=3, messages=2)
    base_url = local_server()
    state = f"sqlite:///{tmp_path / 'shared.db'}"
    run, _ = configs(source, tmp_path / "one", base_url, state_url=state)
    assert run_job(run).exit_code == 0
    second, sync = configs(source, tmp_path / "two", base_url, state_url=state)
    with pytest.raises(ConfigError, match="migrate sync"):
        run_job(second)
    # The same store and target through a new job directory: sync finds everything there.
    summary = sync_job(sync)
    assert (summary.calls, summary.conversations.up_to_date) == (0, 3)
    duplicate, _ = configs(
        source, tmp_path / "three", base_url, state_url=state, allow_duplicates=True
    )
    assert run_job(duplicate).conversations.migrated == 3
    assert len(server_items(tmp_path / "servers" / "server-0.db")) == 6


@pytest.mark.parametrize("policy", ["fail", "new_conversation"])
def test_a_diverged_conversation_follows_the_policy(
    tmp_path: Path, local_server: ServerFactory, policy: str
) -> None:
    source = write_source(tmp_path / "source.jsonl", conversations=2, messages=4, tools=False)
    base_url = local_server()
    run, _ = configs(source, tmp_path / "job", base_url)
    run_job(run)
    records = read_lines(source)
    records[0]["messages"].pop()  # a landed item vanished
    write_lines(source, records)
    _, sync = configs(source, tmp_path / "job", base_url, diverged=policy)
    summary = sync_job(sync)
    assert summary.conversations.diverged == 1
    held = server_items(tmp_path / "servers" / "server-0.db")
    if policy == "fail":
        assert summary.conversations.failed == 1
        errors = read_lines(tmp_path / "job" / "errors.jsonl")
        assert [e["code"] for e in errors] == ["source_diverged"]
        assert len(held) == 2
    else:
        assert summary.conversations.migrated == 1
        assert sorted(len(items) for items in held.values()) == [3, 4, 4]
        found = lookup_conversations(f"sqlite:///{tmp_path / 'job' / 'state.db'}", ["conv-0000"])
        assert [r.items for r in found] == [3]


def test_an_interrupted_sync_resumes_and_appends_once(
    tmp_path: Path, source_file: Callable[..., Path]
) -> None:
    source = source_file(conversations=6, messages=4, tools=False)
    job_dir = tmp_path / "job"
    common: dict[str, Any] = {
        "job": build_job_config(source=str(source), job_file=None),
        "job_dir": job_dir,
        "replay": ReplayOptions(concurrency=1, backoff_base=0.01),
    }
    assert run_job(RunConfig(**common)).exit_code == 0
    records = read_lines(source)
    for record in records:
        grow(record, 25)  # two append calls each
    write_lines(source, records)
    crashed = False

    def crash_once(point: CrashPoint, seq: int) -> None:
        nonlocal crashed
        if point == "after_append_call" and seq == 2 and not crashed:
            crashed = True
            raise SimulatedCrash()

    with pytest.raises(SimulatedCrash):
        sync_job(SyncConfig(**common), crash_hook=crash_once)
    summary = resume_job(ResumeConfig(job=JobRef(job_dir=job_dir)))
    assert summary.exit_code == 0, summary
    assert summary.conversations.migrated == 6
    assert verify_job(JobRef(job_dir=job_dir)).differing == 0
    after = plans_of(source)
    held = server_items(job_dir / "server.db")
    assert sorted(len(items) for items in held.values()) == sorted(
        len(plan.items) for plan in after.values()
    )


def wait_until_landing(
    job_dir: Path, earlier_job: str, landed: int, process: subprocess.Popen[bytes]
) -> None:
    """Until the sync job (not `earlier_job`) has landed more than `landed` items."""
    deadline = time.monotonic() + 60.0
    while process.poll() is None and time.monotonic() < deadline:
        try:
            summary = job_status(JobRef(job_dir=job_dir))
        except MigrateError:
            summary = None  # between the sync's new job and its job.json
        if summary is not None and summary.job_id != earlier_job and summary.items.landed > landed:
            return
        time.sleep(0.02)


@pytest.mark.slow
def test_sync_killed_at_random_moments_with_faults_lands_every_new_item_once(
    tmp_path: Path,
) -> None:
    source = write_source(tmp_path / "source.jsonl", conversations=60, messages=6)
    job_dir = tmp_path / "job"
    log = tmp_path / "migrate.log"
    first = start(["run", str(source), "--job-dir", str(job_dir)], log)
    assert first.wait(timeout=120) == 0, log.read_text(errors="replace")
    records = read_lines(source)
    for record in records[:40]:
        grow(record, 50)  # three append calls each
    added = [
        {"id": f"new-{n}", "messages": [{"role": "user", "content": f"hi {n}"}] * 30}
        for n in range(20)
    ]
    write_lines(source, [*records, *added])
    faults = ["--fault", "drop_after_commit=0.1", "--fault", "error_after_commit=0.1"]
    pace = ["--concurrency", "4", "--latency-ms", "20", "--fault-seed", "3", *faults]
    pace += ["--settle", "0.2"]
    chance = random.Random(20261201)
    killed = 0
    landed: list[int] = []
    before = job_status(JobRef(job_dir=job_dir))
    for round_number in range(ROUNDS):
        if round_number == 0:
            arguments = ["sync", str(source), "--job-dir", str(job_dir)]
        else:
            arguments = ["resume", str(job_dir)]
        offset = log.stat().st_size
        process = start([*arguments, *pace], log)
        wait_until_started(log, offset, process)
        # Kill while the sync writes, however slowly a loaded machine starts it.
        wait_until_landing(job_dir, before.job_id, landed[-1] if landed else 0, process)
        time.sleep(chance.uniform(0.0, 0.15))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            killed += 1
        process.wait(timeout=30)
        landed.append(job_status(JobRef(job_dir=job_dir)).items.landed)
    assert killed >= 3, log.read_text(errors="replace")
    planned = job_status(JobRef(job_dir=job_dir)).items.planned
    assert any(0 < count < planned for count in landed), landed
    final = start(["resume", str(job_dir), *pace], log)
    assert final.wait(timeout=180) == 0, log.read_text(errors="replace")
    summary = job_status(JobRef(job_dir=job_dir))
    assert (summary.conversations.migrated, summary.conversations.up_to_date) == (60, 20)
    assert verify_job(JobRef(job_dir=job_dir)).differing == 0
    after = plans_of(source)
    held = server_items(job_dir / "server.db")
    found = lookup_conversations(f"sqlite:///{job_dir / 'state.db'}", list(after))
    assert len(found) == len(after) == 80
    for result in found:
        items = held.pop(result.conversation_id)
        plan = after[result.source_id]
        assert len(items) == len(plan.items), result
        for item, listed in zip(plan.items, items, strict=True):
            assert item_difference(item.item, listed) is None
    # Nothing else on the target but empty possible orphans of create calls.
    assert all(not items for items in held.values())
    assert len(held) <= summary.possible_orphans


@pytest.mark.parametrize(
    "engine",
    [
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ],
)
def test_the_ledger_works_in_a_shared_store_on_any_engine(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest, local_server: ServerFactory
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'shared.db'}"
        if engine == "sqlite"
        else request.getfixturevalue(f"{engine}_url")
    )
    source = write_source(tmp_path / "source.jsonl", conversations=30, messages=4, tools=False)
    base_url = local_server()
    run, _ = configs(source, tmp_path / "backfill", base_url, state_url=url)
    assert run_job(run).exit_code == 0
    records = read_lines(source)
    grow(records[3], 2)
    write_lines(source, records)
    _, sync = configs(source, tmp_path / "sync-1", base_url, state_url=url)
    summary = sync_job(sync)
    assert (summary.conversations.migrated, summary.conversations.up_to_date) == (1, 29)
    assert (summary.calls, summary.metadata_updates) == (2, 1)  # the metadata, one batch
    found = lookup_conversations(url, ["conv-0003", "conv-0029"])
    assert [(r.source_id, r.items) for r in found] == [("conv-0003", 6), ("conv-0029", 4)]
    # The next job moves this one into the ledger: every entry is there, once.
    _, again = configs(source, tmp_path / "sync-2", base_url, state_url=url)
    assert sync_job(again).calls == 0
    store = StateStore.from_url(url)
    try:
        assert export_ledger_csv(store, tmp_path / "ledger.csv") == 30
    finally:
        store.close()


@pytest.mark.parametrize("engine", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_sync_and_an_extra_worker_share_one_sync_job(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest, local_server: ServerFactory
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'shared.db'}"
        if engine == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    base_url = local_server(latency_ms=50)
    source = write_source(tmp_path / "source.jsonl", conversations=40, messages=4, tools=False)
    run, _ = configs(source, tmp_path / "backfill", base_url, state_url=url)
    assert run_job(run).exit_code == 0
    records = read_lines(source)
    for record in records:
        grow(record, 25)  # two appends each
    write_lines(source, records)
    _, sync = configs(source, tmp_path / "sync", base_url, state_url=url)
    # Slow enough (120 calls, two at a time, 50 ms each) for the worker to join in time.
    sync = sync.model_copy(update={"replay": sync.replay.model_copy(update={"concurrency": 2})})
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

    syncing = in_thread("sync", lambda: sync_job(sync))
    job_id = wait_for_job_id(tmp_path / "sync", syncing.is_alive)
    worker = in_thread("work", lambda: work_on_job(WorkConfig(state_url=url, job_id=job_id)))
    syncing.join(60)
    worker.join(60)
    assert results["sync"].exit_code == 0, results
    assert results["work"].exit_code == 0, results
    store = StateStore.from_url(url)
    with store.engine.connect() as conn:
        owners = conn.execute(select(conversations.c.claimed_by).distinct()).scalars().all()
    store.close()
    assert len(owners) == 2, owners  # both replayed part of the sync
    summary = job_status(JobRef(state_url=url, job_id=job_id))
    assert summary.conversations.migrated == 40
    assert summary.calls == 120  # a metadata update and two appends each, no create
    assert summary.metadata_updates == 40
    after = plans_of(source)
    held = server_items(tmp_path / "servers" / "server-0.db")
    assert sorted(len(items) for items in held.values()) == sorted(
        len(plan.items) for plan in after.values()
    )
