"""One bad record never costs another; what does not reach the target is a note with its value."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from adapters import JsonSourceConfig, SqlSourceConfig, open_source
from adapters.model import Message, SourceConversation, SourceFailure, SourceRecord, TextPart
from migrate.transform.policy import Policy
from migrate.transform.transformer import transform

REAL_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "real"


def _record(index: int, text: str = "hello") -> dict[str, Any]:
    return {"id": f"c{index}", "messages": [{"role": "user", "content": f"{text} {index}"}]}


def _array(records: list[bytes]) -> bytes:
    return b"[" + b", ".join(records) + b"]"


def _dump(value: Any) -> bytes:
    return json.dumps(value).encode()


def _read(path: Path, **options: Any) -> list[SourceRecord]:
    return list(open_source(JsonSourceConfig(path=path, **options)).read())


def _ids(records: list[SourceRecord]) -> list[str]:
    return [r.id for r in records if isinstance(r, SourceConversation)]


def _failures(records: list[SourceRecord]) -> list[SourceFailure]:
    return [r for r in records if isinstance(r, SourceFailure)]


BAD_RECORDS = {
    "invalid UTF-8": (
        b'{"id": "c3", "messages": [{"role": "user", "content": "caf\xe9"}]}',
        "invalid_utf8",
    ),
    "bad escape": (
        b'{"id": "c3", "messages": [{"role": "user", "content": "a\\qb"}]}',
        "malformed_json",
    ),
    "malformed": (
        b'{"id": "c3", "messages": [{"role": "user", "content": oops}]}',
        "malformed_json",
    ),
    "wrong bracket": (
        b'{"id": "c3", "messages": [{"role": "user", "content": "x"}}}',
        "malformed_json",
    ),
    "unterminated string": (
        b'{"id": "c3", "messages": [{"role": "user", "content": "x}]}',
        "malformed_json",
    ),
}


@pytest.mark.parametrize("kind", list(BAD_RECORDS))
@pytest.mark.parametrize("where", [0, 3, 9])
def test_a_bad_array_item_fails_alone_and_the_total_is_true(
    tmp_path: Path, kind: str, where: int
) -> None:
    bad, code = BAD_RECORDS[kind]
    items = [_dump(_record(i)) for i in range(10)]
    items[where] = bad.replace(b'"c3"', f'"c{where}"'.encode())
    path = tmp_path / "conversations.json"
    path.write_bytes(_array(items))
    records = _read(path)
    assert len(records) == 10
    assert _ids(records) == [f"c{i}" for i in range(10) if i != where]
    [failure] = _failures(records)
    assert failure.code == code
    offset = int(failure.location.rsplit(" ", 1)[1])
    start = path.read_bytes().index(items[where])
    assert start <= offset <= len(path.read_bytes())
    assert str(path) in failure.message and "byte" in failure.message


def test_a_cut_array_counts_the_cut_item_and_the_next_file_is_read(tmp_path: Path) -> None:
    data = _array([_dump(_record(i)) for i in range(4)])
    (tmp_path / "a.json").write_bytes(data[: data.index(b'"c3"') + 10])
    (tmp_path / "b.json").write_bytes(_array([_dump(_record(9))]))
    records = _read(tmp_path)
    assert _ids(records) == ["c0", "c1", "c2", "c9"]
    assert [f.code for f in _failures(records)] == ["malformed_json"]


def test_empty_files_and_empty_arrays_in_a_directory_are_not_a_refusal(tmp_path: Path) -> None:
    (tmp_path / "0-empty.json").write_bytes(b"")
    (tmp_path / "1-empty.jsonl").write_bytes(b"")
    (tmp_path / "2-none.json").write_bytes(b"[]")
    bad_first = b'{"id": "c0", "x": "\xff"}'
    (tmp_path / "3-bad-first.json").write_bytes(_array([bad_first, _dump(_record(1))]))
    (tmp_path / "4-good.jsonl").write_bytes(_dump(_record(2)) + b"\n")
    records = _read(tmp_path)
    assert _ids(records) == ["c1", "c2"]
    assert [f.code for f in _failures(records)] == ["invalid_utf8"]
    assert _read(tmp_path / "2-none.json") == []


@pytest.mark.parametrize("layout", ["jsonl", "array", "bare"])
def test_lone_surrogates_fail_the_conversation_or_become_replacement_characters(
    tmp_path: Path, layout: str
) -> None:
    lone = b'{"id": "c1", "messages": [{"role": "user", "content": "a\\udc00b \\ud83d\\ude00"}]}'
    good = _dump(_record(2))
    path = tmp_path / ("x.jsonl" if layout == "jsonl" else "x.json")
    if layout == "jsonl":
        path.write_bytes(lone + b"\n" + good + b"\n")
    elif layout == "array":
        path.write_bytes(_array([lone, good]))
    else:
        path.write_bytes(b'[{"role": "user", "content": "x\\ud800"}]')
    records = _read(path)
    failures = _failures(records)
    assert [f.code for f in failures] == ["lone_surrogate"]
    assert "content" in failures[0].message
    if layout != "bare":
        assert _ids(records) == ["c2"]
    replaced = _read(path, lone_surrogates="replace")
    assert not _failures(replaced)
    first = replaced[0]
    assert isinstance(first, SourceConversation)
    assert [n.code for n in first.notes] == ["lone_surrogate_replaced"]
    message = first.entries[0]
    assert isinstance(message, Message) and isinstance(message.parts[0], TextPart)
    assert "\ufffd" in message.parts[0].text and "?" not in message.parts[0].text
    if layout != "bare":
        assert message.parts[0].text == "a\ufffdb \U0001f600"


def test_invalid_utf8_in_one_sqlite_row_fails_that_conversation_naming_its_key(
    tmp_path: Path,
) -> None:
    path = tmp_path / "chat.db"
    with sqlite3.connect(path) as connection:
        connection.execute(
            "CREATE TABLE m (id INTEGER PRIMARY KEY, conv TEXT, role TEXT, body TEXT)"
        )
        connection.execute("INSERT INTO m VALUES (1, 'a', 'user', 'hi')")
        connection.execute("INSERT INTO m VALUES (2, 'b', 'user', CAST(? AS TEXT))", (b"caf\xe9",))
        connection.execute("INSERT INTO m VALUES (3, 'c', 'user', 'ok')")
    connection.close()
    fields = {"table": "m", "conversation_column": "conv", "role_column": "role"}
    config = SqlSourceConfig(url=f"sqlite:///{path}", content_column="body", **fields)
    records = list(open_source(config).read())
    assert _ids(records) == ["a", "c"]
    [failure] = _failures(records)
    assert (failure.code, failure.location, failure.conversation_id) == (
        "invalid_text",
        "m id=2",
        "b",
    )
    assert "not valid UTF-8" in failure.message
    lenient = config.model_copy(update={"lone_surrogates": "replace"})
    assert _ids(list(open_source(lenient).read())) == ["a", "b", "c"]


def test_a_stored_completion_message_page_is_detected(tmp_path: Path) -> None:
    recording = REAL_FIXTURES / "openai-dotnet-chat-completions"
    entries = json.loads(
        (recording / "ChatStoreTests_GetChatCompletionMessagesWithBasicUsage.json").read_text()
    )["Entries"]
    [page] = [
        e["ResponseBody"]
        for e in entries
        if e["RequestUri"].endswith("/messages") and e["StatusCode"] == 200
    ]
    path = tmp_path / "messages.json"
    path.write_text(json.dumps({**page, "has_more": True}), "utf-8")
    [conversation] = _read(path)
    assert isinstance(conversation, SourceConversation)
    assert conversation.id == "chatcmpl-CGSZWF3wNutgt2DZbqzKKdIZqJUE0"
    message = conversation.entries[0]
    assert isinstance(message, Message) and message.role == "user"
    assert message.source_id == "chatcmpl-CGSZWF3wNutgt2DZbqzKKdIZqJUE0-0"
    assert [n.code for n in conversation.notes] == ["partial_message_list"]


def test_url_citations_reach_the_items_and_unknown_annotations_are_notes(tmp_path: Path) -> None:
    text = "Paris is the capital [1]."
    citation = {
        "type": "url_citation",
        "url_citation": {
            "url": "https://fr.test/",
            "title": "France",
            "start_index": 21,
            "end_index": 24,
        },
    }
    messages = [
        {"role": "user", "content": "capital?"},
        {
            "role": "assistant",
            "content": text,
            "annotations": [citation, {"type": "hologram", "x": 1}],
        },
        {
            "role": "assistant",
            "content": [
                {
                    "type": "output_text",
                    "text": "See docs.",
                    "annotations": [
                        {
                            "type": "url_citation",
                            "url": "https://d.test/",
                            "title": "Docs",
                            "start_index": 4,
                            "end_index": 8,
                        }
                    ],
                }
            ],
        },
    ]
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"id": "a", "messages": messages}) + "\n", "utf-8")
    [conversation] = _read(path)
    assert isinstance(conversation, SourceConversation)
    [note] = conversation.notes
    assert (note.code, note.value) == ("unknown_annotation", {"type": "hologram", "x": 1})
    result = transform(conversation, Policy())
    assistant = [item for item in result.items if item.item.get("role") == "assistant"]
    annotations = [part["annotations"] for item in assistant for part in item.item["content"]]
    assert annotations == [
        [
            {
                "type": "url_citation",
                "url": "https://fr.test/",
                "title": "France",
                "start_index": 21,
                "end_index": 24,
            }
        ],
        [
            {
                "type": "url_citation",
                "url": "https://d.test/",
                "title": "Docs",
                "start_index": 4,
                "end_index": 8,
            }
        ],
    ]
    assert [f.code for f in result.findings] == ["unknown_annotation"]
    assert result.findings[0].value == {"type": "hologram", "x": 1}


def test_unmapped_message_fields_are_notes_with_their_values(tmp_path: Path) -> None:
    messages = [
        {"role": "user", "content": "hi", "weight": 0},
        {
            "role": "assistant",
            "content": "yo",
            "extra_content": {"google": {"thought_signature": "sig"}},
        },
    ]
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"messages": messages}) + "\n", "utf-8")
    [conversation] = _read(path)
    assert isinstance(conversation, SourceConversation)
    assert [(n.code, n.value) for n in conversation.notes] == [
        ("unmapped_field", {"weight": 0}),
        ("unmapped_field", {"extra_content": {"google": {"thought_signature": "sig"}}}),
    ]


def test_an_image_in_a_tool_message_reaches_the_output_parts(tmp_path: Path) -> None:
    image = {"type": "image_url", "image_url": {"url": "https://x.test/chart.png"}}
    messages = [
        {"role": "user", "content": "plot it"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "plot", "arguments": "{}"},
                }
            ],
        },
        {
            "role": "tool",
            "tool_call_id": "call_1",
            "content": [{"type": "text", "text": "done"}, image],
        },
    ]
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"id": "t", "messages": messages}) + "\n", "utf-8")
    [conversation] = _read(path)
    assert isinstance(conversation, SourceConversation) and conversation.notes == []
    result = transform(conversation, Policy())
    [output] = [i.item for i in result.items if i.item["type"] == "function_call_output"]
    assert output["output"] == [
        {"type": "input_text", "text": "done"},
        {"type": "input_image", "image_url": "https://x.test/chart.png", "detail": "auto"},
    ]
    from migrate.plan.planner import plan_conversation

    plan = plan_conversation(conversation, Policy())
    assert plan.items[-1].item["output"] == output["output"]
