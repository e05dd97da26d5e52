"""Writes the server applies after the client stopped waiting (`apply_late`): settle, audit, repair.

The local server holds such a write before applying it and applies it whatever becomes of the
client, as a real server goes on with a request whose client timed out or died. Each test reads
the server's own database afterwards (not the job's state store) to count what it holds.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import httpx2
import pytest
from click.testing import CliRunner
from sqlalchemy import text

from migrate.cli import main
from migrate.errors import EXIT_OK, EXIT_PARTIAL
from migrate.jobs.models import JobRef, ResumeConfig, WorkConfig
from migrate.jobs.rollback import rollback_job
from migrate.jobs.run import resume_job, run_job, work_on_job
from migrate.jobs.status import job_status
from migrate.jobs.verify import verify_job
from migrate.replay import target as target_module
from migrate.replay.replayer import CrashPoint, SimulatedCrash
from migrate.replay.target import TargetConfig
from migrate.server.embedded import running_server
from migrate.server.options import FaultSettings
from migrate.server.testing import AdminClient, ServerFactory
from migrate.state.store import StateStore
from tests.replay.helpers import (
    assert_exactly_once,
    run_config,
    server_contents,
    target_mismatches,
    write_source,
)


def wait_for_late_writes(local_server: ServerFactory, base_url: str) -> None:
    """Until the server has applied every write it holds (none may land after the checks)."""
    app = local_server.server(base_url).app
    deadline = time.monotonic() + 30.0
    while app.late_writes_pending and time.monotonic() < deadline:
        time.sleep(0.05)
    assert app.late_writes_pending == 0


def intents_of(job_dir: Path, kind: str) -> list[tuple[str | None, float, float | None]]:
    """(outcome, created_at, resolved_at) of the job's intents of one kind."""
    with sqlite3.connect(job_dir / "state.db") as db:
        rows = db.execute(
            "SELECT outcome, created_at, resolved_at FROM intents WHERE kind = ? ORDER BY id",
            (kind,),
        ).fetchall()
    return [(outcome, float(created), resolved) for outcome, created, resolved in rows]


def test_writes_applied_after_the_timeout_but_within_the_settle_time_are_not_resent(
    tmp_path: Path, local_server: ServerFactory
) -> None:
    late = FaultSettings(rates={"apply_late": 0.25}, late_seconds=0.4)
    base_url = local_server(faults=late, seed=3)
    source = write_source(tmp_path / "source.jsonl", conversations=8, messages=25)
    job_dir = tmp_path / "job"
    target = TargetConfig(kind="openai", base_url=base_url, timeout=0.2)
    summary = run_job(run_config(source, job_dir, concurrency=4, target=target, settle=0.9))
    assert summary.exit_code == EXIT_OK
    assert summary.conversations.migrated == 8
    wait_for_late_writes(local_server, base_url)
    with AdminClient(base_url) as admin:
        assert admin.stats()["faults"]["apply_late"] >= 2
    # Each write in doubt was reconciled only once it had landed: nothing sent twice.
    assert target_mismatches(job_dir, tmp_path / "servers" / "server-0.db") == {}
    assert summary.late_writes_repaired == 0
    assert intents_of(job_dir, "delete_item") == []
    outcomes = {outcome for outcome, _, _ in intents_of(job_dir, "append")}
    assert outcomes == {"applied", "ambiguous"}, outcomes
    assert verify_job(JobRef(job_dir=job_dir)).differing == 0


