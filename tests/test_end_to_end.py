"""Every bundled sample, end to end: `run` into the local server, `verify`, `rollback`."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from migrate.cli import main
from migrate.errors import EXIT_OK, EXIT_PARTIAL

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout


@pytest.mark.parametrize("sample", ["json", "assistants"])
def test_samples_run_verify_and_roll_back(sample: str, tmp_path: Path) -> None:
    job = tmp_path / "job"
    planned_dir = tmp_path / "plan"
    _, plan_out = invoke(
        "plan", str(SAMPLES / sample), "--job-dir", str(planned_dir), "--json", "--write-plan"
    )
    plan = json.loads(plan_out)

    code, _ = invoke("run", str(SAMPLES / sample), "--job-dir", str(job))
    assert code == (EXIT_PARTIAL if plan["conversations"]["failed"] else EXIT_OK)

    _, status_out = invoke("status", str(job), "--json")
    status = json.loads(status_out)
    counts = status["conversations"]
    assert counts["migrated"] == plan["conversations"]["planned"]
    assert counts["failed"] == plan["conversations"]["failed"]
    assert counts["skipped"] == plan["conversations"]["skipped"]
    assert counts["total"] == counts["migrated"] + counts["failed"] + counts["skipped"]
    assert status["items"] == {
        "planned": plan["items"]["planned"],
        "landed": plan["items"]["planned"],
        "unread_ids": 0,
    }
    assert status["calls"] == plan["api_calls"]

    code, verify_out = invoke("verify", str(job), "--json")
    assert code == EXIT_OK, verify_out
    assert json.loads(verify_out)["matching"] == plan["conversations"]["planned"]

    # The local target's own database holds exactly the planned items, in plan order.
    sent = [json.loads(line) for line in (planned_dir / "plan.jsonl").read_text().splitlines()]
    with sqlite3.connect(job / "server.db") as db:
        stored_items = db.execute("SELECT count(*) FROM items").fetchone()[0]
    assert stored_items == sum(len(r["body"].get("items", [])) for r in sent)

    item_map = (job / "items.csv").read_text().splitlines()
    assert len(item_map) - 1 == plan["items"]["planned"]

    code, _ = invoke("rollback", str(job), "--yes")
    assert code == EXIT_OK
    _, status_out = invoke("status", str(job), "--json")
    assert json.loads(status_out)["deleted"] == plan["conversations"]["planned"]


def test_an_assistants_thread_longer_than_twenty_messages_lands_whole(tmp_path: Path) -> None:
    thread = SAMPLES / "assistants" / "thread_9bQ2mVtX4aLpR7cN1eHwZs3K.json"
    assert len(json.loads(thread.read_text())["messages"]) > 20
    job = tmp_path / "job"
    code, _ = invoke("run", str(thread), "--job-dir", str(job))
    assert code == EXIT_OK
    with (job / "items.csv").open(encoding="utf-8", newline="") as table:
        rows = list(csv.DictReader(table))
    assert len(rows) > 20
    assert [int(row["position"]) for row in rows] == list(range(len(rows)))
    assert all(row["target_item_id"] for row in rows)
    code, _ = invoke("verify", str(job))
    assert code == EXIT_OK
