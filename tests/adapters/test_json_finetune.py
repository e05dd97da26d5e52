"""OpenAI fine-tuning JSONL: the sample and the real openai-dotnet training file."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from adapters.model import Message, SourceConversation, SourceRecord, TextPart, ToolCall, ToolResult

ReadJson = Callable[..., list[SourceRecord]]


def _conversations(records: list[SourceRecord]) -> list[SourceConversation]:
    assert all(isinstance(r, SourceConversation) for r in records), records
    return [r for r in records if isinstance(r, SourceConversation)]


def test_real_training_file_reads_every_line(read_json: ReadJson, real_fixtures: Path) -> None:
    path = real_fixtures / "finetune-jsonl" / "openai-dotnet_fine_tuning_sample.jsonl"
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    convs = _conversations(read_json(path))
    assert len(convs) == len(lines) == 10
    for lineno, (conversation, line) in enumerate(zip(convs, lines, strict=True), 1):
        assert conversation.source_kind == "finetune"
        assert conversation.id == f"{path.name}:{lineno}"
        assert conversation.location == f"{path}:{lineno}"
        got = [
            (e.role, [p.text for p in e.parts if isinstance(p, TextPart)], e.position)
            for e in conversation.entries
            if isinstance(e, Message)
        ]
        want = [(m["role"], [m["content"]], f"message {i}") for i, m in enumerate(line["messages"])]
        assert got == want


def test_sample_weights_tools_and_functions(read_json: ReadJson, json_samples: Path) -> None:
    convs = _conversations(read_json(json_samples / "finetune.jsonl"))
    assert [c.source_kind for c in convs] == ["finetune"] * 4
    weighted = convs[1].entries
    assert [e.metadata.get("weight") for e in weighted] == [None, None, 0, None, 1]

    tools = convs[2]
    assert tools.metadata["parallel_tool_calls"] is False
    assert tools.metadata["tools"][0]["function"]["name"] == "get_current_weather"
    call = tools.entries[1]
    assert isinstance(call, ToolCall)
    # The cookbook's placeholder id is kept as written; the transform decides if it is usable.
    assert (call.call_id, call.name) == ("call_id", "get_current_weather")
    assert json.loads(call.arguments) == {"location": "San Francisco, USA", "format": "celsius"}

    legacy = convs[3]
    assert legacy.metadata["functions"][0]["name"] == "lookup_fact"
    call, result = legacy.entries[1], legacy.entries[2]
    assert isinstance(call, ToolCall) and isinstance(result, ToolResult)
    assert (call.call_id, call.name, call.position) == (
        None,
        "lookup_fact",
        "message 1 function_call",
    )
    assert (result.call_id, result.name, result.output) == (
        None,
        "lookup_fact",
        "384,400 km on average",
    )
