"""The report's tables kept up to date as conversations finish, and the findings behind them
stored with each plan (schema version 9)."""

from __future__ import annotations

import csv
import gzip
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from migrate.jobs import report as report_module
from migrate.jobs.models import JobRef, ResumeConfig
from migrate.jobs.report import report_tables, write_report_files
from migrate.jobs.run import resume_job, run_job
from migrate.jobs.status import job_summary, write_report
from migrate.plan.model import ConversationPlan
from migrate.replay.replayer import SimulatedCrash
from migrate.state import schema as state
from migrate.state.records import JobRecord
from migrate.state.store import StateStore
from migrate.transform.findings import ErrorRecord, Finding
from migrate.transform.transformer import PlannedItem
from tests.replay.helpers import run_config, write_source

TABLES = ("conversations.csv", "items.csv", "findings.jsonl", "errors.jsonl")


def plan_with_findings(number: int, findings: int) -> ConversationPlan:
    source_id = f"c{number}"
    return ConversationPlan(
        source_kind="test",
        source_id=source_id,
        location=f"test:{number}",
        metadata={"first_response_id": f"resp_{number}a", "leaf_response_id": f"resp_{number}z"},
        items=[
            PlannedItem(item={"type": "message", "role": "user", "content": "hi"}, entry_index=0)
        ],
        batch_sizes=[1],
        fingerprint=f"fp{number}",
        findings=[
            Finding(code=f"code_{n % 2}", conversation_id=source_id, message=f"m{n}", value=[n])
            for n in range(findings)
        ],
        tokens=10 + number,
        tokens_estimate="images" if number % 2 else None,
    )


def new_store(url: str) -> StateStore:
    store = StateStore.from_url(url, create=True)
    store.create_job(JobRecord(job_id="j", created_at=0.0, config={}, source="t", target={}))
    return store


def stored_findings(store: StateStore) -> list[tuple[int, str, Finding]]:
    return list(store.iter_findings())


def test_findings_are_stored_in_the_transaction_that_stores_the_plan(tmp_path: Path) -> None:
    store = new_store(f"sqlite:///{tmp_path / 'state.db'}")
    failure = ErrorRecord(code="invalid_json", message="bad", location="test:2")
    store.add_outcomes([(0, plan_with_findings(0, 3)), (1, plan_with_findings(1, 0)), (2, failure)])
    plan = plan_with_findings(0, 3)
    assert stored_findings(store) == [(0, "test:0", finding) for finding in plan.findings]
    row = store.conversation(0)
    assert (row.tokens, row.tokens_estimated, row.first_response_id, row.leaf_response_id) == (
        10,
        False,
        "resp_0a",
        "resp_0z",
    )
    assert store.conversation(1).tokens_estimated is True
    assert store.conversation(2).tokens is None
    # a plan replaced (the source changed before anything was sent) replaces its findings
    store.replace_outcome(0, plan_with_findings(0, 1))
    assert [f.message for _, _, f in stored_findings(store)] == ["m0"]
    # a batch that cannot be stored leaves neither plans nor findings behind
    with pytest.raises(Exception, match="UNIQUE"):
        store.add_outcomes([(3, plan_with_findings(3, 2)), (0, plan_with_findings(0, 2))])
    assert store.known_count() == 3 and len(stored_findings(store)) == 1
    store.close()


@pytest.mark.parametrize(
    "engine",
    [
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ],
)
def test_a_version_7_store_gets_its_findings_from_its_stored_plans_once(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'state.db'}"
        if engine == "sqlite"
        else str(request.getfixturevalue(f"{engine}_url"))
    )
    store = new_store(url)
    # more conversations than one page of the back-fill
    plans = [(n, plan_with_findings(n, n % 3)) for n in range(state.BACKFILL_PAGE + 20)]
    failure = ErrorRecord(code="invalid_json", message="bad", location="test:x")
    store.add_outcomes([*plans, (len(plans), failure)])
    expected = stored_findings(store)
    expected_rows = [store.conversation(n) for n in (0, 1, 2, len(plans))]
    with store.engine.begin() as conn:
        conn.execute(text("DROP TABLE findings"))
        conn.execute(text("DROP TABLE report_progress"))
        dropped = ("tokens", "tokens_estimated", "first_response_id", "leaf_response_id")
        for column in (*dropped, "source_mark"):
            conn.execute(text(f"ALTER TABLE conversations DROP COLUMN {column}"))
        conn.execute(text("UPDATE schema_version SET version = 7"))
    store.close()
    store = StateStore.from_url(url)
    assert store.schema_version() == state.SCHEMA_VERSION == 11
    assert stored_findings(store) == expected
    assert [store.conversation(n) for n in (0, 1, 2, len(plans))] == expected_rows
    assert store.report_progress() is None
    store.close()
    # opened again, nothing is filled in twice
    store = StateStore.from_url(url)
    assert stored_findings(store) == expected
    store.close()


