"""The job verbs through the command line: run -> status -> verify -> report -> rollback."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from migrate.cli import main
from migrate.errors import EXIT_OK, EXIT_PARTIAL, EXIT_USAGE
from migrate.server.testing import ServerFactory
from tests.replay.helpers import server_contents, write_source

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "json" / "chat_completions.jsonl"


def test_run_status_verify_report_rollback_on_a_sample(tmp_path: Path) -> None:
    runner = CliRunner()
    job_dir = tmp_path / "job"
    ran = runner.invoke(main, ["run", str(SAMPLE), "--job-dir", str(job_dir)])
    # The sample holds records that cannot be migrated: partial success.
    assert ran.exit_code == EXIT_PARTIAL, ran.output
    assert "target: local Conversations server at http://127.0.0.1:" in ran.stderr
    assert "conversations:    10 total: 7 migrated, 3 failed, 0 skipped" in ran.stdout
    assert "target:" not in ran.stdout.splitlines()[0]

    status = runner.invoke(main, ["status", str(job_dir), "--json"])
    assert status.exit_code == EXIT_OK
    counts = json.loads(status.stdout)
    assert counts["conversations"] == {
        "total": 10,
        "migrated": 7,
        "failed": 3,
        "skipped": 0,
        "pending": 0,
        "in_progress": 0,
        "up_to_date": 0,
        "diverged": 0,
    }
    assert counts["items"]["planned"] == counts["items"]["landed"] > 0
    for key in ("calls", "retries", "reconciliations", "possible_orphans", "elapsed"):
        assert key in counts

    verified = runner.invoke(main, ["verify", str(job_dir), "--json"])
    assert verified.exit_code == EXIT_OK, verified.output
    assert json.loads(verified.stdout)["matching"] == 7

    for name in ("items.csv", "conversations.csv"):
        (job_dir / name).unlink()
    reported = runner.invoke(main, ["report", str(job_dir)])
    assert reported.exit_code == EXIT_OK
    for name in (
        "conversations.csv",
        "items.csv",
        "findings.jsonl",
        "errors.jsonl",
        "summary.json",
    ):
        assert str(job_dir / name) in reported.stdout
    # The report is CSV only: one file per table (JSON Lines copies doubled the disk).
    assert not (job_dir / "conversations.jsonl").exists()
    assert not (job_dir / "items.jsonl").exists()
    with (job_dir / "conversations.csv").open(encoding="utf-8", newline="") as table:
        rows = list(csv.DictReader(table))
    migrated = {
        row["source_id"]: row["target_conversation_id"]
        for row in rows
        if row["status"] == "migrated"
    }
    assert migrated["conv_weather_0001"].startswith("conv_")
    items = (job_dir / "items.csv").read_text(encoding="utf-8").splitlines()
    assert items[0] == (
        "source_id,source_item_id,position,target_item_id,target_conversation_id,"
        "target_item_id_status,source_created_at"
    )
    assert len(items) - 1 == counts["items"]["landed"]
    errors = [json.loads(line) for line in (job_dir / "errors.jsonl").read_text().splitlines()]
    assert len(errors) == 3
    # One name per meaning: `source_id` is the source conversation in every file.
    assert {error["source_id"] or "" for error in errors} <= {row["source_id"] for row in rows}

    declined = runner.invoke(main, ["rollback", str(job_dir)], input="n\n")
    assert declined.exit_code != EXIT_OK
    assert "Delete 7 conversation(s)" in declined.stderr
    assert server_contents(job_dir).conversations == 7

    rolled_back = runner.invoke(main, ["rollback", str(job_dir), "--yes"])
    assert rolled_back.exit_code == EXIT_OK, rolled_back.output
    assert "deleted:      7" in rolled_back.stdout
    assert server_contents(job_dir).conversations == 0
    log = (job_dir / "rollback.jsonl").read_text(encoding="utf-8").splitlines()
    deleted = sorted(json.loads(line)["target_conversation_id"] for line in log)
    assert deleted == sorted(migrated.values())
    after = json.loads(runner.invoke(main, ["status", str(job_dir), "--json"]).stdout)
    assert (after["state"], after["deleted"]) == ("rolled_back", 7)
    resumed = runner.invoke(main, ["resume", str(job_dir)])
    assert resumed.exit_code == EXIT_USAGE
    assert "rolled back" in resumed.stderr


def test_openai_needs_an_explicit_target_and_a_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", "https://api.openai.com/v1")
    runner = CliRunner()
    # OPENAI_BASE_URL alone never sends anything to the API: the default target is local.
    local = runner.invoke(main, ["run", str(SAMPLE), "--job-dir", str(tmp_path / "a")])
    assert "local Conversations server" in local.stderr
    refused = runner.invoke(
        main, ["run", str(SAMPLE), "--target", "openai", "--job-dir", str(tmp_path / "b")]
    )
    assert refused.exit_code == EXIT_USAGE
    assert "OPENAI_API_KEY" in refused.stderr
    assert not (tmp_path / "b").exists()
    mixed = runner.invoke(main, ["run", str(SAMPLE), "--base-url", "http://127.0.0.1:1/v1"])
    assert mixed.exit_code == EXIT_USAGE
    assert "--target openai" in mixed.stderr


def test_the_api_key_never_reaches_the_job_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "sk-test-DO-NOT-LEAK-4f9a1c"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    source = write_source(tmp_path / "source.jsonl", conversations=3, messages=4)
    (tmp_path / "servers").mkdir()
    with ServerFactory(tmp_path / "servers") as servers:
        base_url = servers(api_key=secret)
        runner = CliRunner()
        job_dir = tmp_path / "job"
        ran = runner.invoke(
            main,
            [
                "run",
                str(source),
                "--target",
                "openai",
                "--base-url",
                base_url,
                "--job-dir",
                str(job_dir),
            ],
        )
        assert ran.exit_code == EXIT_OK, ran.output
        assert f"Conversations-compatible server at {base_url}" in ran.stderr
        assert runner.invoke(main, ["verify", str(job_dir)]).exit_code == EXIT_OK
    assert secret not in ran.output
    files = [path for path in job_dir.rglob("*") if path.is_file()]
    assert len(files) >= 8
    assert job_dir / "job.log" in files
    for path in files:
        assert secret.encode() not in path.read_bytes(), path


@pytest.mark.parametrize(
    ("flags", "unread"),
    [
        (["--create-with-items"], True),
        (["--flavour", "azure"], True),
        (["--flavour", "azure", "--read-item-ids"], False),
    ],
)
def test_create_with_items_and_read_item_ids_from_the_command_line(
    flags: list[str], unread: bool, tmp_path: Path
) -> None:
    runner = CliRunner()
    job_dir = tmp_path / "job"
    source = write_source(tmp_path / "source.jsonl", conversations=2, messages=30)
    ran = runner.invoke(main, ["run", str(source), "--job-dir", str(job_dir), "--json", *flags])
    assert ran.exit_code == EXIT_OK, ran.output
    summary = json.loads(ran.stdout)
    # Two conversations of two batches each; the create carries the first one.
    assert summary["calls"] == 2 * 2 + (0 if unread else 2)
    assert summary["items"]["unread_ids"] == (2 * 20 if unread else 0)
    stored = json.loads((job_dir / "summary.json").read_text(encoding="utf-8"))
    assert stored["items"]["unread_ids"] == summary["items"]["unread_ids"]
    verified = runner.invoke(main, ["verify", str(job_dir)])
    assert verified.exit_code == EXIT_OK, verified.output
    assert "differing:   0" in verified.stdout
    reported = runner.invoke(main, ["report", str(job_dir)])
    assert reported.exit_code == EXIT_OK, reported.output
    with (job_dir / "items.csv").open(encoding="utf-8", newline="") as table:
        rows = list(csv.DictReader(table))
    assert len(rows) == summary["items"]["planned"]
    assert all(row["target_item_id"] and row["target_item_id_status"] == "recorded" for row in rows)