def test_a_write_applied_after_the_settle_time_is_deleted_by_the_audit(
    tmp_path: Path, local_server: ServerFactory
) -> None:
    # The first append is held 1.5 s: it times out (0.2 s), is reconciled after the 0.3 s
    # settle (not there yet) and sent again; the held copy lands later, while the other 29
    # conversations keep the job busy, and the audit at the end finds it.
    late = FaultSettings(script=("none", "apply_late"), late_seconds=1.5)
    base_url = local_server(faults=late, latency_ms=25)
    source = write_source(tmp_path / "source.jsonl", conversations=30, messages=25)
    job_dir = tmp_path / "job"
    target = TargetConfig(kind="openai", base_url=base_url, timeout=0.2)
    summary = run_job(run_config(source, job_dir, concurrency=1, target=target, settle=0.3))
    assert summary.exit_code == EXIT_OK
    assert summary.conversations.migrated == 30
    wait_for_late_writes(local_server, base_url)
    # The 20 items of the late copy were deleted, one journaled call each.
    assert summary.late_writes_repaired == 20
    deletions = intents_of(job_dir, "delete_item")
    assert [outcome for outcome, _, _ in deletions] == ["applied"] * 20
    server_db = tmp_path / "servers" / "server-0.db"
    assert target_mismatches(job_dir, server_db) == {}
    report = verify_job(JobRef(job_dir=job_dir))
    assert (report.checked, report.differing) == (30, 0)
    written = json.loads((job_dir / "summary.json").read_text(encoding="utf-8"))
    assert written["late_writes_repaired"] == 20
    shown = CliRunner().invoke(main, ["status", str(job_dir)])
    assert "late writes:      20 item(s) repaired" in shown.output
    page = (job_dir / "report.html").read_text(encoding="utf-8")
    assert 'data-n="late_writes_repaired" data-style="int">20<' in page


def _in_flight_write(job_dir: Path, base_url: str, seq: int) -> threading.Thread:
    """Send conversation `seq`'s open append the way a dying process leaves it: the server
    holds it (`apply_late`), the client gives up at once, the write lands later."""
    store = StateStore.from_url(f"sqlite:///{job_dir / 'state.db'}")
    try:
        conversation_id = store.conversation(seq).conversation_id
        (intent,) = store.open_intents(seq)
        plan = next(p for row, p in store.iter_conversations(with_plans=True) if row.seq == seq)
    finally:
        store.close()
    assert plan is not None
    batch = [planned.item for planned in plan.items[intent.start : intent.start + intent.count]]

    def send() -> None:
        with AdminClient(base_url) as admin:
            admin.set_faults(script=["apply_late"], late_seconds=0.5)
        with (
            httpx2.Client(headers={"Authorization": "Bearer test"}, timeout=0.1) as http,
            contextlib.suppress(httpx2.TimeoutException),  # given up on, as by the dying process
        ):
            http.post(f"{base_url}/conversations/{conversation_id}/items", json={"items": batch})

    thread = threading.Thread(target=send)
    thread.start()
    return thread


@pytest.mark.parametrize("taken_over_by", ["resume", "work"])
def test_a_write_left_in_flight_is_reconciled_only_once_it_has_settled(
    taken_over_by: str, tmp_path: Path, local_server: ServerFactory
) -> None:
    base_url = local_server()
    source = write_source(tmp_path / "source.jsonl", conversations=4, messages=25)
    job_dir = tmp_path / "job"
    target = TargetConfig(kind="openai", base_url=base_url, timeout=5.0)
    sent: list[threading.Thread] = []

    def die_mid_append(point: CrashPoint, seq: int) -> None:
        if point == "after_append_intent" and seq == 1 and not sent:
            sent.append(_in_flight_write(job_dir, base_url, seq))
            raise SimulatedCrash("killed while the append was on its way")

    with pytest.raises(SimulatedCrash):
        run_job(
            run_config(source, job_dir, concurrency=2, target=target), crash_hook=die_mid_append
        )
    sent[0].join()
    if taken_over_by == "resume":
        summary = resume_job(ResumeConfig(job=JobRef(job_dir=job_dir), settle=1.0))
    else:
        job_id = json.loads((job_dir / "job.json").read_text())["job_id"]
        state_url = f"sqlite:///{job_dir / 'state.db'}"
        summary = work_on_job(WorkConfig(state_url=state_url, job_id=job_id, settle=1.0))
    assert summary.exit_code == EXIT_OK
    assert summary.conversations.migrated == 4
    wait_for_late_writes(local_server, base_url)
    # The write in flight was looked for only after the settle time: it had landed by then,
    # so it was found, not sent again, and nothing needed repairing.
    # (The other conversation's append, cancelled mid-call by the crash, was in doubt too.)
    reconciled = [row for row in intents_of(job_dir, "append") if row[0] == "reconciled"]
    assert reconciled
    for _, created, resolved in reconciled:
        assert resolved is not None and resolved >= created + 1.0
    assert summary.late_writes_repaired == 0
    assert target_mismatches(job_dir, tmp_path / "servers" / "server-0.db") == {}


