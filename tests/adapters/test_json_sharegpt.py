"""ShareGPT: the sample, the real LLaMA-Factory tool-call and multimodal demos, bad turns."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from adapters.model import (
    Entry,
    ImagePart,
    Message,
    SourceConversation,
    SourceFailure,
    SourceRecord,
    TextPart,
    ToolCall,
    ToolResult,
)

ReadJson = Callable[..., list[SourceRecord]]
ROLES = {"human": "user", "gpt": "assistant", "system": "system"}


def _conversations(records: list[SourceRecord]) -> list[SourceConversation]:
    return [r for r in records if isinstance(r, SourceConversation)]


def _describe(entry: Entry) -> tuple[Any, ...]:
    match entry:
        case Message():
            texts = "".join(p.text for p in entry.parts if isinstance(p, TextPart))
            return (entry.role, texts, entry.position)
        case ToolCall():
            return (
                "function_call",
                entry.call_id,
                entry.name,
                json.loads(entry.arguments),
                entry.position,
            )
        case ToolResult():
            return ("observation", entry.call_id, entry.output, entry.position)
    raise AssertionError(entry)


def test_real_glaive_tool_calls_in_order(read_json: ReadJson, real_fixtures: Path) -> None:
    path = real_fixtures / "sharegpt-llamafactory" / "glaive_toolcall_en_demo.json"
    raw = json.loads(path.read_text(encoding="utf-8"))
    records = read_json(path)
    convs = _conversations(records)
    assert len(convs) == len(records) == len(raw) == 300
    calls = 0
    for index, (conversation, record) in enumerate(zip(convs, raw, strict=True)):
        assert (conversation.id, conversation.location) == (
            f"{path.name}[{index}]",
            f"{path}[{index}]",
        )
        assert conversation.source_kind == "sharegpt"
        assert conversation.metadata["tools"] == json.loads(record["tools"])
        want: list[tuple[Any, ...]] = []
        for number, turn in enumerate(record["conversations"]):
            position = f"message {number}"
            if turn["from"] == "function_call":
                call = json.loads(turn["value"])
                want.append(("function_call", None, call["name"], call["arguments"], position))
                calls += 1
            elif turn["from"] == "observation":
                want.append(("observation", None, turn["value"], position))
            else:
                want.append((ROLES[turn["from"]], turn["value"], position))
        assert [_describe(e) for e in conversation.entries] == want
    assert calls == 211


def test_real_multimodal_images_replace_tokens(read_json: ReadJson, real_fixtures: Path) -> None:
    path = real_fixtures / "sharegpt-llamafactory" / "mllm_demo.json"
    raw = json.loads(path.read_text(encoding="utf-8"))
    convs = _conversations(read_json(path))
    assert len(convs) == len(raw)
    for conversation, record in zip(convs, raw, strict=True):
        assert conversation.notes == []
        references = [
            p.reference
            for e in conversation.entries
            if isinstance(e, Message)
            for p in e.parts
            if isinstance(p, ImagePart)
        ]
        assert references == record["images"]
        for entry, message in zip(conversation.entries, record["messages"], strict=True):
            assert isinstance(entry, Message)
            assert entry.role == message["role"]
            text = "".join(p.text for p in entry.parts if isinstance(p, TextPart))
            assert text == message["content"].replace("<image>", "")
    first = convs[0].entries[0]
    assert isinstance(first, Message)
    assert first.parts == [
        ImagePart(reference="mllm_demo_data/1.jpg"),
        TextPart(text="Who are they?"),
    ]
    third = convs[0].entries[2]
    assert isinstance(third, Message)
    assert third.parts == [
        TextPart(text="What are they doing?"),
        ImagePart(reference="mllm_demo_data/1.jpg"),
    ]


def test_sample_roles_system_tools_and_failures(read_json: ReadJson, json_samples: Path) -> None:
    path = json_samples / "sharegpt.json"
    records = read_json(path)
    first, second, third, fourth = records
    assert isinstance(first, SourceConversation)
    assert first.id == "sg_0001"
    assert first.metadata["tools"][0]["name"] == "get_stock_price"
    assert [_describe(e) for e in first.entries[:4]] == [
        ("system", "You are a helpful assistant with access to a stock price tool.", "system"),
        ("user", "What's Apple trading at?", "message 0"),
        ("function_call", None, "get_stock_price", {"symbol": "AAPL"}, "message 1"),
        (
            "observation",
            None,
            '{"symbol": "AAPL", "price": 189.84, "currency": "USD"}',
            "message 2",
        ),
    ]
    # Arguments already encoded as a string are passed through unchanged.
    msft = first.entries[6]
    assert isinstance(msft, ToolCall) and msft.arguments == '{"symbol": "MSFT"}'
    assert isinstance(second, SourceConversation)
    assert [e.role for e in second.entries if isinstance(e, Message)] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
    ]
    assert isinstance(third, SourceConversation)
    assert third.id == "sharegpt.json[2]"
    assert [e.role for e in third.entries if isinstance(e, Message)] == [
        "user",
        "assistant",
        "narrator",
    ]
    assert isinstance(fourth, SourceFailure)
    assert (fourth.code, fourth.location, fourth.conversation_id) == (
        "missing_role",
        f"{path}[3]",
        "sg_0004",
    )
    assert "message 1" in fourth.message


def test_bad_function_call_fails_the_conversation_only(read_json: ReadJson, tmp_path: Path) -> None:
    path = tmp_path / "sg.json"
    records: list[dict[str, Any]] = [
        {"id": "bad", "conversations": [{"from": "function_call", "value": "not json"}]},
        {"id": "good", "conversations": [{"from": "human", "value": "hi"}], "tools": "{oops"},
    ]
    path.write_text(json.dumps(records), encoding="utf-8")
    bad, good = read_json(path, format="sharegpt")
    assert isinstance(bad, SourceFailure)
    assert (bad.code, bad.conversation_id, bad.location) == (
        "invalid_tool_call",
        "bad",
        f"{path}[0]",
    )
    assert isinstance(good, SourceConversation)
    assert good.metadata["tools"] == "{oops"
    assert [n.code for n in good.notes] == ["tools_unparsed"]


def test_images_without_tokens_are_attached_and_noted(read_json: ReadJson, tmp_path: Path) -> None:
    path = tmp_path / "mm.json"
    record = {
        "messages": [
            {"role": "user", "content": "<image>What is this?"},
            {"role": "assistant", "content": "A cat."},
        ],
        "images": ["a.jpg", "b.jpg"],
    }
    path.write_text(json.dumps([record]), encoding="utf-8")
    [conversation] = read_json(path)
    assert isinstance(conversation, SourceConversation)
    user = conversation.entries[0]
    assert isinstance(user, Message)
    assert [p.reference for p in user.parts if isinstance(p, ImagePart)] == ["a.jpg", "b.jpg"]
    assert [(n.code, n.count) for n in conversation.notes] == [("image_without_token", 1)]
