"""Chat Completions message arrays: samples, shapes, configuration and bad input."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from adapters.model import (
    AudioPart,
    FilePart,
    ImagePart,
    Message,
    RefusalPart,
    SourceConversation,
    SourceFailure,
    SourceRecord,
    TextPart,
    ToolCall,
    ToolResult,
)

ReadJson = Callable[..., list[SourceRecord]]


def _conversations(records: list[SourceRecord]) -> list[SourceConversation]:
    return [r for r in records if isinstance(r, SourceConversation)]


def _failures(records: list[SourceRecord]) -> list[SourceFailure]:
    return [r for r in records if isinstance(r, SourceFailure)]


def _expected_timeline(messages: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """What the source says, message by message: texts, calls and outputs, in order."""
    expected: list[tuple[Any, ...]] = []
    for index, message in enumerate(messages):
        role, content = message["role"], message["content"]
        if role == "tool":
            text = content if isinstance(content, str) else content[0]["text"]
            expected.append(("result", message["tool_call_id"], text, f"message {index}"))
            continue
        if role == "function":
            expected.append(("result", None, content, f"message {index}"))
            continue
        if isinstance(content, str):
            texts = [content]
        else:
            texts = [p["text"] for p in content or [] if p.get("type") == "text"]
        if texts or not (message.get("tool_calls") or message.get("function_call")):
            expected.append(("message", role, texts, f"message {index}"))
        for number, call in enumerate(message.get("tool_calls") or []):
            arguments = call["function"]["arguments"]
            if not isinstance(arguments, str):
                arguments = json.dumps(arguments, separators=(",", ":"))
            position = f"message {index} tool_call {number}"
            expected.append(("call", call["id"], call["function"]["name"], arguments, position))
        if "function_call" in message:
            call = message["function_call"]
            position = f"message {index} function_call"
            expected.append(("call", None, call["name"], call["arguments"], position))
    return expected


def _actual_timeline(conversation: SourceConversation) -> list[tuple[Any, ...]]:
    actual: list[tuple[Any, ...]] = []
    for entry in conversation.entries:
        match entry:
            case Message():
                texts = [p.text for p in entry.parts if isinstance(p, TextPart)]
                actual.append(("message", entry.role, texts, entry.position))
            case ToolCall():
                actual.append(("call", entry.call_id, entry.name, entry.arguments, entry.position))
            case ToolResult():
                actual.append(("result", entry.call_id, entry.output, entry.position))
    return actual


def test_sample_jsonl_keeps_every_message_and_call_in_order(
    read_json: ReadJson, json_samples: Path
) -> None:
    path = json_samples / "chat_completions.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    records = read_json(path)
    by_location = {r.location: r for r in _conversations(records)}
    readable = {
        n: json.loads(line)
        for n, line in enumerate(lines, 1)
        if _parses(line) and "messages" in json.loads(line)
    }
    assert sorted(int(loc.rsplit(":", 1)[1]) for loc in by_location) == sorted(readable)
    for lineno, record in readable.items():
        conversation = by_location[f"{path}:{lineno}"]
        assert conversation.source_kind == "chat_completions"
        assert _actual_timeline(conversation) == _expected_timeline(record["messages"])


def _parses(line: str) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True


def test_sample_jsonl_ids_titles_and_metadata(read_json: ReadJson, json_samples: Path) -> None:
    convs = {c.id: c for c in _conversations(read_json(json_samples / "chat_completions.jsonl"))}
    assert list(convs) == [
        "conv_weather_0001",
        "conv_legacy_fn_0002",
        "conv_images_0003",
        "sess_unicode_0004",
        "conv_refusal_0005",
        "conv_long_0006",
        "conv_badrole_0008",
        "thr_audio_0010",
    ]
    weather = convs["conv_weather_0001"]
    assert weather.title == "Weather in two cities"
    assert weather.created_at == 1741944413.0
    assert weather.metadata == {"user_id": "u_1842", "app": "travel-helper"}
    assert convs["conv_legacy_fn_0002"].created_at == 1689012345.0
    assert len(convs["conv_long_0006"].entries) == 27


def test_sample_jsonl_broken_lines_fail_alone(read_json: ReadJson, json_samples: Path) -> None:
    path = json_samples / "chat_completions.jsonl"
    records = read_json(path)
    failed = _failures(records)
    assert [(f.location, f.code, f.conversation_id) for f in failed] == [
        (f"{path}:7", "malformed_json", None),
        (f"{path}:9", "missing_messages", "conv_nomessages_0009"),
    ]
    assert "chat_completions.jsonl:7" in failed[0].message
    assert "column" in failed[0].message
    assert "conv_nomessages_0009" in failed[1].message
    # The line after each broken one is still read.
    locations = [r.location for r in records]
    assert locations.index(f"{path}:8") == locations.index(f"{path}:7") + 1
    bad_role = next(c for c in _conversations(records) if c.id == "conv_badrole_0008")
    assert [e.role for e in bad_role.entries if isinstance(e, Message)] == ["user", "bot"]


def test_sample_parts_images_files_audio_refusals(read_json: ReadJson, json_samples: Path) -> None:
    convs = {c.id: c for c in _conversations(read_json(json_samples / "chat_completions.jsonl"))}
    images = convs["conv_images_0003"].entries
    assert isinstance(images[0], Message)
    assert (images[0].role, images[0].name) == ("developer", "vision_policy")
    assert isinstance(images[1], Message)
    assert images[1].name == "dana"
    assert images[1].parts[1] == ImagePart(
        url="https://images.example.com/uploads/2025/04/shelf-bracket.jpg", detail="high"
    )
    assert isinstance(images[3], Message)
    data_image, file_part = images[3].parts[1], images[3].parts[2]
    assert isinstance(data_image, ImagePart)
    assert data_image.url is not None and data_image.url.startswith("data:image/png;base64,")
    assert data_image.detail is None
    assert file_part == FilePart(file_id="file-6Jv9rT2mQpLx", filename="shelf-manual.pdf")

    refusal = convs["conv_refusal_0005"].entries
    assert isinstance(refusal[1], Message) and isinstance(refusal[3], Message)
    assert refusal[1].parts == [
        RefusalPart(refusal="I can't help find someone's private home address.")
    ]
    assert refusal[3].parts == [
        RefusalPart(refusal="I don't have verified address data for Acme Corp.")
    ]
    # Null content with nothing else is kept as an empty message; the transform reports it.
    assert isinstance(refusal[4], Message) and refusal[4].parts == []

    audio = convs["thr_audio_0010"].entries
    assert isinstance(audio[0], Message) and isinstance(audio[1], Message)
    assert audio[0].parts[1] == AudioPart(
        data="UklGRiQAAABXQVZFZm10IBAAAAABAAEAQB8AAIA+AAACABAAZGF0YQAAAAA=", format="wav"
    )
    assert audio[1].parts == [
        AudioPart(
            audio_id="audio_67f1b2c3d4e5f6a7",
            transcript="Sure: the note says pick up milk and eggs on the way home.",
        )
    ]


def test_sample_unicode_survives(read_json: ReadJson, json_samples: Path) -> None:
    convs = {c.id: c for c in _conversations(read_json(json_samples / "chat_completions.jsonl"))}
    texts = [
        p.text
        for e in convs["sess_unicode_0004"].entries
        if isinstance(e, Message)
        for p in e.parts
        if isinstance(p, TextPart)
    ]
    assert "おはようございます 🌅" in texts[1]
    assert "صباح الخير" in texts[1]
    assert "בוקר טוב" in texts[1]
    assert texts[3] == '你好世界 is Chinese for "Hello, world" 👋🌍.'


def test_single_object_file(read_json: ReadJson, json_samples: Path) -> None:
    path = json_samples / "chat_completions_single.json"
    raw = json.loads(path.read_text(encoding="utf-8"))
    [conversation] = read_json(path)
    assert isinstance(conversation, SourceConversation)
    assert (conversation.id, conversation.location) == ("chat_2f7c1e9a", str(path))
    assert conversation.title == "Fix a failing cron job"
    assert conversation.metadata == {"workspace": "ops", "model": "gpt-4o-2024-08-06"}
    assert _actual_timeline(conversation) == _expected_timeline(raw["messages"])


def _write_jsonl(path: Path, records: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_derived_ids_are_stable_and_name_file_and_line(read_json: ReadJson, tmp_path: Path) -> None:
    path = _write_jsonl(
        tmp_path / "chats.jsonl",
        [
            {"messages": [{"role": "user", "content": "a"}]},
            [{"role": "user", "content": "a bare list of messages"}],
        ],
    )
    first = _conversations(read_json(path))
    second = _conversations(read_json(path))
    assert [c.id for c in first] == ["chats.jsonl:1", "chats.jsonl:2"]
    assert [c.id for c in second] == [c.id for c in first]
    assert [c.location for c in first] == [f"{path}:1", f"{path}:2"]


def test_array_file_of_conversations_and_array_of_messages(
    read_json: ReadJson, tmp_path: Path
) -> None:
    many = tmp_path / "many.json"
    many.write_text(
        json.dumps(
            [
                {"chat_id": 7, "messages": [{"role": "user", "content": "one"}]},
                {"messages": [{"role": "user", "content": "two"}]},
            ]
        ),
        encoding="utf-8",
    )
    one = tmp_path / "one.json"
    one.write_text(
        json.dumps([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]),
        encoding="utf-8",
    )
    convs = _conversations(read_json(many))
    assert [(c.id, c.location) for c in convs] == [
        ("7", f"{many}[0]"),
        ("many.json[1]", f"{many}[1]"),
    ]
    [single] = _conversations(read_json(one))
    assert (single.id, single.location, len(single.entries)) == ("one.json", str(one), 2)


def test_configured_fields(read_json: ReadJson, tmp_path: Path) -> None:
    path = _write_jsonl(
        tmp_path / "app.jsonl",
        [
            {
                "id": "row-1",
                "ticket": "T-99",
                "turns_v2": [{"role": "user", "content": "hello"}],
                "extra": {"tenant": "acme"},
                "channel": "web",
            }
        ],
    )
    [conversation] = read_json(
        path,
        format="chat_completions",
        id_field="ticket",
        messages_field="turns_v2",
        metadata_field="extra",
    )
    assert isinstance(conversation, SourceConversation)
    assert conversation.id == "T-99"
    assert conversation.metadata == {"id": "row-1", "channel": "web", "tenant": "acme"}
    assert [e.position for e in conversation.entries] == ["message 0"]


@pytest.mark.parametrize("field", ["conversation_id", "session_id", "thread_id"])
def test_common_id_fields_are_detected(read_json: ReadJson, tmp_path: Path, field: str) -> None:
    path = _write_jsonl(
        tmp_path / "c.jsonl", [{field: "abc", "messages": [{"role": "user", "content": "x"}]}]
    )
    [conversation] = read_json(path, format="chat_completions")
    assert isinstance(conversation, SourceConversation)
    assert conversation.id == "abc"
    assert field not in conversation.metadata


def test_tool_call_shapes(read_json: ReadJson, tmp_path: Path) -> None:
    messages = [
        {"role": "user", "content": "go", "id": "m1", "created_at": 1700000000},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "f", "arguments": {"x": "é"}},
                },
                {"id": "c2", "type": "custom", "custom": {"name": "sql", "input": "SELECT 1"}},
                {"type": "function", "function": {"name": "g", "arguments": None}},
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": None},
    ]
    path = _write_jsonl(tmp_path / "t.jsonl", [{"messages": messages}])
    [conversation] = read_json(path, format="chat_completions")
    assert isinstance(conversation, SourceConversation)
    first, call1, call2, call3, result = conversation.entries
    assert isinstance(first, Message)
    assert (first.source_id, first.created_at) == ("m1", 1700000000.0)
    # Empty text next to tool calls is not a message of its own.
    assert (
        isinstance(call1, ToolCall) and isinstance(call2, ToolCall) and isinstance(call3, ToolCall)
    )
    assert (call1.call_id, call1.arguments) == ("c1", '{"x":"é"}')
    assert (call2.tool_type, call2.name, call2.arguments) == ("custom", "sql", "SELECT 1")
    assert (call3.call_id, call3.arguments, call3.position) == (None, "", "message 1 tool_call 2")
    assert isinstance(result, ToolResult) and (result.call_id, result.output) == ("c1", "")


@pytest.mark.parametrize(
    ("record", "code", "words"),
    [
        ("just a string", "not_an_object", "a string"),
        ({"id": "x1", "messages": {"role": "user"}}, "invalid_messages", "an object"),
        ({"id": "x1", "messages": [{"content": "no role"}]}, "missing_role", "message 0"),
        ({"id": "x1", "messages": ["hello"]}, "invalid_message", "message 0"),
        (
            {"id": "x1", "messages": [{"role": "assistant", "tool_calls": [{"id": "c"}]}]},
            "invalid_tool_call",
            "tool_call 0",
        ),
        ({"id": "x1", "messages": [{"role": "user", "content": 5}]}, "invalid_content", "number"),
    ],
)
def test_bad_records_fail_with_location_and_id(
    read_json: ReadJson, tmp_path: Path, record: Any, code: str, words: str
) -> None:
    good = {"id": "ok", "messages": [{"role": "user", "content": "fine"}]}
    path = _write_jsonl(tmp_path / "bad.jsonl", [good, record, good])
    records = read_json(path, format="chat_completions")
    assert [type(r).__name__ for r in records] == [
        "SourceConversation",
        "SourceFailure",
        "SourceConversation",
    ]
    failure = records[1]
    assert isinstance(failure, SourceFailure)
    assert failure.code == code
    assert failure.location == f"{path}:2"
    assert f"{path}:2" in failure.message and words in failure.message
    if isinstance(record, dict):
        assert failure.conversation_id == "x1"


def test_invalid_utf8_line_fails_alone(read_json: ReadJson, tmp_path: Path) -> None:
    path = tmp_path / "bytes.jsonl"
    good = b'{"messages": [{"role": "user", "content": "ok"}]}\n'
    path.write_bytes(good + b'{"messages": [{"role": "user", "content": "\xff\xfe"}]}\n' + good)
    records = read_json(path)
    assert [type(r).__name__ for r in records] == [
        "SourceConversation",
        "SourceFailure",
        "SourceConversation",
    ]
    assert isinstance(records[1], SourceFailure)
    assert (records[1].code, records[1].location) == ("invalid_utf8", f"{path}:2")


def test_unknown_part_type_keeps_text_and_notes_it(read_json: ReadJson, tmp_path: Path) -> None:
    content = [{"type": "hologram", "text": "beam me"}, {"type": "smell"}]
    path = _write_jsonl(
        tmp_path / "p.jsonl", [{"messages": [{"role": "user", "content": content}]}]
    )
    [conversation] = read_json(path, format="chat_completions")
    assert isinstance(conversation, SourceConversation)
    message = conversation.entries[0]
    assert isinstance(message, Message) and message.parts == [TextPart(text="beam me")]
    assert [n.code for n in conversation.notes] == ["unknown_part_type", "unknown_part_type"]
    assert "hologram" in conversation.notes[0].message and "kept" in conversation.notes[0].message
    assert (
        "smell" in conversation.notes[1].message and "not migrated" in conversation.notes[1].message
    )


def test_thirty_megabyte_message_is_read(read_json: ReadJson, tmp_path: Path) -> None:
    big = "x" * (30 * 1024 * 1024)
    record = {"id": "big", "messages": [{"role": "user", "content": big}]}
    jsonl = _write_jsonl(tmp_path / "big.jsonl", [record])
    array = tmp_path / "big.json"
    array.write_text(json.dumps([record]), encoding="utf-8")
    for path in (jsonl, array):
        [conversation] = read_json(path)
        assert isinstance(conversation, SourceConversation)
        message = conversation.entries[0]
        assert isinstance(message, Message) and isinstance(message.parts[0], TextPart)
        assert len(message.parts[0].text) == len(big)


def test_directory_is_read_recursively_in_sorted_order(read_json: ReadJson, tmp_path: Path) -> None:
    one = [{"messages": [{"role": "user", "content": "x"}]}]
    (tmp_path / "b").mkdir()
    (tmp_path / ".hidden").mkdir()
    _write_jsonl(tmp_path / "b" / "2.jsonl", one)
    _write_jsonl(tmp_path / "b" / "10.jsonl", one)
    _write_jsonl(tmp_path / "a.jsonl", one)
    _write_jsonl(tmp_path / ".hidden" / "skip.jsonl", one)
    _write_jsonl(tmp_path / "c.ndjson", one)
    (tmp_path / "notes.txt").write_text("not json", encoding="utf-8")
    ids = [c.id for c in _conversations(read_json(tmp_path))]
    assert ids == ["a.jsonl:1", "b/10.jsonl:1", "b/2.jsonl:1", "c.ndjson:1"]
