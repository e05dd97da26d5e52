"""Reading Assistants exports: the canonical layout, saved API pages, real recordings, bad files."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from adapters.assistants.export import looks_like_assistants
from adapters.json.threads import read_export
from adapters.model import (
    FilePart,
    HostedToolStep,
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
from migrate.limits import MAX_ITEMS_PER_CALL
from migrate.plan.planner import plan_conversation
from migrate.transform.policy import Policy

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples" / "assistants"
EXPORTS = ROOT / "tests" / "cassettes" / "assistants" / "exports"
BIG = "thread_9bQ2mVtX4aLpR7cN1eHwZs3K"


def conversations(records: list[SourceRecord]) -> dict[str, SourceConversation]:
    assert all(isinstance(r, SourceConversation) for r in records), records
    return {r.id: r for r in records if isinstance(r, SourceConversation)}


def texts(conversation: SourceConversation) -> list[tuple[str, str]]:
    out = []
    for entry in conversation.entries:
        if isinstance(entry, Message):
            out += [(entry.role, p.text) for p in entry.parts if isinstance(p, TextPart)]
    return out


def test_samples_read_as_four_threads_in_file_order() -> None:
    found = conversations(list(read_export(SAMPLES)))
    assert sorted(found) == sorted(p.stem for p in SAMPLES.glob("*.json"))
    assert found["thread_Em9tY0tHr3aD5nQ7wE1rT4yU"].entries == []
    assert found["thread_Em9tY0tHr3aD5nQ7wE1rT4yU"].metadata == {"user_id": "u_77120"}


def test_long_sample_thread_keeps_every_message_and_tool_step_in_order() -> None:
    document = json.loads((SAMPLES / f"{BIG}.json").read_text(encoding="utf-8"))
    conversation = conversations(list(read_export(SAMPLES / f"{BIG}.json")))[BIG]
    messages = [e for e in conversation.entries if isinstance(e, Message)]
    assert len(messages) == len(document["messages"]) > MAX_ITEMS_PER_CALL
    assert [m.source_id for m in messages] == [m["id"] for m in document["messages"]]
    function_ids = [
        c["id"]
        for s in document["run_steps"]
        if s["type"] == "tool_calls"
        for c in s["step_details"]["tool_calls"]
        if c["type"] == "function"
    ]
    calls = [e for e in conversation.entries if isinstance(e, ToolCall)]
    results = [e for e in conversation.entries if isinstance(e, ToolResult)]
    assert [c.call_id for c in calls] == function_ids
    assert [r.call_id for r in results] == function_ids
    hosted = [e.tool for e in conversation.entries if isinstance(e, HostedToolStep)]
    assert hosted == ["code_interpreter", "file_search"]
    # each run's tool entries sit right before the message that run produced
    index = {e.source_id: i for i, e in enumerate(conversation.entries) if isinstance(e, Message)}
    for step in document["run_steps"]:
        if step["type"] != "message_creation":
            continue
        produced = step["step_details"]["message_creation"]["message_id"]
        before = conversation.entries[index[produced] - 1]
        run_tools = [
            e
            for e in conversation.entries
            if not isinstance(e, Message) and e.metadata.get("run_id") == step["run_id"]
        ]
        if run_tools:
            assert before.metadata.get("run_id") == step["run_id"]
    parts = [p for m in messages for p in m.parts]
    assert ImagePart(file_id="file-Ph0t0Jr9Mn2Bv4Cx6Zl8", detail="high") in parts
    assert any(isinstance(p, ImagePart) and p.url and p.detail == "low" for p in parts)
    assert any(isinstance(p, RefusalPart) for p in parts)
    assert [p.file_id for p in parts if isinstance(p, FilePart)] == [
        "file-Bu9dGt3Sh5Ee7Tc1Sv2Xa4",
        "file-Gu1deLs8Bn3Mk5Pq7Rt9",
    ]
    annotations = [a.kind for p in parts if isinstance(p, TextPart) for a in p.annotations]
    assert annotations == ["file_path", "file_citation", "file_citation"]


def test_long_sample_thread_plans_into_valid_batches(policy: Policy) -> None:
    conversation = conversations(list(read_export(SAMPLES / f"{BIG}.json")))[BIG]
    plan = plan_conversation(conversation, policy)
    assert sum(plan.batch_sizes) == len(plan.items)
    assert len(plan.batch_sizes) >= 2
    assert all(0 < size <= MAX_ITEMS_PER_CALL for size in plan.batch_sizes)
    seen_calls: set[str] = set()
    for batch in plan.batches():
        batch_calls = {p.item["call_id"] for p in batch if p.item["type"] == "function_call"}
        for planned in batch:
            item = planned.item
            assert "id" not in item and "status" not in item
            if item["type"] == "function_call_output":
                assert item["call_id"] in seen_calls | batch_calls
        seen_calls |= batch_calls
    # every source message landed exactly once, in order
    message_sources = [
        p.source_id for p in plan.items if p.item["type"] == "message" and p.source_id
    ]
    message_ids = [e.source_id for e in conversation.entries if isinstance(e, Message)]
    assert [s for s in message_sources if s in message_ids] == message_ids
    codes = Counter(f.code for f in plan.findings)
    assert codes["hosted_tool_as_text"] == 2
    assert codes["assistant_image_as_text"] == 1
    assert codes["refusal_as_text"] == 1
    assert plan.metadata["user_id"] == "u_48213"
    assert plan.metadata["source_id"] == BIG


def test_v1_thread_with_steps_mapping_and_newest_first_steps() -> None:
    thread = "thread_V1rEtr13v4LqW8sD2fG6hJ0k"
    conversation = conversations(list(read_export(SAMPLES / f"{thread}.json")))[thread]
    assert [e.kind for e in conversation.entries] == ["message", "hosted_tool", "message"]
    user = conversation.entries[0]
    assert isinstance(user, Message)
    assert user.parts[-1] == FilePart(file_id="file-C0ntr4ctPdf7Xy2Zw9Qa")
    answer = conversation.entries[2]
    assert isinstance(answer, Message) and isinstance(answer.parts[0], TextPart)
    citation = answer.parts[0].annotations[0]
    assert citation.quote and citation.quote.startswith("either party")
    assert citation.marker == "【9†source】"


def test_recorded_newest_first_page_is_read_oldest_first() -> None:
    # MessagesWithRoles: three messages share one second; the recorded desc page must flip.
    records = list(read_export(EXPORTS / "envelope_thread_NUrWJ6JJC35TsXsYa7jm7JgC.json"))
    conversation = conversations(records)["thread_NUrWJ6JJC35TsXsYa7jm7JgC"]
    assert texts(conversation) == [
        ("user", "Hello, assistant!"),
        ("assistant", "Hi there, user."),
        ("user", "Hello, assistant!"),
        ("assistant", "Hi there, user."),
    ]
    assert conversation.created_at is None  # a bare page carries no thread object


def test_recorded_bare_message_arrays_of_v1_and_v2(policy: Policy) -> None:
    records = list(read_export(EXPORTS))
    found = conversations([r for r in records if isinstance(r, SourceConversation)])
    for thread in (
        "thread_ivF8IrGOeHFq0PQNY6jzJecK",
        "thread_SSHu8SJsPPGTdBGS33nxwi3H",
        "thread_cQkVK3NnPhIoyf6ZIp7Ohb0r",
    ):
        assert texts(found[thread]) == [
            ("user", "Can you help me write an API library to interact with the OpenAI API please?")
        ]
        plan = plan_conversation(found[thread], policy)
        assert [p.item["content"][0]["text"] for p in plan.items] == [texts(found[thread])[0][1]]


def test_recorded_function_thread_plans_call_output_then_answer(policy: Policy) -> None:
    records = list(read_export(EXPORTS / "canonical.jsonl"))
    found = conversations(records)
    assert len(found) == 5
    plan = plan_conversation(found["thread_iPTdbXGcxD5XNzfCaYWFJylc"], policy)
    assert [p.item for p in plan.items] == [
        {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "What should I eat on Thursday?"}],
        },
        {
            "type": "function_call",
            "call_id": "call_b9LqseCoPpctoIx71RVNZ1nB",
            "name": "get_favorite_food_for_day_of_week",
            "arguments": '{"day_of_week":"Thursday"}',
        },
        {
            "type": "function_call_output",
            "call_id": "call_b9LqseCoPpctoIx71RVNZ1nB",
            "output": "tacos",
        },
        {
            "type": "message",
            "role": "assistant",
            "content": [
                {
                    "type": "output_text",
                    "text": "You should eat tacos on Thursday! 🌮",
                    "annotations": [],
                }
            ],
        },
    ]
    assert [f.code for f in plan.findings] == ["item_timestamps_in_report"]
    image = plan_conversation(found["thread_ru4jnkFhulNNG5c2ccPiprAz"], policy)
    assert image.items[0].item["content"][1] == {
        "type": "input_image",
        "image_url": "https://test.openai.com/image.png",
        "detail": "auto",
    }
    modified = found["thread_AHqXohYpLueVwYQ23H8ZIaGO"]
    assert modified.entries == []
    # the last recorded state of the thread (after `modify`) is what was exported
    assert modified.metadata == {"threadMetadata": "newThreadMetadataValue"}


def test_every_shape_of_the_same_thread_reads_the_same(tmp_path: Path) -> None:
    document = json.loads((SAMPLES / f"{BIG}.json").read_text(encoding="utf-8"))
    expected = conversations(list(read_export(SAMPLES / f"{BIG}.json")))[BIG]

    def envelope(data: list[Any]) -> dict[str, Any]:
        return {"object": "list", "data": data, "has_more": False}

    steps_by_run: dict[str, list[Any]] = {}
    for step in document["run_steps"]:
        steps_by_run.setdefault(step["run_id"], []).append(step)
    shapes = {
        "envelopes.json": {
            "thread": document["thread"],
            "messages": envelope(list(reversed(document["messages"]))),
            "runs": envelope(document["runs"]),
            "run_steps": {k: envelope(v) for k, v in steps_by_run.items()},
        },
        "mixed_array.json": [
            document["thread"],
            *document["messages"],
            *document["runs"],
            *document["run_steps"],
        ],
    }
    for name, shape in shapes.items():
        (tmp_path / name).write_text(json.dumps(shape), encoding="utf-8")
        got = conversations(list(read_export(tmp_path / name)))[BIG]
        assert without_positions(got) == without_positions(expected), name
        assert got.metadata == expected.metadata, name
    (tmp_path / "lines.jsonl").write_text(json.dumps(document) + "\n\n", encoding="utf-8")
    got = conversations(list(read_export(tmp_path / "lines.jsonl")))[BIG]
    assert got.entries == expected.entries and got.location.endswith("lines.jsonl:1")


def without_positions(conversation: SourceConversation) -> list[dict[str, Any]]:
    """Entries without `position` (the index in the source list, which differs by shape)."""
    return [e.model_dump(exclude={"position"}) for e in conversation.entries]


def test_bad_files_fail_by_name_and_the_rest_is_read(tmp_path: Path) -> None:
    good = json.loads((SAMPLES / "thread_Em9tY0tHr3aD5nQ7wE1rT4yU.json").read_text("utf-8"))
    (tmp_path / "a_broken.json").write_text('{"thread": {"id": ', encoding="utf-8")
    (tmp_path / "b_good.json").write_text(json.dumps(good), encoding="utf-8")
    (tmp_path / "c_chat.json").write_text(json.dumps({"messages": "nope"}), encoding="utf-8")
    bad_part = {
        "thread": {"id": "thread_bad", "object": "thread", "created_at": 1},
        "messages": [{"id": "msg_1", "created_at": 1, "content": [{"type": "text", "text": "x"}]}],
    }
    (tmp_path / "d_lines.jsonl").write_text(
        "not json\n" + json.dumps(bad_part) + "\n" + json.dumps(good) + "\n", encoding="utf-8"
    )
    (tmp_path / ".b_good.json.x1.tmp").write_text("partial", encoding="utf-8")
    records = list(read_export(tmp_path))
    summary = [(type(r).__name__, Path(r.location).name, getattr(r, "code", None)) for r in records]
    assert summary == [
        ("SourceFailure", "a_broken.json byte 18", "malformed_json"),
        ("SourceConversation", "b_good.json:1", None),
        ("SourceFailure", "c_chat.json:1", "invalid_thread"),
        ("SourceFailure", "d_lines.jsonl:1", "malformed_json"),
        ("SourceFailure", "d_lines.jsonl:2", "invalid_thread"),
        ("SourceConversation", "d_lines.jsonl:3", None),
    ]
    failure = records[4]
    assert isinstance(failure, SourceFailure)
    assert failure.conversation_id == "thread_bad"
    assert "message msg_1 has no role" in failure.message


def test_a_saved_page_with_more_pages_is_noted(tmp_path: Path) -> None:
    page = {
        "object": "list",
        "data": [
            {"id": "msg_1", "thread_id": "thread_1", "role": "user", "created_at": 1, "content": []}
        ],
        "has_more": True,
    }
    (tmp_path / "page.json").write_text(json.dumps(page), encoding="utf-8")
    (conversation,) = conversations(list(read_export(tmp_path / "page.json"))).values()
    assert [n.code for n in conversation.notes] == ["export_page_incomplete"]


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        ({"thread": {"id": "thread_1"}, "messages": []}, True),
        ({"object": "thread", "id": "thread_1"}, True),
        ({"object": "thread.message", "id": "msg_1"}, True),
        ({"object": "list", "data": [{"object": "thread.message"}]}, True),
        ({"messages": {"object": "list", "data": [{"object": "thread.message"}]}}, True),
        ({"messages": [{"object": "thread.message"}]}, True),
        ({"messages": [{"role": "user", "content": "hi"}]}, False),
        ({"object": "list", "data": [{"object": "conversation.item"}]}, False),
        ({"conversations": [{"from": "human", "value": "hi"}]}, False),
        ({"mapping": {}, "current_node": "x"}, False),
    ],
)
def test_detection(obj: dict[str, Any], expected: bool) -> None:
    assert looks_like_assistants(obj) is expected
