"""One table of Chat Completions messages, read through the JSON files and the SQL paths.

Every case must give the same entries (apart from where-in-the-source provenance) and the same
notes, or fail with the same code, whichever reader holds the messages.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from adapters import JsonSourceConfig, SqlSourceConfig, open_source
from adapters.chat_messages import Provenance, message_entries
from adapters.model import SourceConversation, SourceFailure, SourceRecord

IMAGE = {"type": "image_url", "image_url": {"url": "https://x.test/a.png", "detail": "low"}}
CALL = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": {"x": 1}}}

CASES: dict[str, list[dict[str, Any]]] = {
    "plain text": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}],
    "aliases and unknown roles": [
        {"role": "Human", "content": "a"},
        {"role": "ai", "content": "b"},
        {"role": "ipython", "content": "c"},
        {"role": "bot", "content": "d"},
    ],
    "parts of every kind": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "look"},
                IMAGE,
                {"type": "image_url", "image_url": "file-service://abc"},
                {"type": "image_file", "image_file": {"file_id": "file_1"}},
                {"type": "input_audio", "input_audio": {"data": "AAA=", "format": "wav"}},
                {"type": "file", "file": {"file_id": "file_2", "filename": "a.pdf"}},
                {"type": "input_file", "file_url": "https://x.test/b.pdf"},
                "bare string part",
                None,
            ],
        }
    ],
    "unknown parts keep their text": [
        {
            "role": "user",
            "content": [{"type": "hologram", "text": "beam me"}, {"type": "smell"}],
        }
    ],
    "a known part without its body": [
        {"role": "user", "content": [{"type": "text", "text": "ok"}, {"type": "image_url"}]}
    ],
    "only unknown parts": [{"role": "user", "content": [{"type": "hologram"}]}],
    "refusal, audio and calls": [
        {"role": "user", "content": "go"},
        {
            "role": "assistant",
            "content": "",
            "refusal": "no",
            "audio": {"id": "audio_1", "transcript": "spoken"},
            "tool_calls": [CALL, {"id": "", "type": "custom", "custom": {"name": "sql"}}],
        },
        {"role": "assistant", "content": None, "function_call": {"name": "g", "arguments": ""}},
    ],
    "empty text next to calls": [
        {"role": "assistant", "content": [{"type": "text", "text": ""}], "tool_calls": [CALL]}
    ],
    "tool outputs": [
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "call_1", "content": None},
        {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "a"}, "b"]},
        {
            "role": "tool",
            "tool_call_id": "call_1",
            "content": [{"type": "text", "text": "c"}, IMAGE],
        },
        {"role": "function", "name": "f", "content": "ok"},
    ],
    "tool output with an unknown part": [
        {"role": "tool", "tool_call_id": "c", "content": [IMAGE, {"type": "hologram"}]}
    ],
    "null and empty content": [
        {"role": "user", "content": None},
        {"role": "assistant", "content": ""},
    ],
    "extra keys and timestamps": [
        {"role": "user", "content": "x", "weight": 0, "created_at": 1700000000, "id": "m1"},
        {"role": "assistant", "content": "y", "extra_content": {"thought_signature": "s"}},
    ],
    "missing role": [{"content": "who"}],
    "content of the wrong type": [{"role": "user", "content": 5}],
    "a part of the wrong type": [{"role": "user", "content": [5]}],
    "tool_calls not an array": [{"role": "assistant", "tool_calls": {"id": "c"}}],
    "a call without a function": [{"role": "assistant", "tool_calls": [{"id": "c"}]}],
    "a call without a name": [
        {"role": "assistant", "tool_calls": [{"id": "c", "function": {"arguments": "{}"}}]}
    ],
    "tool output of the wrong type": [{"role": "tool", "tool_call_id": "c", "content": 3}],
}

PROVENANCE = {"position", "source_id"}


def _json_path(tmp_path: Path, messages: list[dict[str, Any]]) -> list[SourceRecord]:
    path = tmp_path / "case.jsonl"
    path.write_text(json.dumps({"id": "case", "messages": messages}) + "\n", "utf-8")
    return list(open_source(JsonSourceConfig(path=path, format="chat_completions")).read())


def _sqlite(tmp_path: Path, rows: list[tuple[int, str, str]]) -> Path:
    path = tmp_path / "case.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE chats (id INTEGER PRIMARY KEY, thread TEXT, body TEXT)")
        connection.executemany("INSERT INTO chats VALUES (?, ?, ?)", rows)
    connection.close()
    return path


def _sql_array_path(tmp_path: Path, messages: list[dict[str, Any]]) -> list[SourceRecord]:
    path = _sqlite(tmp_path, [(1, "case", json.dumps(messages))])
    config = SqlSourceConfig(
        url=f"sqlite:///{path}",
        table="chats",
        conversation_column="thread",
        messages_json_column="body",
    )
    return list(open_source(config).read())


def _sql_row_path(tmp_path: Path, messages: list[dict[str, Any]]) -> list[SourceRecord]:
    rows = [(index, "case", json.dumps(message)) for index, message in enumerate(messages)]
    path = _sqlite(tmp_path, rows)
    config = SqlSourceConfig(
        url=f"sqlite:///{path}",
        table="chats",
        conversation_column="thread",
        message_json_column="body",
    )
    return list(open_source(config).read())


def _outcome(records: list[SourceRecord]) -> tuple[str, Any, Any]:
    [record] = records
    if isinstance(record, SourceFailure):
        return ("failed", record.code, None)
    assert isinstance(record, SourceConversation)
    entries = [entry.model_dump(exclude=PROVENANCE) for entry in record.entries]
    notes = [(note.code, note.message.rsplit(": ", 1)[-1]) for note in record.notes]
    return ("read", entries, notes)


@pytest.mark.parametrize("name", list(CASES))
def test_json_and_sql_paths_decode_alike(tmp_path: Path, name: str) -> None:
    messages = CASES[name]
    from_json = _outcome(_json_path(_mkdir(tmp_path / "json"), messages))
    from_array = _outcome(_sql_array_path(_mkdir(tmp_path / "array"), messages))
    from_rows = _outcome(_sql_row_path(_mkdir(tmp_path / "rows"), messages))
    assert from_json == from_array
    assert from_json == from_rows


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


EXPECTED_OUTCOMES = {
    "only unknown parts": ("failed", "unknown_content"),
    "missing role": ("failed", "missing_role"),
    "content of the wrong type": ("failed", "invalid_content"),
    "a part of the wrong type": ("failed", "invalid_content"),
    "tool_calls not an array": ("failed", "invalid_tool_call"),
    "a call without a function": ("failed", "invalid_tool_call"),
    "a call without a name": ("failed", "invalid_tool_call"),
    "tool output of the wrong type": ("failed", "invalid_content"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_each_case_reads_or_fails_as_documented(tmp_path: Path, name: str) -> None:
    kind, detail, notes = _outcome(_json_path(tmp_path, CASES[name]))
    if name in EXPECTED_OUTCOMES:
        assert (kind, detail) == EXPECTED_OUTCOMES[name]
        return
    assert kind == "read"
    roles = [entry.get("role") for entry in detail if entry["kind"] == "message"]
    kinds = [entry["kind"] for entry in detail]
    codes = [code for code, _ in notes]
    match name:
        case "aliases and unknown roles":
            assert roles == ["user", "assistant", "ipython", "bot"]
        case "parts of every kind":
            [message] = detail
            assert [part["type"] for part in message["parts"]] == [
                "text",
                "image",
                "image",
                "image",
                "audio",
                "file",
                "file",
                "text",
            ]
            assert message["parts"][2]["reference"] == "file-service://abc"
            assert codes == []
        case "unknown parts keep their text":
            assert [p["text"] for p in detail[0]["parts"]] == ["beam me"]
            assert codes == ["unknown_part_type", "unknown_part_type"]
        case "a known part without its body":
            assert codes == ["unknown_part_type"]
        case "refusal, audio and calls":
            assert kinds == ["message", "message", "tool_call", "tool_call", "tool_call"]
            assert [p["type"] for p in detail[1]["parts"]] == ["refusal", "audio"]
            assert [e["call_id"] for e in detail[2:]] == ["call_1", None, None]
            assert detail[2]["arguments"] == '{"x":1}'
        case "empty text next to calls":
            assert kinds == ["tool_call"]
        case "tool outputs":
            results = [e for e in detail if e["kind"] == "tool_result"]
            assert [e["output"] for e in results] == ["", "ab", "c", "ok"]
            assert [p["type"] for p in results[2]["parts"]] == ["text", "image"]
            assert [e["parts"] for e in results if e is not results[2]] == [[], [], []]
            assert codes == []
        case "tool output with an unknown part":
            [result] = detail
            assert json.loads(result["output"]) == CASES[name][0]["content"]
            assert codes == ["tool_output_as_json"]
        case "null and empty content":
            assert [e["parts"] for e in detail] == [[], []]
        case "extra keys and timestamps":
            assert detail[0]["metadata"] == {"weight": 0}
            assert detail[0]["created_at"] == 1700000000.0
            assert detail[1]["metadata"] == {"extra_content": {"thought_signature": "s"}}
        case "plain text":
            assert roles == ["user", "assistant"]


@pytest.mark.parametrize(
    "at",
    [
        Provenance(position="message 0"),
        Provenance(position="row 7", source_id="m7", created_at=1700000000.5, metadata={"k": [1]}),
    ],
)
def test_a_plain_text_message_decodes_as_the_general_rules_decode_it(at: Provenance) -> None:
    # `name: None` takes the message off the plain-text shortcut without changing its meaning
    plain = message_entries({"role": "Human", "content": "hi"}, at, [])
    general = message_entries({"role": "Human", "content": "hi", "name": None}, at, [])
    assert plain == general
    assert [entry.model_dump_json() for entry in plain] == [
        entry.model_dump_json() for entry in general
    ]
    assert plain[0].metadata is not at.metadata
