"""`report.html` after runs: a faulted one, one with failures, one that met 429s. Every number on
the page comes from `summary.json`, and the figures over time agree with the state store."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx2
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from migrate.cli import main
from migrate.jobs.models import JobRef, ResumeConfig
from migrate.jobs.run import resume_job, run_job
from migrate.limits import MAX_INPUT_TEXT_CHARS as MAX_TEXT
from migrate.replay.replayer import SimulatedCrash
from migrate.replay.target import TargetConfig
from migrate.server.testing import ServerFactory
from migrate.state.schema import intents
from migrate.state.store import StateStore
from tests.htmlreport import check_numbers, open_in_chromium
from tests.replay.helpers import assert_exactly_once, run_config, write_source


def _store_counts(job_dir: Path) -> tuple[int, int, int]:
    """Resolved writes, retried writes and final conversations, read from the state store."""
    with sqlite3.connect(job_dir / "state.db") as db:
        writes = db.execute("SELECT COUNT(*) FROM intents WHERE resolved_at IS NOT NULL").fetchone()
        retried = db.execute(
            "SELECT COUNT(*) FROM intents WHERE outcome IN ('not_applied', 'ambiguous')"
        ).fetchone()
        final = db.execute(
            "SELECT COUNT(*) FROM conversations WHERE status IN ('migrated', 'failed')"
        ).fetchone()
    return int(writes[0]), int(retried[0]), int(final[0])


def test_a_faulted_run_report_matches_its_summary_and_the_state_store(
    tmp_path: Path, source_file: Callable[..., Path]
) -> None:
    source = source_file(conversations=6, messages=30)
    script = ["error_before", "none", "error_after_commit", "none", "drop_after_commit", "none"]
    config = run_config(
        source,
        tmp_path / "job",
        concurrency=1,
        timeout=0.5,
        server={"faults": {"script": script * 2}},
    )
    summary = run_job(config)
    assert summary.exit_code == 0
    assert_exactly_once(tmp_path / "job", migrated=6)
    data, numbers = check_numbers(tmp_path / "job")
    report = data["report"]
    counts = data["conversations"]
    assert counts["total"] == counts["migrated"] + counts["failed"] + counts["skipped"]
    shown = {path for path, _, _ in numbers}
    for path in ("calls", "retries", "reconciliations", "possible_orphans", "elapsed"):
        assert path in shown
    assert data["retries"] >= 3 and data["possible_orphans"] >= 1
    # the time buckets add up to what the state store holds
    writes, retried, final = _store_counts(tmp_path / "job")
    buckets = report["timeline"]["buckets"]
    assert sum(bucket["writes"] for bucket in buckets) == writes
    assert sum(bucket["retries"] for bucket in buckets) == retried
    assert sum(bucket["conversations"] for bucket in buckets) == final
    assert 0 < sum(bucket["reconciliations"] for bucket in buckets) <= data["reconciliations"]
    assert [session["planner"] for session in report["sessions"]] == [True]
    assert report["pauses"] == {"count": 0, "seconds": 0.0, "lowest_rate": None, "logged": False}
    seen = open_in_chromium(tmp_path / "job" / "report.html", tmp_path / "run.png")
    assert seen.errors == []
    assert seen.requests == [(tmp_path / "job" / "report.html").resolve().as_uri()]


def test_a_run_with_failures_lists_them_by_code_with_their_location(
    tmp_path: Path, source_file: Callable[..., Path]
) -> None:
    source = source_file(conversations=4, messages=25, tools=False)
    lines = source.read_text(encoding="utf-8").splitlines()
    lines[1] = lines[1].replace('"conv 1 says 22"', f'"{"x" * (MAX_TEXT + 1)}"')
    lines[2] = lines[2].replace('"role": "user"', '"role": "bot"', 1)
    lines.append("{not json")
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = run_config(source, tmp_path / "job")
    policy = config.job.policy.model_copy(update={"max_text_chars": 2 * MAX_TEXT})
    config = config.model_copy(update={"job": config.job.model_copy(update={"policy": policy})})
    summary = run_job(config)
    assert summary.exit_code == 1
    data, _ = check_numbers(tmp_path / "job")
    errors = {row["code"]: row for row in data["report"]["errors"]}
    assert sum(row["conversations"] for row in errors.values()) == data["conversations"]["failed"]
    assert set(errors) == {"unknown_role", "malformed_json", "api_string_above_max_length"}
    assert errors["unknown_role"]["examples"][0]["location"] == f"{source}:3"
    assert errors["malformed_json"]["examples"][0]["location"] == f"{source}:5"
    assert "rejected" in errors["api_string_above_max_length"]["meaning"]
    for row in errors.values():
        assert row["share"] == round(100 * row["conversations"] / 5, 1)
    # `migrate report --html` writes the same page again, and only it and the summary
    page = (tmp_path / "job" / "report.html").read_text("utf-8")
    (tmp_path / "job" / "report.html").unlink()
    (tmp_path / "job" / "items.csv").unlink()
    result = CliRunner().invoke(main, ["report", str(tmp_path / "job"), "--html"])
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "job" / "items.csv").exists()
    assert (tmp_path / "job" / "report.html").read_text("utf-8") == page
    # the failed conversations are in the viewer, with their final status and code
    assert data["report"]["samples"] == page.count('<details data-free=""') == 5
    assert 'class="status-failed">failed</span>' in page
    assert '<span class="tag err">api_string_above_max_length</span>' in page


def test_rate_limit_pauses_are_logged_and_shown(
    tmp_path: Path, source_file: Callable[..., Path], local_server: ServerFactory
) -> None:
    base_url = local_server(rpm=600)
    with httpx2.Client(headers={"Authorization": "Bearer test"}) as http:
        for _ in range(2000):
            if http.get(f"{base_url}/conversations/conv_none").status_code == 429:
                break
        else:
            pytest.fail("the server never rate-limited")
    source = source_file(conversations=6, messages=4)
    target = TargetConfig(kind="openai", base_url=base_url, timeout=10)
    events_file = tmp_path / "job" / "events.jsonl"
    job_done = threading.Event()

    def neighbour() -> None:
        # another client of the same account keeps the bucket empty until the job has met a
        # 429 (however slowly a loaded machine starts the job), then lets it finish
        with httpx2.Client(headers={"Authorization": "Bearer test"}) as http:
            while not job_done.is_set() and not events_file.exists():
                if http.get(f"{base_url}/conversations/conv_none").status_code == 429:
                    time.sleep(0.05)

    drainer = threading.Thread(target=neighbour)
    drainer.start()
    try:
        summary = run_job(run_config(source, tmp_path / "job", concurrency=4, target=target))
    finally:
        job_done.set()
        drainer.join()
    assert summary.exit_code == 0
    events = (tmp_path / "job" / "events.jsonl").read_text("utf-8").splitlines()
    assert len(events) >= 1
    data, numbers = check_numbers(tmp_path / "job")
    pauses = data["report"]["pauses"]
    assert pauses["logged"] is True and pauses["count"] == len(events)
    assert pauses["seconds"] == round(sum(json.loads(e)["pause"] for e in events), 1)
    assert sum(b["pauses"] for b in data["report"]["timeline"]["buckets"]) == len(events)
    assert "report.pauses.count" in {path for path, _, _ in numbers}


@pytest.mark.parametrize(
    "engine",
    [
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ],
)
def test_a_resumed_job_reports_both_sessions_on_any_engine(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'elsewhere.db'}"
        if engine == "sqlite"
        else request.getfixturevalue(f"{engine}_url")
    )
    source = write_source(tmp_path / "source.jsonl", conversations=4, messages=25)
    job_dir = tmp_path / "job"
    config = run_config(source, job_dir).model_copy(update={"state_url": url})
    crashes = iter([False, True])

    def hook(point: str, seq: int) -> None:
        if point == "after_append_call" and next(crashes, False):
            raise SimulatedCrash(point)

    with pytest.raises(SimulatedCrash):
        run_job(config, crash_hook=hook)
    resume_job(ResumeConfig(job=JobRef(job_dir=job_dir, state_url=url)))
    data, _ = check_numbers(job_dir)
    report = data["report"]
    assert data["conversations"]["migrated"] == 4
    assert len(report["sessions"]) == 2
    assert [session["planner"] for session in report["sessions"]] == [True, True]
    store = StateStore.from_url(url)
    try:
        with store.engine.connect() as conn:
            writes = conn.execute(
                select(func.count()).select_from(intents).where(intents.c.resolved_at.is_not(None))
            ).scalar_one()
    finally:
        store.close()
    assert sum(bucket["writes"] for bucket in report["timeline"]["buckets"]) == writes > 0
    assert sum(bucket["conversations"] for bucket in report["timeline"]["buckets"]) == 4
