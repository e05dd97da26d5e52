"""Responses item files: detection, record shapes and one rule per item type of the union."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from adapters import open_source
from adapters.config import JsonSourceConfig
from adapters.model import (
    HostedToolStep,
    ImagePart,
    Message,
    ProviderItem,
    Reasoning,
    SourceConversation,
    SourceFailure,
    TextPart,
    ToolCall,
    ToolResult,
)
from adapters.responses.items import HOSTED_TYPES, ITEM_TYPES, decode_items
from migrate.plan.planner import plan_conversation
from migrate.transform.policy import Policy

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "tests" / "fixtures" / "openapi" / "openapi-subset.json"
SAMPLE = ROOT / "samples" / "responses" / "histories.jsonl"


def spec_item_types() -> set[str]:
    """Every `type` of the spec's item unions (conversation items and input items)."""
    schemas = json.loads(SPEC.read_text(encoding="utf-8"))["components"]["schemas"]

    def types_of(name: str) -> set[str]:
        schema = schemas[name]
        found: set[str] = set()
        for branch in schema.get("oneOf") or schema.get("anyOf") or []:
            if "$ref" in branch:
                ref = branch["$ref"].rsplit("/", 1)[-1]
                sub = schemas[ref]
                if "oneOf" in sub and "properties" not in sub:
                    found |= types_of(ref)
                    continue
                properties = dict(sub.get("properties") or {})
                for part in sub.get("allOf") or []:
                    target = schemas[part["$ref"].rsplit("/", 1)[-1]] if "$ref" in part else part
                    properties.update(target.get("properties") or {})
                kind = properties.get("type", {})
                for choice in [kind, *(kind.get("anyOf") or [])]:
                    found |= set(choice.get("enum") or [])
        return found

    return types_of("ConversationItem") | types_of("InputItem") | types_of("ItemResource")


def read(path: Path, **config: Any) -> list[SourceConversation | SourceFailure]:
    return list(open_source(JsonSourceConfig(path=path, **config)).read())


def write_jsonl(path: Path, *records: Any) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_every_type_of_the_spec_union_has_a_rule() -> None:
    assert spec_item_types() == set(ITEM_TYPES)


def test_the_sample_history_holds_every_item_type() -> None:
    first = json.loads(SAMPLE.read_text(encoding="utf-8").splitlines()[0])
    assert {item.get("type", "message") for item in first["items"]} == set(ITEM_TYPES)


def test_detected_in_every_record_shape(tmp_path: Path) -> None:
    call = {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"}
    answer = {"type": "function_call_output", "call_id": "c1", "output": "ok"}
    source = write_jsonl(
        tmp_path / "shapes.jsonl",
        # A history whose first item is not a message, as a bare array.
        [call, answer],
        {"id": "h1", "items": [call, answer]},
        {"id": "h2", "input": "hello", "output": [call]},
        {"id": "resp_1", "object": "response", "output": [call], "instructions": "Be brief."},
    )
    records = read(source)
    assert all(isinstance(r, SourceConversation) for r in records), records
    conversations = [r for r in records if isinstance(r, SourceConversation)]
    assert [c.id for c in conversations] == ["shapes.jsonl:1", "h1", "h2", "resp_1"]
    assert {c.source_kind for c in conversations} == {"responses"}
    h2 = conversations[2].entries
    assert isinstance(h2[0], Message) and h2[0].role == "user"
    developer = conversations[3].entries[0]
    assert isinstance(developer, Message) and developer.role == "developer"


def test_chat_completions_files_are_still_chat_completions(tmp_path: Path) -> None:
    source = write_jsonl(
        tmp_path / "chats.jsonl", {"id": "c", "messages": [{"role": "user", "content": "hi"}]}
    )
    (record,) = read(source)
    assert isinstance(record, SourceConversation) and record.source_kind == "chat_completions"


def test_instructions_can_be_dropped_with_a_note(tmp_path: Path) -> None:
    source = write_jsonl(
        tmp_path / "h.jsonl",
        {"id": "h", "instructions": "Be brief.", "items": [{"role": "user", "content": "hi"}]},
    )
    (record,) = read(source, format="responses", responses_instructions="drop")
    assert isinstance(record, SourceConversation)
    assert len(record.entries) == 1
    assert [n.code for n in record.notes] == ["instructions_dropped"]
    assert "Be brief." in record.notes[0].message


def test_an_unreadable_item_fails_its_record_with_file_and_line(tmp_path: Path) -> None:
    source = write_jsonl(
        tmp_path / "h.jsonl",
        {"id": "bad", "items": [{"type": "message", "role": "user", "content": "a"}, {"x": 1}]},
        {"id": "good", "items": [{"type": "message", "role": "user", "content": "b"}]},
    )
    bad, good = read(source)
    assert isinstance(bad, SourceFailure)
    assert bad.location == f"{source}:1" and bad.conversation_id == "bad"
    assert "item 1 has neither a type nor a role" in bad.message
    assert isinstance(good, SourceConversation)


# --- one rule per item type ----------------------------------------------------------------


def one(item: dict[str, Any]) -> tuple[list[Any], list[str]]:
    decoded = decode_items([item])
    return decoded.entries, [note.code for note in decoded.notes]


def test_messages_keep_every_part_and_annotation() -> None:
    (message,), notes = one(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": [
                {
                    "type": "output_text",
                    "text": "see [1]",
                    "annotations": [
                        {
                            "type": "url_citation",
                            "url": "https://a",
                            "title": "A",
                            "start_index": 4,
                            "end_index": 7,
                        },
                    ],
                },
                {"type": "refusal", "refusal": "no"},
            ],
        }
    )
    assert notes == []
    assert isinstance(message, Message) and message.source_id == "msg_1"
    assert message.metadata == {}  # no id, no status
    text = message.parts[0]
    assert isinstance(text, TextPart) and text.annotations[0].url == "https://a"