def test_foreign_content_fails_the_conversation_and_nothing_is_deleted(tmp_path: Path) -> None:
    source = write_source(tmp_path / "source.jsonl", conversations=2, messages=25)
    job_dir = tmp_path / "job"

    def stop_after_first_batch(point: CrashPoint, seq: int) -> None:
        if point == "after_append_outcome":
            raise SimulatedCrash(point)

    with pytest.raises(SimulatedCrash):
        run_job(run_config(source, job_dir, concurrency=1), crash_hook=stop_after_first_batch)
    ((conversation_id, held),) = server_contents(job_dir).by_conversation.items()
    copy = {key: value for key, value in held[3].items() if key not in ("id", "status")}
    foreign = {"type": "message", "role": "user", "content": "someone else was here"}
    with running_server(None, job_dir / "server.db") as base_url, httpx2.Client() as http:
        added = http.post(
            f"{base_url}/conversations/{conversation_id}/items",
            headers={"Authorization": "Bearer test"},
            json={"items": [copy, foreign]},
        )
        assert added.status_code == 200, added.text
    resume_job(ResumeConfig(job=JobRef(job_dir=job_dir)))
    summary = job_status(JobRef(job_dir=job_dir))
    assert (summary.conversations.migrated, summary.conversations.failed) == (1, 1)
    errors = [json.loads(line) for line in (job_dir / "errors.jsonl").read_text().splitlines()]
    assert [e["code"] for e in errors] == ["target_diverged"]
    assert "not in the plan" in errors[0]["message"]
    # Not even the copy of a planned item was deleted: the conversation is not ours alone.
    after = server_contents(job_dir).by_conversation[conversation_id]
    assert len(after) == 22
    assert summary.late_writes_repaired == 0
    assert intents_of(job_dir, "delete_item") == []


def test_verify_repair_removes_a_copy_that_landed_after_the_job_finished(tmp_path: Path) -> None:
    source = write_source(tmp_path / "source.jsonl", conversations=3, messages=25)
    job_dir = tmp_path / "job"
    assert run_job(run_config(source, job_dir)).exit_code == EXIT_OK
    store = StateStore.from_url(f"sqlite:///{job_dir / 'state.db'}")
    rows = {row.source_id: (row, plan) for row, plan in store.iter_conversations(with_plans=True)}
    store.close()
    (late_row, late_plan), (other_row, _) = rows["conv-0001"], rows["conv-0002"]
    assert late_plan is not None
    repeated: list[dict[str, Any]] = [planned.item for planned in late_plan.items[5:8]]
    with running_server(None, job_dir / "server.db") as base_url, httpx2.Client() as http:
        for conversation_id, items in (
            (late_row.conversation_id, repeated),
            (other_row.conversation_id, [{"role": "user", "content": "not ours"}]),
        ):
            response = http.post(
                f"{base_url}/conversations/{conversation_id}/items",
                headers={"Authorization": "Bearer test"},
                json={"items": items},
            )
            assert response.status_code == 200, response.text
    runner = CliRunner()
    checked = runner.invoke(main, ["verify", str(job_dir), "--json"])
    assert checked.exit_code == EXIT_PARTIAL
    kinds = {
        c["source_id"]: sorted({p["kind"] for p in c["problems"]})
        for c in json.loads(checked.stdout)["conversations"]
    }
    assert kinds == {"conv-0001": ["duplicated"], "conv-0002": ["extra"]}
    repaired = runner.invoke(main, ["verify", str(job_dir), "--repair"])
    # The foreign item is left alone, so one conversation still differs.
    assert repaired.exit_code == EXIT_PARTIAL, repaired.output
    assert "repaired:    3 item(s) in 1 conversation(s)" in repaired.output
    assert "differing:   1" in repaired.output
    held = server_contents(job_dir).by_conversation
    assert len(held[str(late_row.conversation_id)]) == len(late_plan.items)
    assert held[str(other_row.conversation_id)][-1]["content"][0]["text"] == "not ours"
    assert [outcome for outcome, _, _ in intents_of(job_dir, "delete_item")] == ["applied"] * 3
    assert job_status(JobRef(job_dir=job_dir)).late_writes_repaired == 3
    again = verify_job(JobRef(job_dir=job_dir))
    assert [c.source_id for c in again.conversations] == ["conv-0002"]


