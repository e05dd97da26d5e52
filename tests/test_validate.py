"""The item validator accepts exactly what we send and rejects each bad shape with a reason."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.model import (
    Annotation,
    AudioPart,
    FilePart,
    HostedToolStep,
    ImagePart,
    Message,
    Reasoning,
    RefusalPart,
    SourceConversation,
    TextPart,
    ToolCall,
    ToolResult,
)
from migrate.plan.validate import batch_problems, item_problems, metadata_problems
from migrate.transform.policy import Policy
from migrate.transform.transformer import transform

USER_TEXT = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}
ASSISTANT_TEXT = {
    "type": "message",
    "role": "assistant",
    "content": [{"type": "output_text", "text": "hello", "annotations": []}],
}
CALL = {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"}
OUTPUT = {"type": "function_call_output", "call_id": "call_1", "output": "ok"}


def user(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": list(parts)}


def assistant(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"type": "message", "role": "assistant", "content": list(parts)}


def output_text(*annotations: dict[str, Any]) -> dict[str, Any]:
    return {"type": "output_text", "text": "t", "annotations": list(annotations)}


ACCEPTED: list[tuple[str, dict[str, Any]]] = [
    ("user text", USER_TEXT),
    ("system string", {"type": "message", "role": "system", "content": "Be terse."}),
    ("developer parts", {**USER_TEXT, "role": "developer"}),
    ("assistant output_text", ASSISTANT_TEXT),
    ("assistant string", {"type": "message", "role": "assistant", "content": "hello"}),
    ("assistant refusal part", assistant({"type": "refusal", "refusal": "no"})),
    ("kept hosted tool item", {"type": "web_search_call", "id": "ws_1", "status": "completed"}),
    ("kept encrypted reasoning", {"type": "reasoning", "summary": [], "encrypted_content": "x"}),
    (
        "image url",
        user({"type": "input_image", "image_url": "https://x.test/a.png", "detail": "auto"}),
    ),
    ("image file", user({"type": "input_image", "file_id": "file-1", "detail": "low"})),
    (
        "output as text and image parts",
        {
            **OUTPUT,
            "output": [
                {"type": "input_text", "text": "chart"},
                {"type": "input_image", "image_url": "https://x.test/c.png", "detail": "auto"},
            ],
        },
    ),
    ("file id", user({"type": "input_file", "file_id": "file-1"})),
    ("file id with name", user({"type": "input_file", "file_id": "file-1", "filename": "a.pdf"})),
    (
        "file data",
        user({"type": "input_file", "file_data": "data:x;base64,AA", "filename": "a.pdf"}),
    ),
    ("file url", user({"type": "input_file", "file_url": "https://x.test/a.pdf"})),
    (
        "every annotation kind",
        assistant(
            output_text(
                {"type": "file_citation", "file_id": "f", "filename": "a", "index": 0},
                {"type": "file_path", "file_id": "f", "index": 3},
                {
                    "type": "url_citation",
                    "url": "https://x",
                    "title": "X",
                    "start_index": 0,
                    "end_index": 1,
                },
                {
                    "type": "container_file_citation",
                    "container_id": "c",
                    "file_id": "f",
                    "filename": "a",
                    "start_index": 0,
                    "end_index": 1,
                },
            )
        ),
    ),
    ("function call", CALL),
    ("function call output", OUTPUT),
    ("empty output", {**OUTPUT, "output": ""}),
    (
        "custom tool call",
        {"type": "custom_tool_call", "call_id": "c", "name": "sql", "input": "SELECT 1"},
    ),
    ("custom tool output", {"type": "custom_tool_call_output", "call_id": "c", "output": "1"}),
    ("64-character call id", {**CALL, "call_id": "c" * 64}),
]


@pytest.mark.parametrize("item", [pytest.param(item, id=name) for name, item in ACCEPTED])
def test_accepts(item: dict[str, Any]) -> None:
    assert item_problems(item) == []


REJECTED: list[tuple[str, Any, str]] = [
    ("not an object", ["message"], "must be an object"),
    ("unknown item type", {"type": "thought", "id": "th_1"}, "not one we send"),
    ("hosted tool item without id", {"type": "file_search_call"}, "needs the id"),
    ("reasoning without id", {"type": "reasoning", "summary": []}, "needs the id"),
    ("missing type", {"role": "user", "content": "hi"}, "not one we send"),
    ("id on a message", {**USER_TEXT, "id": "msg_1"}, "keys the API does not define: id"),
    ("status on a message", {**ASSISTANT_TEXT, "status": "completed"}, "status"),
    ("name on a message", {**USER_TEXT, "name": "bob"}, "name"),
    ("created_at on a message", {**USER_TEXT, "created_at": 1}, "created_at"),
    ("id on a call", {**CALL, "id": "fc_1"}, "keys the API does not define: id"),
    ("status on an output", {**OUTPUT, "status": "completed"}, "status"),
    ("unknown role", {**USER_TEXT, "role": "tool"}, "role 'tool'"),
    ("empty content list", {**USER_TEXT, "content": []}, "non-empty"),
    ("empty content string", {**USER_TEXT, "content": ""}, "empty string"),
    ("content not a list", {**USER_TEXT, "content": {"type": "input_text"}}, "non-empty"),
    ("part not an object", user("hi"), "must be an object"),  # type: ignore[arg-type]
    (
        "input_text in an assistant message",
        assistant({"type": "input_text", "text": "x"}),
        "'input_text' is not allowed in a assistant message",
    ),
    (
        "output_text in a user message",
        user(output_text()),
        "'output_text' is not allowed in a user",
    ),
    ("refusal in a user message", user({"type": "refusal", "refusal": "x"}), "not allowed"),
    (
        "image in an assistant message",
        assistant({"type": "input_image", "file_id": "f", "detail": "auto"}),
        "not allowed",
    ),
    ("input_text without text", user({"type": "input_text"}), "text must be a string"),
    (
        "input_text extra key",
        user({"type": "input_text", "text": "x", "annotations": []}),
        "annotations",
    ),
    ("image without detail", user({"type": "input_image", "file_id": "f"}), "detail"),
    (
        "image with bad detail",
        user({"type": "input_image", "file_id": "f", "detail": "huge"}),
        "detail",
    ),
    ("image with neither source", user({"type": "input_image", "detail": "auto"}), "exactly one"),
    (
        "image with both sources",
        user({"type": "input_image", "file_id": "f", "image_url": "https://x", "detail": "auto"}),
        "exactly one",
    ),
    (
        "image url not a string",
        user({"type": "input_image", "image_url": 5, "detail": "auto"}),
        "non-empty string",
    ),
    ("file with no source", user({"type": "input_file", "filename": "a"}), "exactly one"),
    (
        "file with two sources",
        user({"type": "input_file", "file_id": "f", "file_url": "https://x"}),
        "exactly one",
    ),
    (
        "file data without filename",
        user({"type": "input_file", "file_data": "AA"}),
        "needs a filename",
    ),
    (
        "output_text without annotations",
        assistant({"type": "output_text", "text": "x"}),
        "annotations must be a list",
    ),
    (
        "output_text without text",
        assistant({"type": "output_text", "annotations": []}),
        "text must be a string",
    ),
    ("output_text with logprobs", assistant({**output_text(), "logprobs": []}), "logprobs"),
    ("refusal without text", assistant({"type": "refusal"}), "refusal must be a string"),
    (
        "unknown annotation type",
        assistant(output_text({"type": "quote", "text": "x"})),
        "annotation type 'quote'",
    ),
    (
        "file_citation without filename",
        assistant(output_text({"type": "file_citation", "file_id": "f", "index": 0})),
        "file_citation.filename must be a str",
    ),
    (
        "Assistants-style file_citation",
        assistant(
            output_text(
                {
                    "type": "file_citation",
                    "text": "【1】",
                    "file_citation": {"file_id": "f"},
                    "start_index": 0,
                    "end_index": 3,
                }
            )
        ),
        "keys the API does not define",
    ),
    (
        "file_path with a bool index",
        assistant(output_text({"type": "file_path", "file_id": "f", "index": True})),
        "index must be a int",
    ),
    (
        "url_citation with negative index",
        assistant(
            output_text(
                {
                    "type": "url_citation",
                    "url": "u",
                    "title": "t",
                    "start_index": -1,
                    "end_index": 1,
                }
            )
        ),
        "must not be negative",
    ),
    ("call without call_id", {k: v for k, v in CALL.items() if k != "call_id"}, "call_id must be"),
    ("call with empty call_id", {**CALL, "call_id": ""}, "call_id must be"),
    ("call with 65-character call_id", {**CALL, "call_id": "c" * 65}, "call_id must be"),
    ("call with empty name", {**CALL, "name": ""}, "name must be"),
    ("call with 129-character name", {**CALL, "name": "n" * 129}, "name must be"),
    ("call with object arguments", {**CALL, "arguments": {"a": 1}}, "arguments must be a string"),
    (
        "custom call without input",
        {"type": "custom_tool_call", "call_id": "c", "name": "n"},
        "input must be",
    ),
    ("output without call_id", {"type": "function_call_output", "output": "x"}, "call_id must be"),
    (
        "output with a part the API does not take there",
        {**OUTPUT, "output": [{"type": "output_text", "text": "x"}]},
        "must be an input_text, image or file part",
    ),
    ("output over 10 MiB", {**OUTPUT, "output": "x" * 10_485_761}, "max 10,485,760"),
]


@pytest.mark.parametrize(
    ("item", "expected"),
    [pytest.param(item, expected, id=name) for name, item, expected in REJECTED],
)
def test_rejects(item: Any, expected: str) -> None:
    problems = item_problems(item)
    assert problems, "expected a problem"
    assert any(expected in problem for problem in problems), problems


def test_accepts_everything_the_transform_emits() -> None:
    citation = Annotation(kind="file_citation", file_id="f", filename="a.pdf", index=0)
    entries = [
        Message(role="system", parts=[TextPart(text="s")]),
        Message(
            role="user",
            parts=[
                TextPart(text="q"),
                ImagePart(url="https://x.test/a.png"),
                ImagePart(file_id="file-1", detail="low"),
                ImagePart(reference="file-service://x"),
                FilePart(file_id="file-2"),
                FilePart(file_data="AA", filename="a.pdf"),
                FilePart(file_url="https://x.test/a.pdf"),
                AudioPart(transcript="spoken"),
            ],
        ),
        Message(
            role="assistant",
            parts=[
                TextPart(text="a", annotations=[citation]),
                RefusalPart(refusal="no"),
                ImagePart(file_id="file-3"),
            ],
        ),
        ToolCall(call_id="call_1", name="f", arguments="{}"),
        ToolCall(name="g", tool_type="custom", arguments="x"),
        ToolResult(call_id="call_1", output="1"),
        ToolResult(call_id="stray", output="2"),
        HostedToolStep(tool="code_interpreter", input="1+1", outputs=["2"]),
        Reasoning(text="r"),
    ]
    conversation = SourceConversation(source_kind="t", id="c", location="l", entries=entries)
    for policy in (
        Policy(),
        Policy(refusal="part", reasoning="text"),
        Policy(assistant_content="string", tool_call_without_output="text"),
    ):
        items = [planned.item for planned in transform(conversation, policy).items]
        assert len(items) >= 7
        assert batch_problems(items, set()) == []


def test_batch_limits_and_pairing() -> None:
    assert batch_problems([], set()) == ["a batch must hold at least one item"]
    assert batch_problems([USER_TEXT] * 20, set()) == []
    assert batch_problems([USER_TEXT] * 21, set()) == ["a batch holds 21 items (max 20)"]

    problems = batch_problems([OUTPUT], set())
    assert problems == [
        "item 0: function_call_output answers call_id 'call_1' with no earlier call"
    ]
    assert batch_problems([OUTPUT, CALL], set()) != []

    seen: set[str] = set()
    assert batch_problems([CALL], seen) == []
    assert seen == {"call_1"}
    assert batch_problems([OUTPUT], seen) == [], "a call in an earlier batch counts"
    assert batch_problems([CALL], seen) == ["item 0: call_id 'call_1' is used by an earlier call"]


def test_batch_names_the_item() -> None:
    problems = batch_problems([USER_TEXT, {**CALL, "id": "fc_1"}], set())
    assert problems == ["item 1: function_call has keys the API does not define: id"]


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({}, None),
        ({f"k{i}": "v" for i in range(16)}, None),
        ({"k" * 64: "v" * 512}, None),
        ({f"k{i}": "v" for i in range(17)}, "17 pairs"),
        ({"k" * 65: "v"}, "1..64 characters"),
        ({"": "v"}, "1..64 characters"),
        ({"k": "v" * 513}, "513 characters"),
        ({"k": 5}, "must be a string"),
        ({"k": None}, "must be a string"),
    ],
)
def test_metadata(metadata: dict[str, Any], expected: str | None) -> None:
    problems = metadata_problems(metadata)
    if expected is None:
        assert problems == []
    else:
        assert any(expected in problem for problem in problems), problems
