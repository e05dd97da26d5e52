"""The SQL presets (LangChain, Agents SDK, LlamaIndex) on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

from adapters import SqlSourceConfig, open_source
from adapters.model import (
    Annotation,
    HostedToolStep,
    ImagePart,
    Message,
    Reasoning,
    SourceConversation,
    SourceFailure,
    SourceRecord,
    TextPart,
    ToolCall,
    ToolResult,
)
from tests.adapters.sqlhelpers import (
    SAMPLES,
    Database,
    agents_tables,
    database,
    langchain_table,
    llamaindex_table,
    mariadb_database,
    postgres_schema,
)
from tests.spec import REAL_FIXTURES

__all__ = ["database", "mariadb_database", "postgres_schema"]

REAL_AGENTS_DB = REAL_FIXTURES / "agents-sdk-sqlite-market-agent"


def read(config: SqlSourceConfig) -> list[SourceRecord]:
    return list(open_source(config).read())


def by_id(records: list[SourceRecord]) -> dict[str, SourceConversation]:
    return {r.id: r for r in records if isinstance(r, SourceConversation)}


def failed(records: list[SourceRecord]) -> dict[str | None, SourceFailure]:
    return {r.conversation_id: r for r in records if isinstance(r, SourceFailure)}


def kinds(conversation: SourceConversation) -> list[str]:
    return [entry.kind for entry in conversation.entries]


def texts(conversation: SourceConversation) -> list[str]:
    return [
        part.text
        for entry in conversation.entries
        if isinstance(entry, Message)
        for part in entry.parts
        if isinstance(part, TextPart)
    ]


def lc(kind: str, **data: Any) -> dict[str, Any]:
    return {"type": kind, "data": {"type": kind, "additional_kwargs": {}, **data}}


# --- LangChain -------------------------------------------------------------------------------


def test_langchain_sample(database: Database) -> None:
    database.run_script(SAMPLES / "langchain.sql")
    records = read(database.config(preset="langchain"))
    assert [r.id for r in records if isinstance(r, SourceConversation)] == [
        "legacy-1",
        "user-42",
        "user-7",
    ]
    conversations = by_id(records)
    weather = conversations["user-42"]
    assert kinds(weather) == [
        "message",
        "message",
        "tool_call",
        "tool_call",
        "tool_result",
        "tool_result",
        "message",
    ]
    calls = [entry for entry in weather.entries if isinstance(entry, ToolCall)]
    assert [(c.call_id, c.name, json.loads(c.arguments)) for c in calls] == [
        ("call_p1", "get_weather", {"city": "Paris"}),
        ("call_t1", "get_weather", {"city": "Tokyo"}),
    ]
    assert {c.source_id for c in calls} == {"run-8f1c2d"}
    outputs = [entry for entry in weather.entries if isinstance(entry, ToolResult)]
    assert [(o.call_id, o.output) for o in outputs] == [
        ("call_p1", "rain, 11 C"),
        ("call_t1", "sunny, 18 C"),
    ]
    assert texts(weather)[1] == "Weather in Paris and Tokyo? ☀️"
    assert weather.location == "message_store session_id=user-42"
    photo = conversations["user-7"].entries[0]
    assert isinstance(photo, Message)
    assert photo.parts == [
        TextPart(text="この写真はどこですか?"),
        ImagePart(url="https://example.com/kyoto.jpg"),
    ]
    legacy = conversations["legacy-1"]
    assert kinds(legacy) == ["message", "tool_call", "tool_result", "message"]
    call, output = legacy.entries[1], legacy.entries[2]
    assert isinstance(call, ToolCall) and (call.call_id, call.name) == (None, "convert")
    assert isinstance(output, ToolResult) and (output.name, output.output) == (
        "convert",
        "92.4 EUR",
    )


def test_langchain_newer_forms_and_bad_rows(database: Database) -> None:
    table = langchain_table(database.metadata())
    database.insert(
        table,
        [
            {"id": 1, "session_id": "s", "message": lc("human", content="Plan my day 🗓️")},
            {
                "id": 2,
                "session_id": "s",
                "message": {
                    "type": "AIMessageChunk",
                    "data": {
                        "content": [
                            {"type": "reasoning", "reasoning": "Check the calendar."},
                            {"type": "text", "text": "Looking."},
                            {"type": "tool_use", "id": "toolu_1", "name": "cal", "input": {}},
                        ],
                        "tool_calls": [{"name": "cal", "args": {}, "id": "toolu_1"}],
                        "invalid_tool_calls": [
                            {"name": "mail", "args": "{bad", "id": "call_x", "error": "JSON"}
                        ],
                        "id": "run-9",
                    },
                },
            },
            {
                "id": 3,
                "session_id": "s",
                "message": lc("tool", content="busy", tool_call_id="toolu_1", status="error"),
            },
            {
                "id": 4,
                "session_id": "s",
                "message": lc("chat", role="developer", content="Be kind"),
            },
            {"id": 5, "session_id": "bad-json", "message": '{"type": "human", "data": '},
            {"id": 6, "session_id": "bad-type", "message": lc("robot", content="beep")},
            {"id": 7, "session_id": "bad-null", "message": lc("human", content=None)},
        ],
    )
    records = read(database.config(preset="langchain"))
    day = by_id(records)["s"]
    assert kinds(day) == [
        "message",
        "reasoning",
        "message",
        "tool_call",
        "tool_call",
        "tool_result",
        "message",
    ]
    reasoning, said = day.entries[1], day.entries[2]
    assert isinstance(reasoning, Reasoning) and reasoning.text == "Check the calendar."
    assert isinstance(said, Message) and said.role == "assistant" and texts(day)[1] == "Looking."
    first, second = day.entries[3], day.entries[4]
    assert isinstance(first, ToolCall) and first.call_id == "toolu_1"
    assert isinstance(second, ToolCall) and (second.name, second.arguments) == ("mail", "{bad")
    note, status = day.notes
    assert note.code == "invalid_tool_call" and "message_store id=2" in note.message
    assert (status.code, status.value) == ("unmapped_field", {"status": "error"})
    assert "message_store id=3" in status.message
    result = day.entries[5]
    assert isinstance(result, ToolResult) and result.metadata == {"status": "error"}
    developer = day.entries[6]
    assert isinstance(developer, Message) and developer.role == "developer"
    problems = failed(records)
    assert problems["bad-json"].code == "malformed_json"
    assert problems["bad-json"].location == "message_store id=5"
    assert problems["bad-type"].code == "unknown_role"
    assert "robot" in problems["bad-type"].message
    assert problems["bad-null"].code == "null_content"


# --- OpenAI Agents SDK -----------------------------------------------------------------------


def test_agents_sdk_sample(database: Database) -> None:
    database.run_script(SAMPLES / "agents_sdk.sql")
    records = read(database.config(preset="agents-sdk"))
    assert [r.id for r in records if isinstance(r, SourceConversation)] == [
        "market-1",
        "support-9",
    ]
    market, support = by_id(records)["market-1"], by_id(records)["support-9"]
    assert kinds(market) == [
        "message",
        "reasoning",
        "tool_call",
        "tool_result",
        "hosted_tool",
        "message",
    ]
    assert [entry.source_id for entry in market.entries] == [
        "1",
        "rs_01",
        "fc_01",
        "5",
        "ws_01",
        "msg_01",
    ]
    call, output, search, answer = market.entries[2:]
    assert isinstance(call, ToolCall) and call.call_id == "call_9Xf2"
    assert (
        isinstance(output, ToolResult) and output.output == '```json\n["Apple", "Microsoft"]\n```'
    )
    assert isinstance(search, HostedToolStep)
    assert search.tool == "web_search_call"
    assert search.input == 'action: {"type":"search","query":"Apple Microsoft market cap 2025"}'
    assert search.item is not None and search.item["id"] == "ws_01"
    assert isinstance(answer, Message) and answer.role == "assistant"
    [part] = answer.parts
    assert isinstance(part, TextPart)
    assert part.annotations == [
        Annotation(
            kind="url_citation",
            url="https://example.com/caps",
            title="Market caps",
            start_index=0,
            end_index=5,
        )
    ]
    assert market.notes == []
    assert market.created_at is not None
    assert kinds(support) == ["message", "tool_call", "tool_result", "message"]
    assert texts(support) == ["我的订单在哪里?", "您的订单已发货,周五到达。"]
    assert [entry.source_id for entry in support.entries] == ["4", "8", "9", "10"]
    assert [getattr(entry, "call_id", "-") for entry in support.entries] == ["-", None, None, "-"]
    assert [note.code for note in support.notes] == ["empty_call_id", "empty_call_id"]
    assert "agent_messages id=8" in support.notes[0].message
    assert "agent_messages id=9" in support.notes[1].message


def test_agents_sdk_bad_items_fail_their_session(database: Database) -> None:
    sessions, messages = agents_tables(database.metadata())
    database.insert(
        sessions, [{"session_id": s, "created_at": "2025-01-01 00:00:00"} for s in "abc"]
    )
    database.insert(
        messages,
        [
            {"id": 1, "session_id": "a", "message_data": {"role": "user", "content": "ok"}},
            {"id": 2, "session_id": "b", "message_data": "{not json"},
            {"id": 3, "session_id": "b", "message_data": {"role": "user", "content": "fine"}},
            {"id": 4, "session_id": "c", "message_data": {"content": "who am I?"}},
            {
                "id": 5,
                "session_id": "c",
                "message_data": {"role": "user", "content": "x"},
                "created_at": "noon",
            },
        ],
    )
    records = read(database.config(preset="agents-sdk"))
    assert list(by_id(records)) == ["a"]
    problems = failed(records)
    assert (problems["b"].code, problems["b"].location) == ("malformed_json", "agent_messages id=2")
    assert "malformed JSON in column message_data" in problems["b"].message
    assert problems["c"].code == "unexpected_json"
    assert "2 of 2 row(s) unreadable" in problems["c"].message
    assert "bad timestamp 'noon'" in problems["c"].message


def test_real_agents_sdk_database_is_fully_accounted_for(tmp_path: Path) -> None:
    for name in (
        "conversation_history_1.db",
        "conversation_history_1.db-wal",
        "conversation_history_1.db-shm",
    ):
        shutil.copyfile(REAL_AGENTS_DB / name, tmp_path / name)
    path = tmp_path / "conversation_history_1.db"
    records = read(SqlSourceConfig(url=f"sqlite:///{path}", preset="agents-sdk"))
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        rows = connection.execute(
            "SELECT id, session_id, message_data FROM agent_messages ORDER BY session_id, id"
        ).fetchall()
    connection.close()
    assert len(rows) == 83  # 59 in the main file and 24 only in the WAL
    [conversation] = records
    assert isinstance(conversation, SourceConversation)
    assert conversation.id == "financial_chat_1"
    assert [entry.position for entry in conversation.entries] == [
        f"agent_messages id={row_id}" for row_id, _, _ in rows
    ]
    items = [json.loads(data) for _, _, data in rows]
    expected = Counter(item.get("type", "message") for item in items)
    assert expected == {"message": 51, "function_call": 16, "function_call_output": 16}
    found = Counter(entry.kind for entry in conversation.entries)
    assert found == {"message": 51, "tool_call": 16, "tool_result": 16}
    for item, entry in zip(items, conversation.entries, strict=True):
        if item.get("type") == "function_call":
            assert isinstance(entry, ToolCall)
            assert (entry.name, entry.arguments, entry.call_id) == (
                item["name"],
                item["arguments"],
                item["call_id"] or None,
            )
        elif item.get("type") == "function_call_output":
            assert isinstance(entry, ToolResult) and entry.output == item["output"]
        else:
            assert isinstance(entry, Message) and entry.role == item["role"]
        assert entry.source_id is not None and "__fake_id__" not in entry.source_id
    empty = [
        row_id
        for (row_id, _, _), item in zip(rows, items, strict=True)
        if item.get("call_id") == ""
    ]
    assert len(empty) == 32
    assert [note.code for note in conversation.notes] == ["empty_call_id"] * 32
    for row_id, note in zip(empty, conversation.notes, strict=True):
        assert note.message.startswith(f"agent_messages id={row_id}:")


# --- LlamaIndex ------------------------------------------------------------------------------


def test_llamaindex_sample(database: Database) -> None:
    database.run_script(SAMPLES / "llamaindex.sql")
    records = read(database.config(preset="llamaindex"))
    assert [r.id for r in records if isinstance(r, SourceConversation)] == ["old_user", "user_1"]
    lisbon = by_id(records)["user_1"]
    assert kinds(lisbon) == ["message", "message", "message", "tool_call", "tool_result", "message"]
    assert [entry.metadata for entry in lisbon.entries[:3]] == [
        {"status": "archived"},
        {"status": "archived"},
        {},
    ]
    assert texts(lisbon)[0] == "Hi! I am planning a trip to Lisbon. 🇵🇹"
    call, output = lisbon.entries[3], lisbon.entries[4]
    assert isinstance(call, ToolCall)
    assert (call.call_id, call.name, json.loads(call.arguments)) == (
        "call_lis",
        "climate",
        {"city": "Lisbon", "month": 5},
    )
    assert isinstance(output, ToolResult)
    assert (output.call_id, output.name, output.output) == (
        "call_lis",
        "climate",
        "avg high 22 C, little rain",
    )
    assert lisbon.entries[0].created_at == 1740819600.0
    assert texts(by_id(records)["old_user"]) == ["Bonjour, ça va ?", "Très bien, merci !"]


def test_llamaindex_interleaved_keys_and_bad_rows(database: Database) -> None:
    table = llamaindex_table(database.metadata())
    base = 1_740_000_000_000_000_000

    def row(row_id: int, key: str, offset: int, role: str, data: object) -> dict[str, Any]:
        return {
            "id": row_id,
            "key": key,
            "timestamp": base + offset,
            "role": role,
            "status": "active",
            "data": data,
        }

    def text_message(role: str, text: str) -> dict[str, Any]:
        return {
            "role": role,
            "additional_kwargs": {},
            "blocks": [{"block_type": "text", "text": text}],
        }

    database.insert(
        table,
        [
            row(1, "k1", 30, "assistant", text_message("assistant", "third")),
            row(2, "k2", 10, "user", text_message("user", "other")),
            row(3, "k1", 10, "user", text_message("user", "first")),
            row(4, "k1", 20, "assistant", text_message("chatbot", "second")),
            row(5, "k3", 10, "wizard", {"role": "wizard", "additional_kwargs": {}, "blocks": []}),
            row(6, "k4", 10, "user", "{oops"),
        ],
    )
    records = read(database.config(preset="llamaindex"))
    assert texts(by_id(records)["k1"]) == ["first", "second", "third"]
    assert [e.source_id for e in by_id(records)["k1"].entries] == ["3", "4", "1"]
    assert texts(by_id(records)["k2"]) == ["other"]
    problems = failed(records)
    assert (problems["k3"].code, problems["k3"].location) == (
        "unknown_role",
        "llama_index_memory id=5",
    )
    assert problems["k4"].code == "malformed_json"
