"""Pure parts of the SQL source: config checks, query check, value and message decoding."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from adapters import SourceOpenError, SqlSourceConfig
from adapters.base import DecodeError as RowError
from adapters.chat_messages import Provenance
from adapters.model import Entry, ImagePart, Message, RefusalPart, TextPart, ToolCall, ToolResult
from adapters.sql.mapping import column_message_entries, json_value, map_role, timestamp_value
from adapters.sql.tables import SqlTableSource, check_select, sql_config_from_cli

INFO = Provenance(position="chat_messages id=1", source_id="1", number_calls=False)


def chat_message_entries(message: dict[str, Any], info: Provenance) -> list[Entry]:
    """Entries of a message read from a row's columns."""
    return column_message_entries(message, info, [])


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "give a `table` or a `query`"),
        ({"table": "t"}, "conversation_column"),
        ({"table": "t", "conversation_column": "c"}, "map messages one way"),
        (
            {"table": "t", "conversation_column": "c", "role_column": "r"},
            "`role_column` and `content_column` go together",
        ),
        (
            {
                "table": "t",
                "conversation_column": "c",
                "message_json_column": "m",
                "role_column": "r",
                "content_column": "x",
            },
            "map messages one way",
        ),
        (
            {
                "table": "t",
                "conversation_column": "c",
                "message_json_column": "m",
                "name_column": "n",
            },
            "name_column need role_column",
        ),
        ({"table": "t", "query": "select 1"}, "not both"),
        ({"query": "select 1", "conversation_column": "c", "message_json_column": "m"}, "order"),
        ({"preset": "langchain", "role_column": "r"}, "does not take role_column"),
        ({"preset": "langchain", "query": "select 1"}, "needs no preset"),
        ({"preset": "llamaindex", "sessions_table": "s"}, "agents-sdk preset only"),
    ],
)
def test_inconsistent_mappings_are_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SqlSourceConfig(url="sqlite:///chat.db", **fields)


def test_config_takes_schema_from_a_job_file_and_round_trips() -> None:
    config = SqlSourceConfig.model_validate(
        {
            "kind": "sql",
            "url": "postgresql://app@db/chat",
            "schema": "legacy",
            "table": "messages",
            "conversation_column": "thread_id",
            "order_columns": ["created_at", "id"],
            "role_column": "role",
            "content_column": "body",
        }
    )
    assert config.schema_name == "legacy"
    assert config.order_columns == ("created_at", "id")
    assert SqlSourceConfig.model_validate(config.model_dump()) == config


def test_url_and_url_env_are_exclusive() -> None:
    with pytest.raises(ValidationError, match="exactly one of `url` and `url_env`"):
        SqlSourceConfig(preset="langchain")
    with pytest.raises(ValidationError, match="exactly one"):
        SqlSourceConfig(url="sqlite:///a.db", url_env="DB_URL", preset="langchain")


def test_cli_helper_builds_a_config_or_a_clear_error() -> None:
    config = sql_config_from_cli("sqlite:///chat.db", preset="langchain", table="history")
    assert (config.preset, config.table) == ("langchain", "history")
    with pytest.raises(SourceOpenError, match="invalid SQL source options"):
        sql_config_from_cli("sqlite:///chat.db")


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM messages",
        "  with t as (select * from m) select * from t ;",
        "select 'drop table x; insert' as note, id from m -- update me\n",
        'select "update" from m',
        "select $$;delete$$ as x from m",
        "SELECT id, replace(body, 'a', 'b') AS body, lower(thread) AS thread FROM m",
    ],
)
def test_single_selects_are_accepted(query: str) -> None:
    assert not check_select(query).rstrip().endswith(";")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("DELETE FROM messages", "single SELECT"),
        ("select 1; drop table messages", "contains `;`"),
        ("select * into backup from messages", "INTO"),
        ("with gone as (delete from m returning *) select * from gone", "DELETE"),
        ("select * from m for update", "UPDATE"),
        ("", "single SELECT"),
    ],
)
def test_anything_but_a_single_select_is_refused(query: str, message: str) -> None:
    with pytest.raises(SourceOpenError, match=message):
        check_select(query)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (datetime(2025, 3, 1, 9, 0, tzinfo=UTC), 1740819600.0),
        (datetime(2025, 3, 1, 9, 0), 1740819600.0),
        ("2025-03-01 09:00:00", 1740819600.0),
        ("2025-03-01T10:00:00+01:00", 1740819600.0),
        (1740819600, 1740819600.0),
        (1740819600000, 1740819600.0),
        (Decimal("1740819600000000"), 1740819600.0),
        (1740819600000000000, 1740819600.0),
        ("1740819600.5", 1740819600.5),
        (None, None),
    ],
)
def test_timestamps_in_every_common_form(raw: object, expected: float | None) -> None:
    assert timestamp_value(raw, "created_at") == expected


