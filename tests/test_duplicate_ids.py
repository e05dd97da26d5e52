"""The same source id in two files: both land (`keep_all`), and the id map tells them apart."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from click.testing import CliRunner

from migrate.cli import main
from migrate.errors import EXIT_OK


def test_the_id_map_names_each_copy_by_location(tmp_path: Path) -> None:
    source = tmp_path / "chats"
    source.mkdir()
    for name, text in (("a.jsonl", "first copy"), ("b.jsonl", "second copy")):
        record = {"id": "chat-1", "messages": [{"role": "user", "content": text}]}
        (source / name).write_text(json.dumps(record) + "\n", encoding="utf-8")
    job = tmp_path / "job"
    result = CliRunner().invoke(main, ["run", str(source), "--job-dir", str(job)])
    assert result.exit_code == EXIT_OK, result.output
    with (job / "conversations.csv").open(encoding="utf-8", newline="") as table:
        rows = [row for row in csv.DictReader(table) if row["source_id"] == "chat-1"]
    assert sorted(Path(row["location"]).name for row in rows) == ["a.jsonl:1", "b.jsonl:1"]
    assert len({row["target_conversation_id"] for row in rows}) == 2
    findings = [json.loads(line) for line in (job / "findings.jsonl").read_text().splitlines()]
    duplicate = [f for f in findings if f["code"] == "duplicate_source_id"]
    assert len(duplicate) == 1 and duplicate[0]["location"].endswith("b.jsonl:1")
    first, this = duplicate[0]["value"]["first_location"], duplicate[0]["value"]["location"]
    assert (Path(first).name, Path(this).name) == ("a.jsonl:1", "b.jsonl:1")
    assert f"the first copy is at {first}, this copy is at {this}" in duplicate[0]["message"]
