"""SQL `metadata_columns` reach the conversation's metadata, or a finding with their values."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from sqlalchemy import Column, Integer, String, Table, Text

from adapters import SqlSourceConfig, open_source
from adapters.model import SourceConversation
from adapters.sql.mapping import conversation_metadata
from migrate.cli import main
from migrate.plan.planner import plan_conversation
from migrate.transform.policy import Policy
from tests.adapters.sqlhelpers import Database, database, mariadb_database, postgres_schema

__all__ = ["database", "mariadb_database", "postgres_schema"]

LONG_KEY = "k" * 70
WIDE = "w" * 600
EXTRA_COLUMNS = [f"extra_{n:02d}" for n in range(14)]
MAPPING: dict[str, Any] = {
    "table": "tagged_messages",
    "conversation_column": "conversation_id",
    "order_columns": ["id"],
    "role_column": "role",
    "content_column": "content",
    "metadata_columns": ["channel", "model", "note", "attrs", *EXTRA_COLUMNS],
}


def tagged_table(db: Database) -> Table:
    return Table(
        "tagged_messages",
        db.metadata(),
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("conversation_id", String(64)),
        Column("role", String(16)),
        Column("content", Text),
        Column("channel", String(32)),
        Column("model", String(32)),
        Column("note", Text),
        Column("attrs", Text),
        *(Column(name, String(16)) for name in EXTRA_COLUMNS),
    )


def fill(db: Database) -> None:
    row: dict[str, Any] = {"role": "user", "content": "hello"}
    many = {name: f"v{n}" for n, name in enumerate(EXTRA_COLUMNS)}
    db.insert(
        tagged_table(db),
        [
            # one channel, a model only on the assistant row, a JSON column of one value
            {"id": 1, "conversation_id": "a", **row, "channel": "web", "attrs": '{"tier": "pro"}'},
            {
                "id": 2,
                "conversation_id": "a",
                **row,
                "role": "assistant",
                "content": "hi",
                "channel": "web",
                "model": "gpt-4o",
                "attrs": '{"tier": "pro"}',
            },
            # the channel varies; a value over 512 characters
            {"id": 3, "conversation_id": "b", **row, "channel": "web", "note": WIDE},
            {
                "id": 4,
                "conversation_id": "b",
                **row,
                "channel": "app",
                "note": WIDE,
            },
            # more columns than the 16 pairs the API allows
            {"id": 5, "conversation_id": "c", **row, "channel": "sms", **many},
        ],
    )


def test_metadata_columns_reach_the_conversation_or_a_finding(database: Database) -> None:
    fill(database)
    records = list(open_source(database.config(**MAPPING)).read())
    found = {r.id: r for r in records if isinstance(r, SourceConversation)}
    assert sorted(found) == ["a", "b", "c"]
    policy = Policy()

    a = plan_conversation(found["a"], policy)
    assert found["a"].metadata == {
        "channel": "web",
        "model": '{"2":"gpt-4o"}',
        "attrs": '{"tier": "pro"}',
    }
    assert a.metadata["channel"] == "web"
    assert a.metadata["model"] == '{"2":"gpt-4o"}'
    assert not [f for f in a.findings if f.code == "metadata_truncated"]

    b = plan_conversation(found["b"], policy)
    assert b.metadata["channel"] == '{"3":"web","4":"app"}'
    assert "note" not in b.metadata
    (truncated,) = [f for f in b.findings if f.code == "metadata_truncated"]
    assert truncated.value["note"] == WIDE
    assert "note (value over 512 characters)" in truncated.message

    c = plan_conversation(found["c"], policy)
    assert len(c.metadata) == 16
    (truncated,) = [f for f in c.findings if f.code == "metadata_truncated"]
    kept = {name for name in EXTRA_COLUMNS if name in c.metadata}
    left = set(EXTRA_COLUMNS) - kept
    # migrated_from, source_id, channel and 14 extras: 17 pairs, 16 fit
    assert set(c.metadata) >= {"migrated_from", "source_id", "channel"}
    assert len(left) == 1
    assert {name: truncated.value[name] for name in left} == {
        name: f"v{EXTRA_COLUMNS.index(name)}" for name in left
    }
    assert all(c.metadata[name] == f"v{EXTRA_COLUMNS.index(name)}" for name in kept)


def test_a_dropped_metadata_value_is_in_findings_jsonl(database: Database, tmp_path: Path) -> None:
    fill(database)
    source = database.config(**MAPPING)
    lines = ["[source]", 'kind = "sql"', f"url = {json.dumps(source.url)}"]
    if source.schema_name is not None:
        lines.append(f"schema = {json.dumps(source.schema_name)}")
    for key, value in MAPPING.items():
        lines.append(f"{key} = {json.dumps(value)}")
    job = tmp_path / "job.toml"
    job.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = CliRunner().invoke(
        main, ["plan", "--job-file", str(job), "--job-dir", str(tmp_path / "out"), "--json"]
    )
    assert result.exit_code == 0, result.output
    findings = [
        json.loads(line)
        for line in (tmp_path / "out" / "findings.jsonl").read_text("utf-8").splitlines()
    ]
    dropped = {f["source_id"]: f["value"] for f in findings if f["code"] == "metadata_truncated"}
    assert dropped["b"]["note"] == WIDE
    assert sorted(dropped) == ["b", "c"]


def test_a_column_name_over_64_characters_is_a_finding(tmp_path: Path) -> None:
    path = tmp_path / "long.db"
    with sqlite3.connect(path) as connection:
        connection.execute(
            f"CREATE TABLE m (id INTEGER PRIMARY KEY, c TEXT, r TEXT, t TEXT, {LONG_KEY} TEXT)"
        )
        connection.execute("INSERT INTO m VALUES (1, 'x', 'user', 'hi', 'kept in the report')")
    connection.close()
    config = SqlSourceConfig(
        url=f"sqlite:///{path}",
        table="m",
        conversation_column="c",
        role_column="r",
        content_column="t",
        metadata_columns=[LONG_KEY],
    )
    (conversation,) = open_source(config).read()
    assert isinstance(conversation, SourceConversation)
    plan = plan_conversation(conversation, Policy())
    assert LONG_KEY not in plan.metadata
    (truncated,) = [f for f in plan.findings if f.code == "metadata_truncated"]
    assert truncated.value == {LONG_KEY: "kept in the report"}


def test_conversation_metadata_keeps_every_value() -> None:
    rows: list[tuple[str, dict[str, Any]]] = [
        ("1", {"x": 1, "y": None}),
        ("1", {"x": 2, "y": None}),
        ("3", {"x": 1}),
    ]
    assert conversation_metadata(rows) == {"x": '{"1":1,"1#2":2,"3":1}'}
    assert conversation_metadata([("1", {"x": "a"}), ("2", {"x": "a"})]) == {"x": "a"}
    assert conversation_metadata([]) == {}
