"""Per-message timestamps: API items have none, so `items.csv` keeps them, with one finding."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from click.testing import CliRunner

from migrate.cli import main
from migrate.errors import EXIT_OK
from migrate.plan.planner import iso_time


def test_each_items_source_timestamp_is_in_the_item_map(tmp_path: Path) -> None:
    source = tmp_path / "chats.jsonl"
    records = [
        {
            "id": "timed",
            "messages": [
                {"id": "m1", "role": "user", "content": "hi", "create_time": 1700000000},
                {"id": "m2", "role": "assistant", "content": "hello", "create_time": 1700000060.5},
                {"id": "m3", "role": "user", "content": "no time here"},
            ],
        },
        {"id": "untimed", "messages": [{"id": "m4", "role": "user", "content": "plain"}]},
    ]
    source.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    job = tmp_path / "job"
    result = CliRunner().invoke(main, ["run", str(source), "--job-dir", str(job)])
    assert result.exit_code == EXIT_OK, result.output

    with (job / "items.csv").open(encoding="utf-8", newline="") as table:
        times = {row["source_item_id"]: row["source_created_at"] for row in csv.DictReader(table)}
    assert times == {
        "m1": "2023-11-14T22:13:20Z",
        "m2": "2023-11-14T22:14:20.500000Z",
        "m3": "",
        "m4": "",
    }
    findings = [json.loads(line) for line in (job / "findings.jsonl").read_text().splitlines()]
    timed = [f for f in findings if f["code"] == "item_timestamps_in_report"]
    assert len(timed) == 1 and timed[0]["source_id"] == "timed"
    assert timed[0]["value"] == {
        "field": "create_time",
        "first": "2023-11-14T22:13:20Z",
        "last": "2023-11-14T22:14:20.500000Z",
    }
    assert "create_time" in timed[0]["message"] and "items.csv" in timed[0]["message"]
    summary = json.loads((job / "summary.json").read_text())
    assert [(f["code"], f["conversations"]) for f in summary["report"]["findings"]] == [
        ("item_timestamps_in_report", 1)
    ]


def test_timestamps_stay_out_of_the_message_text(tmp_path: Path) -> None:
    source = tmp_path / "chats.jsonl"
    message = {"role": "user", "content": "hi", "created_at": "2024-05-01T08:00:00Z"}
    source.write_text(json.dumps({"id": "c", "messages": [message]}) + "\n", encoding="utf-8")
    job = tmp_path / "job"
    result = CliRunner().invoke(main, ["plan", str(source), "--job-dir", str(job), "--write-plan"])
    assert result.exit_code == EXIT_OK, result.output
    sent = (job / "plan.jsonl").read_text(encoding="utf-8")
    assert "2024-05-01" not in sent and "1714550400" not in sent


def test_iso_time_of_valid_and_invalid_seconds() -> None:
    assert iso_time(0.0) == "1970-01-01T00:00:00Z"
    assert iso_time(1e300) is None