@pytest.mark.parametrize("raw", ["yesterday", "2025-13-45", -5, float("nan"), True, b"\x00x"])
def test_bad_timestamps_are_row_errors(raw: object) -> None:
    with pytest.raises(RowError, match="bad timestamp") as caught:
        timestamp_value(raw, "created_at")
    assert caught.value.code == "bad_timestamp"


def test_json_values_parse_text_and_pass_parsed_values() -> None:
    assert json_value('{"a": "é"}', "m") == {"a": "é"}
    assert json_value(b"[1, 2]", "m") == [1, 2]
    assert json_value({"already": True}, "m") == {"already": True}
    with pytest.raises(RowError, match="malformed JSON in column m"):
        json_value('{"a": ', "m")


@pytest.mark.parametrize(
    ("raw", "role"),
    [("user", "user"), (" Human ", "user"), ("AI", "assistant"), ("developer", "developer")],
)
def test_role_aliases(raw: str, role: str) -> None:
    assert map_role(raw) == role


@pytest.mark.parametrize("raw", ["bot", "", None, 3])
def test_unknown_roles_are_row_errors(raw: object) -> None:
    with pytest.raises(RowError, match="unknown role"):
        map_role(raw)


def test_assistant_message_with_parts_refusal_and_tool_calls() -> None:
    entries = chat_message_entries(
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "Checking"}],
            "refusal": "I cannot share that.",
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                {"id": "", "type": "function", "function": {"name": "g", "arguments": {"x": 1}}},
            ],
        },
        INFO,
    )
    message, first, second = entries
    assert isinstance(message, Message)
    assert message.parts == [TextPart(text="Checking"), RefusalPart(refusal="I cannot share that.")]
    assert isinstance(first, ToolCall) and first.call_id == "call_1"
    assert isinstance(second, ToolCall) and second.call_id is None
    assert second.arguments == '{"x":1}'
    assert {entry.position for entry in entries} == {"chat_messages id=1"}


def test_user_image_and_tool_and_function_messages() -> None:
    [user] = chat_message_entries(
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}}
            ],
        },
        INFO,
    )
    assert isinstance(user, Message)
    assert user.parts == [ImagePart(url="https://x/y.png", detail="low")]
    [tool] = chat_message_entries({"role": "tool", "tool_call_id": "c1", "content": "42"}, INFO)
    assert isinstance(tool, ToolResult) and (tool.call_id, tool.output) == ("c1", "42")
    [legacy] = chat_message_entries({"role": "function", "name": "f", "content": "ok"}, INFO)
    assert isinstance(legacy, ToolResult) and (legacy.call_id, legacy.name) == (None, "f")


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ({"role": "user", "content": None}, "null_content"),
        ({"role": "tool", "tool_call_id": "c", "content": None}, "null_content"),
        ({"role": "assistant", "content": None}, "null_content"),
        ({"role": "wizard", "content": "hi"}, "unknown_role"),
        ({"role": "user", "content": [{"type": "hologram"}]}, "unknown_content"),
    ],
)
def test_unreadable_messages_are_row_errors(message: dict[str, Any], code: str) -> None:
    with pytest.raises(RowError) as caught:
        chat_message_entries(message, INFO)
    assert caught.value.code == code


def test_describe_and_errors_hide_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAT_DB_URL", "postgresql://app:s3cr%40t-pw@db.internal/chat")
    source = SqlTableSource(SqlSourceConfig(url_env="CHAT_DB_URL", preset="langchain"))
    assert "s3cr" not in source.describe()
    assert "***" in source.describe() and "postgresql+psycopg://" in source.describe()
    monkeypatch.setenv("CHAT_DB_PASSWORD", "hunter2-secret")
    source = SqlTableSource(
        SqlSourceConfig(
            url="mysql://app@db.internal/chat", password_env="CHAT_DB_PASSWORD", preset="agents-sdk"
        )
    )
    assert "hunter2" not in source.describe()
    assert "mysql+pymysql://app:***@db.internal/chat" in source.describe()


def test_missing_environment_and_unknown_databases_are_open_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NO_SUCH_VAR", raising=False)
    with pytest.raises(SourceOpenError, match="NO_SUCH_VAR is not set"):
        SqlTableSource(SqlSourceConfig(url_env="NO_SUCH_VAR", preset="langchain"))
    with pytest.raises(SourceOpenError, match="unsupported database 'oracle'"):
        SqlTableSource(SqlSourceConfig(url="oracle://scott@db/orcl", preset="langchain"))
    monkeypatch.setenv("BAD_URL", "not a url with secret-pw")
    with pytest.raises(SourceOpenError, match="BAD_URL is not a database URL") as caught:
        SqlTableSource(SqlSourceConfig(url_env="BAD_URL", preset="langchain"))
    assert "secret-pw" not in str(caught.value)


def test_a_missing_sqlite_file_is_not_created(tmp_path: Any) -> None:
    path = tmp_path / "absent.db"
    source = SqlTableSource(SqlSourceConfig(url=f"sqlite:///{path}", preset="langchain"))
    with pytest.raises(SourceOpenError, match="no such database file"):
        list(source.read())
    assert not path.exists()