def read_table(job_dir: Path, name: str) -> list[str]:
    plain = job_dir / name
    if plain.exists():
        return plain.read_text("utf-8").splitlines()
    with gzip.open(job_dir / f"{name}.gz", "rt", encoding="utf-8", newline="") as file:
        return file.read().splitlines()


def tables(job_dir: Path) -> dict[str, list[str]]:
    return {name: read_table(job_dir, name) for name in TABLES}


def whole_report(job_dir: Path, out: Path) -> dict[str, list[str]]:
    """The tables written whole from the state store, into another directory."""
    write_report(JobRef(job_dir=job_dir), out=out)
    return tables(out)


def assert_consistent(job_dir: Path, out: Path) -> None:
    """The job's tables equal the ones written whole, one row per conversation and item."""
    kept = tables(job_dir)
    assert kept == whole_report(job_dir, out)
    rows = list(csv.DictReader(kept["conversations.csv"]))
    ids = [row["source_id"] for row in rows]
    assert len(ids) == len(set(ids))
    summary = json.loads((job_dir / "summary.json").read_text("utf-8"))
    counts = summary["conversations"]
    assert len(rows) == counts["total"] == counts["migrated"] + counts["failed"] + counts["skipped"]
    assert Counter(row["status"] for row in rows) == {
        status: counts[status] for status in ("migrated", "failed", "skipped") if counts[status]
    }
    items = list(csv.DictReader(kept["items.csv"]))
    keys = [(row["source_id"], row["position"]) for row in items]
    assert len(keys) == len(set(keys)) == sum(int(row["landed_items"]) for row in rows)


@pytest.mark.parametrize("compress", [False, True])
def test_the_tables_are_right_after_kills_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, compress: bool
) -> None:
    monkeypatch.setattr(report_module, "REPORT_EVERY", 0.01)
    source = write_source(tmp_path / "source.jsonl", conversations=24, messages=45)
    records = [json.loads(line) for line in source.read_text("utf-8").splitlines()]
    for number, record in enumerate(records):
        if number % 3 == 0:  # a field with no place in the API: a finding
            record["messages"][1]["weird"] = number
    lines = [json.dumps(record) + "\n" for record in records]
    source.write_text("".join(lines) + "{not json\n", "utf-8")  # and a failed record
    job_dir = tmp_path / "job"
    config = run_config(source, job_dir, concurrency=2)
    config = config.model_copy(update={"compress": compress})
    appends = 0

    def recorded() -> int:
        store = StateStore.from_url(f"sqlite:///{job_dir / 'state.db'}")
        try:
            progress = store.report_progress()
            return 0 if progress is None else progress.below
        finally:
            store.close()

    def kill_once_rows_are_written(point: str, seq: int) -> None:
        nonlocal appends
        if point == "after_append_outcome":
            appends += 1
            if appends >= 10 and recorded() > 0:
                raise SimulatedCrash(point)

    with pytest.raises(SimulatedCrash):
        run_job(config, crash_hook=kill_once_rows_are_written)
    # the rows of the conversations finished before the kill are there already
    assert len(read_table(job_dir, "conversations.csv")) > 1

    def kill_now_and_then(point: str, seq: int) -> None:
        nonlocal appends
        if point == "after_append_outcome":
            appends += 1
            if appends % 15 == 0:
                raise SimulatedCrash(point)

    appends = 0
    for _ in range(10):
        try:
            summary = resume_job(
                ResumeConfig(job=JobRef(job_dir=job_dir)), crash_hook=kill_now_and_then
            )
            break
        except SimulatedCrash:
            continue
    assert summary.conversations.migrated == 24 and summary.conversations.failed == 1
    assert_consistent(job_dir, tmp_path / "whole")
    findings = [json.loads(line) for line in read_table(job_dir, "findings.jsonl")]
    assert [row["value"] for row in findings] == [{"weird": n} for n in range(0, 24, 3)]