def _lose_the_tail(job_dir: Path, base_url: str, source_id: str, count: int) -> int:
    """Take the last `count` items of a conversation away, on the server and in the state
    store, as if the job had never landed them; returns the conversation's seq."""
    store = StateStore.from_url(f"sqlite:///{job_dir / 'state.db'}")
    try:
        row = next(r for r, _ in store.iter_conversations() if r.source_id == source_id)
        ids = store.item_ids(row.seq)
        tail = sorted(ids)[-count:]
        with httpx2.Client(headers={"Authorization": "Bearer test"}) as http:
            for position in tail:
                gone = http.delete(
                    f"{base_url}/conversations/{row.conversation_id}/items/{ids[position]}"
                )
                assert gone.status_code == 200, gone.text
        with store.engine.begin() as conn:
            conn.execute(
                text("DELETE FROM items WHERE seq = :seq AND position >= :start"),
                {"seq": row.seq, "start": tail[0]},
            )
            conn.execute(
                text("UPDATE conversations SET landed_items = landed_items - :n WHERE seq = :seq"),
                {"n": count, "seq": row.seq},
            )
        return row.seq
    finally:
        store.close()


def test_an_audit_append_applied_late_settles_and_counts_as_repairs(
    tmp_path: Path, local_server: ServerFactory
) -> None:
    base_url = local_server()
    source = write_source(tmp_path / "source.jsonl", conversations=2, messages=25)
    job_dir = tmp_path / "job"
    target = TargetConfig(kind="openai", base_url=base_url, timeout=1.0)
    assert run_job(run_config(source, job_dir, target=target, settle=3.0)).exit_code == EXIT_OK
    seq = _lose_the_tail(job_dir, base_url, "conv-0001", 5)
    # The audit's append of the missing tail times out; the server applies it 2 s later.
    with AdminClient(base_url) as admin:
        admin.set_faults(script=["apply_late"], late_seconds=2.0)
    report = verify_job(JobRef(job_dir=job_dir), repair=True)
    wait_for_late_writes(local_server, base_url)
    assert (report.repaired, report.repaired_conversations) == (5, 1), report
    assert (report.matching, report.differing) == (2, 0), report
    # Settled, then found by the listing: not sent again, and the 5 items are the repairs.
    assert [outcome for outcome, _, _ in intents_of(job_dir, "append_missing")] == ["ambiguous"]
    summary = job_status(JobRef(job_dir=job_dir))
    assert summary.late_writes_repaired == 5
    assert summary.items.landed == summary.items.planned
    assert target_mismatches(job_dir, tmp_path / "servers" / "server-0.db") == {}
    store = StateStore.from_url(f"sqlite:///{job_dir / 'state.db'}")
    try:
        assert store.conversation(seq).status == "migrated"
    finally:
        store.close()


