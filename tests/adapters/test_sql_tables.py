"""The SQL source by column mapping, on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import re
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import JSON, Column, Integer, String, Table, func, insert, select, text
from sqlalchemy.exc import SQLAlchemyError

from adapters import SourceOpenError, SqlSourceConfig, open_source
from adapters.model import (
    Message,
    SourceConversation,
    SourceFailure,
    SourceRecord,
    TextPart,
    ToolCall,
    ToolResult,
)
from adapters.sql.tables import SqlTableSource
from migrate.config import load_job_file
from tests.adapters.sqlhelpers import (
    ENGINES,
    SAMPLES,
    Database,
    chat_messages_table,
    database,
    mariadb_database,
    message_json_table,
    postgres_schema,
)
from tests.databases import unreachable

__all__ = ["database", "mariadb_database", "postgres_schema"]

READ_ONLY = r"(?i)read.?only"
SERVERS = [engine for engine in ENGINES if engine.id != "sqlite"]

MAPPING: dict[str, Any] = {
    "table": "chat_messages",
    "conversation_column": "conversation_id",
    "order_columns": ["created_at", "id"],
    "role_column": "role",
    "content_column": "content",
    "timestamp_column": "created_at",
    "tool_calls_column": "tool_calls",
    "tool_call_id_column": "tool_call_id",
    "name_column": "author",
    "metadata_columns": ["channel"],
}


def read(config: SqlSourceConfig) -> list[SourceRecord]:
    return list(open_source(config).read())


def conversations(records: list[SourceRecord]) -> dict[str, SourceConversation]:
    return {r.id: r for r in records if isinstance(r, SourceConversation)}


def failures(records: list[SourceRecord]) -> dict[str | None, SourceFailure]:
    return {r.conversation_id: r for r in records if isinstance(r, SourceFailure)}


def texts(conversation: SourceConversation) -> list[str]:
    return [
        part.text
        for entry in conversation.entries
        if isinstance(entry, Message)
        for part in entry.parts
        if isinstance(part, TextPart)
    ]


def qualified(db: Database, table: str) -> str:
    return f"{db.schema}.{table}" if db.schema else table


def test_generic_sample_is_grouped_ordered_and_keeps_unicode(database: Database) -> None:
    database.run_script(SAMPLES / "generic.sql")
    records = read(database.config(**MAPPING))
    assert [r.id for r in records if isinstance(r, SourceConversation)] == [
        "conv-faq",
        "conv-trip",
    ]
    by_id = conversations(records)
    faq = by_id["conv-faq"]
    assert [entry.source_id for entry in faq.entries] == ["9", "3", "4"]
    assert texts(faq)[1:] == ["東京の天気はどうですか?", "東京は晴れです。最高気温は18度です。🌤️"]
    assert faq.location == "chat_messages conversation_id=conv-faq"
    trip = by_id["conv-trip"]
    assert [entry.kind for entry in trip.entries] == [
        "message",
        "message",
        "tool_call",
        "tool_call",
        "tool_result",
        "tool_result",
        "message",
    ]
    calls = [entry for entry in trip.entries if isinstance(entry, ToolCall)]
    assert [(c.call_id, c.name, c.arguments) for c in calls] == [
        ("call_wx_paris", "get_weather", '{"city": "Paris"}'),
        ("call_wx_tokyo", "get_weather", '{"city": "Tokyo"}'),
    ]
    results = [entry for entry in trip.entries if isinstance(entry, ToolResult)]
    assert [(r.call_id, r.name) for r in results] == [
        ("call_wx_paris", "get_weather"),
        ("call_wx_tokyo", "get_weather"),
    ]
    user = trip.entries[1]
    assert isinstance(user, Message)
    assert (user.role, user.name, user.metadata) == ("user", "ana", {"channel": "web"})
    assert texts(trip)[1] == "What is the weather in Paris and in Tokyo? ☀️"
    assert user.position == "chat_messages id=2"
    assert trip.entries[0].created_at == datetime(2025, 3, 1, 9, 0, tzinfo=UTC).timestamp()
    assert trip.created_at == trip.entries[0].created_at


def test_interleaved_long_conversations_stream_in_small_batches(database: Database) -> None:
    table = chat_messages_table(database.metadata())
    rows: list[dict[str, Any]] = []
    for turn in range(45):
        for conversation in ("c-long", "a-short", "b-mid"):
            length = {"a-short": 3, "b-mid": 21, "c-long": 45}[conversation]
            if turn >= length:
                continue
            rows.append(
                {
                    "id": len(rows) + 1,
                    "conversation_id": conversation,
                    "created_at": f"2025-01-01 10:{turn // 60:02d}:{turn % 60:02d}",
                    "role": "user" if turn % 2 == 0 else "assistant",
                    "content": f"{conversation} turn {turn} 🙂",
                }
            )
    database.insert(table, rows)
    records = read(database.config(**{**MAPPING, "batch_size": 4}))
    assert [r.id for r in records if isinstance(r, SourceConversation)] == [
        "a-short",
        "b-mid",
        "c-long",
    ]
    by_id = conversations(records)
    assert texts(by_id["c-long"]) == [f"c-long turn {turn} 🙂" for turn in range(45)]
    assert len(by_id["b-mid"].entries) == 21
    assert len(by_id["a-short"].entries) == 3


def test_bad_rows_fail_their_conversation_and_the_rest_goes_on(database: Database) -> None:
    table = chat_messages_table(database.metadata())
    good = {"created_at": "2025-01-01 10:00:00", "role": "user", "content": "hello"}
    database.insert(
        table,
        [
            {"id": 1, "conversation_id": "a-good", **good},
            {"id": 2, "conversation_id": "b-json", **good},
            {
                "id": 3,
                "conversation_id": "b-json",
                **good,
                "role": "assistant",
                "content": None,
                "tool_calls": '[{"id": "call_1", ',
            },
            {"id": 4, "conversation_id": "c-null", **good, "content": None},
            {"id": 5, "conversation_id": "d-role", **good, "role": "wizard"},
            {"id": 6, "conversation_id": "e-time", **good, "created_at": "yesterday noon"},
            {"id": 7, "conversation_id": None, **good},
            {"id": 8, "conversation_id": "f-good", **good},
            {"id": 9, "conversation_id": "c-null", **good},
        ],
    )
    records = read(database.config(**MAPPING))
    assert set(conversations(records)) == {"a-good", "f-good"}
    failed = failures(records)
    expected = {
        "b-json": ("malformed_json", "chat_messages id=3", "malformed JSON in column tool_calls"),
        "c-null": ("null_content", "chat_messages id=4", "NULL content"),
        "d-role": ("unknown_role", "chat_messages id=5", "unknown role 'wizard'"),
        "e-time": ("bad_timestamp", "chat_messages id=6", "bad timestamp 'yesterday noon'"),
    }
    for conversation_id, (code, location, reason) in expected.items():
        failure = failed[conversation_id]
        assert (failure.code, failure.location) == (code, location)
        assert f"conversation {conversation_id!r}" in failure.message
        assert reason in failure.message
        assert "chat_messages" in failure.message
    assert "1 of 2 row(s) unreadable" in failed["c-null"].message
    orphan = failed[None]
    assert orphan.code == "null_conversation_key"
    assert orphan.location == "chat_messages id=7"
    assert "NULL conversation_id" in orphan.message
    assert len(records) == 7


def test_message_json_rows_through_a_read_only_query(database: Database) -> None:
    table = message_json_table(database.metadata())
    database.insert(
        table,
        [
            {"id": 1, "thread": "t1", "body": {"role": "user", "content": "Ça marche ? 🤔"}},
            {"id": 2, "thread": "t2", "body": {"role": "user", "content": "skip me"}},
            {
                "id": 3,
                "thread": "t1",
                "body": {
                    "role": "assistant",
                    "content": None,
                    "function_call": {"name": "lookup", "arguments": '{"q": "x"}'},
                },
            },
            {
                "id": 4,
                "thread": "t1",
                "body": {"role": "function", "name": "lookup", "content": "ok"},
            },
        ],
    )
    query = f"SELECT id, thread, body FROM {qualified(database, 'chat_json')} WHERE id <> 2"
    config = database.config(
        query=query,
        conversation_column="thread",
        message_id_column="id",
        message_json_column="body",
    )
    [record] = read(config)
    assert isinstance(record, SourceConversation)
    assert record.location == "query thread=t1"
    assert [entry.kind for entry in record.entries] == ["message", "tool_call", "tool_result"]
    assert texts(record) == ["Ça marche ? 🤔"]
    assert [entry.source_id for entry in record.entries] == ["1", "3", "4"]


def test_a_query_that_writes_is_refused_before_it_runs(database: Database) -> None:
    table = message_json_table(database.metadata())
    database.insert(table, [{"id": 1, "thread": "t", "body": {"role": "user", "content": "x"}}])
    name = qualified(database, "chat_json")
    config = database.config(
        query=f"DELETE FROM {name}",
        conversation_column="thread",
        message_id_column="id",
        message_json_column="body",
    )
    with pytest.raises(SourceOpenError, match="single SELECT"):
        read(config)
    with database.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(table)).scalar() == 1


def test_one_row_per_conversation_with_a_messages_array(database: Database) -> None:
    table = message_json_table(database.metadata())
    messages = [{"role": "system", "content": "Be terse."}] + [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"message {i} 日本"}
        for i in range(24)
    ]
    database.insert(
        table,
        [
            {"id": 1, "thread": "long", "body": messages},
            {
                "id": 2,
                "thread": "broken",
                "body": [{"role": "user", "content": "hi"}, {"content": "no role"}],
            },
            {"id": 3, "thread": "twice", "body": []},
            {"id": 4, "thread": "twice", "body": []},
        ],
    )
    config = database.config(
        table="chat_json", conversation_column="thread", messages_json_column="body"
    )
    records = read(config)
    long = conversations(records)["long"]
    assert len(long.entries) == 25
    assert texts(long)[-1] == "message 23 日本"
    assert long.entries[3].position == "chat_json id=1 message 3"
    failed = failures(records)
    assert failed["broken"].code == "missing_role"
    assert "message 1" in failed["broken"].message
    assert failed["twice"].code == "duplicate_conversation_key"


def test_missing_table_and_column_are_clear_open_errors(database: Database) -> None:
    database.insert(chat_messages_table(database.metadata()), [])
    with pytest.raises(SourceOpenError, match="no table 'nothing_here'"):
        read(database.config(**{**MAPPING, "table": "nothing_here"}))
    with pytest.raises(SourceOpenError, match="has no column 'body'"):
        read(database.config(**{**MAPPING, "content_column": "body"}))


def test_writes_through_the_source_connection_fail(database: Database) -> None:
    table = chat_messages_table(database.metadata())
    database.insert(table, [{"id": 1, "conversation_id": "c", "role": "user", "content": "hi"}])
    source = SqlTableSource(database.config(**MAPPING))
    name = qualified(database, "chat_messages")
    with source.connect() as connection, pytest.raises(SQLAlchemyError, match=READ_ONLY):
        connection.execute(text(f"DELETE FROM {name}"))
    with source.connect() as connection, pytest.raises(SQLAlchemyError, match=READ_ONLY):
        connection.execute(text(f"CREATE TABLE {qualified(database, 'intruder')} (x INTEGER)"))
    with database.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(table)).scalar() == 1


@pytest.mark.parametrize("database", SERVERS, indirect=True)
def test_password_never_shows_in_describe_or_errors(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHAT_DB_PASSWORD", "pw-Zebra-42")
    config = database.config(**MAPPING, password_env="CHAT_DB_PASSWORD")
    source = SqlTableSource(config)
    assert "pw-Zebra-42" not in source.describe() and "***" in source.describe()
    # PostgreSQL here trusts any password (the table is missing); MariaDB refuses it.
    with pytest.raises(SourceOpenError) as caught:
        list(source.read())
    assert "pw-Zebra-42" not in str(caught.value)
    assert "***" in str(caught.value)


def test_readme_job_files_parse_and_the_generic_one_runs(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    readme = (SAMPLES / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```toml\n(.+?)```", readme, re.DOTALL)
    assert len(blocks) == 4
    presets = []
    for index, block in enumerate(blocks):
        job = tmp_path / f"job{index}.toml"
        job.write_text(block, encoding="utf-8")
        source = load_job_file(job).source
        assert isinstance(source, SqlSourceConfig)
        presets.append(source.preset)
        if source.preset is None:
            generic = tomllib.loads(block)["source"]
    assert sorted(map(str, presets)) == ["None", "agents-sdk", "langchain", "llamaindex"]
    database.run_script(SAMPLES / "generic.sql")
    monkeypatch.setenv(generic["url_env"], database.url)
    if database.schema:
        generic["schema"] = database.schema
    records = read(SqlSourceConfig.model_validate(generic))
    assert sorted(conversations(records)) == ["conv-faq", "conv-trip"]


def test_keys_equal_under_a_case_insensitive_collation_stay_whole(database: Database) -> None:
    table = chat_messages_table(database.metadata())
    rows = [
        (1, "Conv", "2025-01-01 10:00:01", "Conv one"),
        (2, "conv", "2025-01-01 10:00:02", "conv one"),
        (3, "Conv", "2025-01-01 10:00:03", "Conv two"),
        (4, "conv", "2025-01-01 10:00:04", "conv two"),
        (5, "conv ", "2025-01-01 10:00:05", "padded"),
    ]
    database.insert(
        table,
        [
            {"id": i, "conversation_id": key, "created_at": at, "role": "user", "content": body}
            for i, key, at, body in rows
        ],
    )
    records = read(database.config(**MAPPING))
    assert len(records) == 3
    by_id = conversations(records)
    assert texts(by_id["Conv"]) == ["Conv one", "Conv two"]
    assert texts(by_id["conv"]) == ["conv one", "conv two"]
    assert texts(by_id["conv "]) == ["padded"]


def test_json_typed_columns_are_read_as_parsed_values(database: Database) -> None:
    table = Table(
        "typed_json",
        database.metadata(),
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("thread", String(32)),
        Column("body", JSON),
    )
    table.create(database.engine)
    with database.engine.begin() as connection:
        connection.execute(
            insert(table),
            [
                {"id": 1, "thread": "t", "body": {"role": "user", "content": "naïve café ☕"}},
                {
                    "id": 2,
                    "thread": "t",
                    "body": {"role": "assistant", "content": [{"type": "text", "text": "oui"}]},
                },
            ],
        )
    config = database.config(
        table="typed_json", conversation_column="thread", message_json_column="body"
    )
    [record] = read(config)
    assert isinstance(record, SourceConversation)
    assert texts(record) == ["naïve café ☕", "oui"]


def test_unreachable_servers_skip_locally_and_fail_under_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="PostgreSQL is not reachable: refused"):
        unreachable("PostgreSQL", OSError("refused"))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        unreachable("PostgreSQL", OSError("refused"))