def test_an_image_listed_without_its_url_is_a_note_and_a_reference() -> None:
    (message,), notes = one(
        {"role": "user", "content": [{"type": "input_image", "image_url": None, "detail": "auto"}]}
    )
    assert notes == ["image_not_returned"]
    assert isinstance(message, Message) and isinstance(message.parts[0], ImagePart)
    assert message.parts[0].reference == "input_image without URL"


@pytest.mark.parametrize("kind", ["function_call", "custom_tool_call"])
def test_calls_are_lossless(kind: str) -> None:
    payload = "arguments" if kind == "function_call" else "input"
    (call,), notes = one({"id": "x", "type": kind, "call_id": "c", "name": "n", payload: "p"})
    assert notes == [] and isinstance(call, ToolCall)
    assert (call.call_id, call.name, call.arguments) == ("c", "n", "p")
    assert call.tool_type == ("function" if kind == "function_call" else "custom")


@pytest.mark.parametrize("kind", ["function_call_output", "custom_tool_call_output"])
def test_outputs_are_lossless(kind: str) -> None:
    (result,), notes = one({"id": "x", "type": kind, "call_id": "c", "output": "42"})
    assert notes == [] and isinstance(result, ToolResult)
    assert (result.call_id, result.output) == ("c", "42")


def test_reasoning_goes_to_the_reasoning_policy_with_its_item() -> None:
    item = {"id": "rs", "type": "reasoning", "summary": [], "encrypted_content": "enc"}
    (reasoning,), notes = one(item)
    assert isinstance(reasoning, Reasoning)
    assert reasoning.encrypted and reasoning.item == item and notes == []


@pytest.mark.parametrize("kind", sorted(HOSTED_TYPES))
def test_hosted_tool_items_become_text_and_carry_their_item(kind: str) -> None:
    item = {"id": f"{kind}_1", "type": kind, "status": "completed", "detail": f"value of {kind}"}
    (step,), notes = one(item)
    assert isinstance(step, HostedToolStep) and step.item == item and notes == []
    plan = plan_conversation(
        SourceConversation(source_kind="responses", id="h", location="h", entries=[step]),
        Policy(),
    )
    (sent,) = [p.item for p in plan.items]
    assert f"value of {kind}" in sent["content"][0]["text"]
    assert [f.code for f in plan.findings] == ["hosted_tool_as_text"]
    kept = plan_conversation(
        SourceConversation(source_kind="responses", id="h", location="h", entries=[step]),
        Policy(provider_items="keep"),
    )
    assert [p.item for p in kept.items] == [item] and kept.findings == []


def test_compaction_is_kept_only_by_the_same_project_policy() -> None:
    item = {"id": "cmp", "type": "compaction", "encrypted_content": "enc"}
    (entry,), _ = one(item)
    assert isinstance(entry, ProviderItem)
    conversation = SourceConversation(
        source_kind="responses", id="h", location="h", entries=[entry]
    )
    dropped = plan_conversation(conversation, Policy())
    assert dropped.items == [] and [f.code for f in dropped.findings] == ["compaction_dropped"]
    kept = plan_conversation(conversation, Policy(provider_items="keep"))
    assert [p.item for p in kept.items] == [item]


def test_item_references_resolve_within_the_history() -> None:
    decoded = decode_items(
        [
            {"id": "msg_1", "type": "message", "role": "user", "content": "hi"},
            {"type": "item_reference", "id": "msg_1"},
            {"type": "item_reference", "id": "msg_elsewhere"},
        ]
    )
    first, copy, unresolved = decoded.entries
    assert isinstance(copy, Message) and copy.parts == first.parts  # type: ignore[union-attr]
    assert copy.source_id == "msg_1"
    assert isinstance(unresolved, ProviderItem) and unresolved.source_id == "msg_elsewhere"


def test_compaction_trigger_is_a_note_and_nothing_else() -> None:
    entries, notes = one({"type": "compaction_trigger"})
    assert entries == [] and notes == ["compaction_trigger_dropped"]


def test_an_unknown_item_type_is_text_with_a_note() -> None:
    (step,), notes = one({"id": "z", "type": "brand_new_call", "query": "q"})
    assert isinstance(step, HostedToolStep) and step.item is None
    assert notes == ["unknown_item_as_text"] and step.input == "query: q"