def test_verify_waits_through_429s_instead_of_reporting_items_missing(
    tmp_path: Path, local_server: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    base_url = local_server(rpm=600)
    source = write_source(tmp_path / "source.jsonl", conversations=6, messages=5)
    job_dir = tmp_path / "job"
    target = TargetConfig(kind="openai", base_url=base_url, timeout=10.0)
    assert run_job(run_config(source, job_dir, target=target)).exit_code == EXIT_OK
    # One failed read is all a listing may take: only a 429 must not count as one.
    monkeypatch.setattr(target_module, "READ_ATTEMPTS", 1)
    other_429s = 0
    draining = threading.Event()
    stop = threading.Event()

    def another_client_drains_the_bucket() -> None:
        nonlocal other_429s
        deadline = time.monotonic() + 60.0
        with httpx2.Client(headers={"Authorization": "Bearer test"}) as http:
            while time.monotonic() < deadline and not stop.is_set():
                if http.get(f"{base_url}/conversations/conv_none").status_code == 429:
                    other_429s += 1
                    if not draining.is_set():
                        # empty: keep it so for 1.5 s more, while verify reads
                        deadline = time.monotonic() + 1.5
                        draining.set()

    drainer = threading.Thread(target=another_client_drains_the_bucket)
    drainer.start()
    try:
        assert draining.wait(30), "the bucket was never drained"
        report = verify_job(JobRef(job_dir=job_dir))
    finally:
        stop.set()
        drainer.join()
    assert (report.checked, report.matching, report.differing) == (6, 6, 0), report
    with AdminClient(base_url) as admin:
        rate_limited = admin.stats()["rate_limited"]
    assert rate_limited > other_429s, "verify never met a 429"


def test_rollback_waits_through_429s_instead_of_failing_deletions(
    tmp_path: Path, local_server: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    base_url = local_server(rpm=600)
    source = write_source(tmp_path / "source.jsonl", conversations=4, messages=3)
    job_dir = tmp_path / "job"
    target = TargetConfig(kind="openai", base_url=base_url, timeout=10.0)
    assert run_job(run_config(source, job_dir, target=target)).exit_code == EXIT_OK
    # One failed deletion is all a conversation may take: only a 429 must not count as one.
    monkeypatch.setattr(target_module, "READ_ATTEMPTS", 1)
    with AdminClient(base_url) as admin:
        before = admin.stats()["rate_limited"]
        admin.drain(1.5)  # another client of the account takes every request for 1.5 s
        result = rollback_job(JobRef(job_dir=job_dir))
        rate_limited = admin.stats()["rate_limited"] - before
    assert (result.deleted, result.failed) == (4, []), result
    assert rate_limited > 0, "rollback never met a 429"
    assert job_status(JobRef(job_dir=job_dir)).state == "rolled_back"


@pytest.mark.slow
def test_kill_9_then_resume_with_writes_applied_late_lands_everything_once(
    tmp_path: Path, local_server: ServerFactory
) -> None:
    import random
    import signal

    from tests.replay.test_replay_kill import start, wait_until_landing, wait_until_started

    late = FaultSettings(rates={"apply_late": 0.2}, late_seconds=0.4)
    base_url = local_server(faults=late, latency_ms=10, seed=11)
    source = write_source(tmp_path / "source.jsonl", conversations=40, messages=30)
    job_dir = tmp_path / "job"
    log = tmp_path / "migrate.log"
    chance = random.Random(20261201)
    flags = ["--timeout", "0.25", "--settle", "0.7", "--concurrency", "4"]
    killed = 0
    for round_number in range(3):
        if round_number == 0:
            arguments = ["run", str(source), "--job-dir", str(job_dir)]
            arguments += ["--target", "openai", "--base-url", base_url]
        else:
            arguments = ["resume", str(job_dir)]
        offset = log.stat().st_size if log.exists() else 0
        process = start([*arguments, *flags], log)
        wait_until_started(log, offset, process)
        wait_until_landing(job_dir, 0, process)
        time.sleep(chance.uniform(0.1, 0.6))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            killed += 1
        process.wait(timeout=30)
    assert killed >= 2, log.read_text(errors="replace")
    final = start(["resume", str(job_dir), "--settle", "0.7"], log)
    assert final.wait(timeout=120) == EXIT_OK, log.read_text(errors="replace")
    wait_for_late_writes(local_server, base_url)
    with AdminClient(base_url) as admin:
        assert admin.stats()["faults"]["apply_late"] >= 3
    summary = job_status(JobRef(job_dir=job_dir))
    assert summary.conversations.migrated == 40
    assert summary.items.landed == summary.items.planned
    assert target_mismatches(job_dir, tmp_path / "servers" / "server-0.db") == {}
    assert verify_job(JobRef(job_dir=job_dir)).differing == 0


def test_a_job_without_faults_needs_no_audit(tmp_path: Path) -> None:
    source = write_source(tmp_path / "source.jsonl", conversations=3, messages=25)
    job_dir = tmp_path / "job"
    summary = run_job(run_config(source, job_dir))
    assert summary.late_writes_repaired == 0
    assert_exactly_once(job_dir, migrated=3)
    with sqlite3.connect(job_dir / "state.db") as db:
        (listed,) = db.execute("SELECT SUM(reconciliations) FROM conversations").fetchone()
    assert listed == 0