def finished_job(job_dir: Path, conversations: int, *, failed: int | None = None) -> StateStore:
    """A state store in `job_dir` whose conversations all landed (one item each), but `failed`
    (created, then its append refused)."""
    job_dir.mkdir()
    store = new_store(f"sqlite:///{job_dir / 'state.db'}")
    store.add_outcomes([(n, plan_with_findings(n, n % 3)) for n in range(conversations)])
    for n in range(conversations):
        store.record_created(n, store.record_intent(n, "create", start=0, count=0), f"conv_{n}")
        if n == failed:
            store.record_failed(
                n, code="http_400", message="refused", hint=None, retryable=True, calls=1
            )
            continue
        intent = store.record_intent(n, "append", start=0, count=1)
        store.record_appended(
            n, intent, landed=[(0, None, f"msg_{n}")], source_conversation_id=f"c{n}", migrated=True
        )
    store.update_job(planning_complete=True, state="finished")
    return store


def finish(store: StateStore, job_dir: Path) -> None:
    write_report_files(store, job_dir, job_summary(store, job_dir).model_dump(mode="json"))


def test_rows_written_after_the_recorded_progress_are_cut_back(tmp_path: Path) -> None:
    job_dir = tmp_path / "job"
    store = finished_job(job_dir, 12)
    assert report_tables(store, job_dir).advance() == 12
    progress = store.report_progress()
    assert progress is not None and progress.below == 12
    # a kill after rows were appended and before their progress was recorded, mid-row
    for name in TABLES:
        with (job_dir / name).open("a", encoding="utf-8") as file:
            file.write('c0,"half a row')
    finish(store, job_dir)
    assert_consistent(job_dir, tmp_path / "whole")
    store.close()


def test_a_row_that_changed_after_it_was_written_is_written_again(tmp_path: Path) -> None:
    job_dir = tmp_path / "job"
    store = finished_job(job_dir, 6, failed=3)
    finish(store, job_dir)
    before = tables(job_dir)
    assert len(before["errors.jsonl"]) == 1
    # the failed conversation is retried (as `migrate resume --retry-failed` does) and lands
    store.reset_for_retry(3)
    intent = store.record_intent(3, "append", start=0, count=1)
    store.record_appended(
        3, intent, landed=[(0, None, "msg_3")], source_conversation_id="c3", migrated=True
    )
    finish(store, job_dir)
    after = tables(job_dir)
    assert after["errors.jsonl"] == []
    assert [row["status"] for row in csv.DictReader(after["conversations.csv"])] == ["migrated"] * 6
    assert_consistent(job_dir, tmp_path / "whole")
    store.close()


def test_the_report_reads_findings_not_plans(tmp_path: Path) -> None:
    job_dir = tmp_path / "job"
    store = finished_job(job_dir, 5)
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE conversations SET plan = 'not a plan'"))
    finish(store, job_dir)
    rows: list[dict[str, Any]] = [
        json.loads(line) for line in read_table(job_dir, "findings.jsonl")
    ]
    assert [row["message"] for row in rows] == ["m0", "m0", "m1", "m0"]
    summary = json.loads((job_dir / "summary.json").read_text("utf-8"))
    assert summary["tokens"]["total"] == sum(10 + n for n in range(5))
    assert summary["tokens"]["estimated"] == 2
    found = {row["code"]: row["conversations"] for row in summary["report"]["findings"]}
    assert found == {"code_0": 3, "code_1": 1}
    conversations = list(csv.DictReader(read_table(job_dir, "conversations.csv")))
    assert [row["leaf_response_id"] for row in conversations] == [f"resp_{n}z" for n in range(5)]
    store.close()
