"""The pure transform: each rule with the finding it produces, ordering and pairing, purity."""

from __future__ import annotations

import random
from typing import Any

import pytest

from adapters.model import (
    Annotation,
    AudioPart,
    Entry,
    FilePart,
    HostedToolStep,
    ImagePart,
    Message,
    Part,
    Reasoning,
    RefusalPart,
    SourceConversation,
    SourceNote,
    TextPart,
    ToolCall,
    ToolResult,
)
from migrate.errors import ConversationError
from migrate.transform.policy import Policy
from migrate.transform.toolcalls import synthesized_call_id
from migrate.transform.transformer import TransformResult, transform

CONV_ID = "conv-src-1"


def conversation(*entries: Entry, notes: list[SourceNote] | None = None) -> SourceConversation:
    return SourceConversation(
        source_kind="chat_completions",
        id=CONV_ID,
        location="chats.jsonl:7",
        entries=list(entries),
        notes=notes or [],
    )


def run(*entries: Entry, **policy: Any) -> TransformResult:
    return transform(conversation(*entries), Policy(**policy))


def items_of(*entries: Entry, **policy: Any) -> list[dict[str, Any]]:
    return [planned.item for planned in run(*entries, **policy).items]


def codes(result: TransformResult) -> list[str]:
    return [finding.code for finding in result.findings]


def msg(role: str, *parts: Part | str, **fields: Any) -> Message:
    return Message(
        role=role, parts=[TextPart(text=p) if isinstance(p, str) else p for p in parts], **fields
    )


def user_item(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": list(parts)}


def assistant_item(*texts: str) -> dict[str, Any]:
    return {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_text", "text": t, "annotations": []} for t in texts],
    }


def text_in(text: str) -> dict[str, Any]:
    return {"type": "input_text", "text": text}


def call_item(call_id: str, name: str = "f", arguments: str = "") -> dict[str, Any]:
    return {"type": "function_call", "call_id": call_id, "name": name, "arguments": arguments}


def output_item(call_id: str, output: str) -> dict[str, Any]:
    return {"type": "function_call_output", "call_id": call_id, "output": output}


# --- one rule, one row: entries, policy, expected items, expected finding codes ---------------

RULES: list[tuple[str, list[Entry], dict[str, Any], list[dict[str, Any]], list[str]]] = [
    (
        "user text",
        [msg("user", "hello")],
        {},
        [user_item(text_in("hello"))],
        [],
    ),
    (
        "system and developer keep their role; text parts stay separate and in order",
        [msg("system", "one", "two"), msg("developer", "three")],
        {},
        [
            {"type": "message", "role": "system", "content": [text_in("one"), text_in("two")]},
            {"type": "message", "role": "developer", "content": [text_in("three")]},
        ],
        [],
    ),
    (
        "assistant text as output_text parts",
        [msg("assistant", "a", "b")],
        {},
        [assistant_item("a", "b")],
        [],
    ),
    (
        "assistant text as a string by policy",
        [msg("assistant", "a", "b")],
        {"assistant_content": "string"},
        [{"type": "message", "role": "assistant", "content": "a\n\nb"}],
        [],
    ),
    (
        "refusal as assistant text",
        [msg("assistant", RefusalPart(refusal="I can't."))],
        {},
        [assistant_item("I can't.")],
        ["refusal_as_text"],
    ),
    (
        "refusal as a refusal part by policy",
        [msg("assistant", RefusalPart(refusal="I can't."))],
        {"refusal": "part"},
        [
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "refusal", "refusal": "I can't."}],
            }
        ],
        [],
    ),
    (
        "refusal part becomes text when assistant content is a string",
        [msg("assistant", "Sorry.", RefusalPart(refusal="I can't."))],
        {"refusal": "part", "assistant_content": "string"},
        [{"type": "message", "role": "assistant", "content": "Sorry.\n\nI can't."}],
        ["refusal_as_text"],
    ),
    (
        "refusal dropped by policy, the rest of the message kept",
        [msg("assistant", "Sorry.", RefusalPart(refusal="I can't."))],
        {"refusal": "drop"},
        [assistant_item("Sorry.")],
        ["refusal_dropped"],
    ),
    (
        "image by URL gets the default detail",
        [msg("user", ImagePart(url="https://x.test/a.png"))],
        {},
        [user_item({"type": "input_image", "image_url": "https://x.test/a.png", "detail": "auto"})],
        [],
    ),
    (
        "image by data URL keeps its own detail",
        [msg("user", ImagePart(url="data:image/png;base64,AAAA", detail="low"))],
        {},
        [
            user_item(
                {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"}
            )
        ],
        [],
    ),
    (
        "image by file id with the policy's detail",
        [msg("user", ImagePart(file_id="file-1"))],
        {"image_detail": "high"},
        [user_item({"type": "input_image", "file_id": "file-1", "detail": "high"})],
        [],
    ),
    (
        "image detail the API lacks is replaced",
        [msg("user", ImagePart(file_id="file-1", detail="original"))],
        {},
        [user_item({"type": "input_image", "file_id": "file-1", "detail": "auto"})],
        ["image_detail_replaced"],
    ),
    (
        "unresolved image as a text placeholder",
        [msg("user", "look", ImagePart(reference="file-service://abc"))],
        {},
        [user_item(text_in("look"), text_in("[image: file-service://abc]"))],
        ["unresolved_image_as_text"],
    ),
    (
        "image 'URL' that is a local path is unresolved",
        [msg("user", ImagePart(url="/tmp/a.png"))],
        {},
        [user_item(text_in("[image: /tmp/a.png]"))],
        ["unresolved_image_as_text"],
    ),
    (
        "unresolved image dropped by policy",
        [msg("user", "look", ImagePart(reference="sediment://x"))],
        {"unresolved_image": "drop"},
        [user_item(text_in("look"))],
        ["unresolved_image_dropped"],
    ),
    (
        "files by id, data and URL",
        [
            msg(
                "user",
                FilePart(file_id="file-2"),
                FilePart(file_data="data:application/pdf;base64,AA", filename="a.pdf"),
                FilePart(file_url="https://x.test/b.pdf"),
            )
        ],
        {},
        [
            user_item(
                {"type": "input_file", "file_id": "file-2"},
                {
                    "type": "input_file",
                    "file_data": "data:application/pdf;base64,AA",
                    "filename": "a.pdf",
                },
                {"type": "input_file", "file_url": "https://x.test/b.pdf"},
            )
        ],
        [],
    ),
    (
        "assistant image as a text reference",
        [msg("assistant", "chart:", ImagePart(file_id="file-9"))],
        {},
        [assistant_item("chart:", "[image: file file-9]")],
        ["assistant_image_as_text"],
    ),
    (
        "assistant file as a text reference",
        [msg("assistant", FilePart(file_id="file-8", filename="out.csv"))],
        {},
        [assistant_item("[file: out.csv file-8]")],
        ["assistant_image_as_text"],
    ),
    (
        "assistant image dropped by policy; message left empty is dropped too",
        [msg("assistant", ImagePart(file_id="file-9"))],
        {"assistant_image": "drop"},
        [],
        ["assistant_image_dropped", "empty_message"],
    ),
    (
        "audio as its transcript",
        [msg("user", AudioPart(data="AAA", format="wav", transcript="hi there"))],
        {},
        [user_item(text_in("hi there"))],
        ["audio_as_text"],
    ),
    (
        "audio without transcript as a placeholder",
        [msg("assistant", AudioPart(audio_id="audio_1"))],
        {},
        [assistant_item("[audio (unknown format, audio_1)]")],
        ["audio_as_text"],
    ),
    (
        "audio dropped by policy",
        [msg("user", "x", AudioPart(data="AAA", format="mp3"))],
        {"audio": "drop"},
        [user_item(text_in("x"))],
        ["audio_dropped"],
    ),
    (
        "hidden message dropped",
        [msg("system", "context", hidden=True), msg("user", "hi")],
        {},
        [user_item(text_in("hi"))],
        ["hidden_message_dropped"],
    ),
    (
        "hidden message kept by policy",
        [msg("system", "context", hidden=True)],
        {"hidden_messages": "keep"},
        [{"type": "message", "role": "system", "content": [text_in("context")]}],
        [],
    ),
    (
        "empty messages dropped",
        [msg("user"), msg("assistant", ""), msg("user", "x")],
        {},
        [user_item(text_in("x"))],
        ["empty_message", "empty_message"],
    ),
    (
        "author name reported",
        [msg("user", "hi", name="bob")],
        {},
        [user_item(text_in("hi"))],
        ["name_dropped"],
    ),
    (
        "unknown role as user text by policy",
        [msg("chatbot", "beep")],
        {"unknown_role": "user"},
        [user_item(text_in("beep"))],
        ["unknown_role"],
    ),
    (
        "hosted tool step as assistant text",
        [
            HostedToolStep(
                tool="code_interpreter", input="print(1)", outputs=["1"], file_ids=["file-5"]
            )
        ],
        {},
        [assistant_item("[code_interpreter]\nInput:\nprint(1)\nOutput:\n1\nFiles: file-5")],
        ["hosted_tool_as_text"],
    ),
    (
        "hosted tool step dropped by policy",
        [HostedToolStep(tool="file_search")],
        {"hosted_tool": "drop"},
        [],
        ["hosted_tool_dropped"],
    ),
    (
        "reasoning dropped by default",
        [Reasoning(text="thinking"), msg("assistant", "done")],
        {},
        [assistant_item("done")],
        ["reasoning_dropped"],
    ),
    (
        "reasoning as text by policy",
        [Reasoning(text="thinking")],
        {"reasoning": "text"},
        [assistant_item("[reasoning]\nthinking")],
        ["reasoning_as_text"],
    ),
    (
        "encrypted reasoning cannot become text",
        [Reasoning(encrypted=True)],
        {"reasoning": "text"},
        [],
        ["reasoning_dropped"],
    ),
    (
        "tool call and its output",
        [
            ToolCall(call_id="call_1", name="f", arguments='{"a":1}'),
            ToolResult(call_id="call_1", output="ok"),
        ],
        {},
        [call_item("call_1", arguments='{"a":1}'), output_item("call_1", "ok")],
        [],
    ),
    (
        "custom tool call and its output",
        [
            ToolCall(call_id="call_c", name="sql", arguments="SELECT 1", tool_type="custom"),
            ToolResult(call_id="call_c", output="1", tool_type="custom"),
        ],
        {},
        [
            {"type": "custom_tool_call", "call_id": "call_c", "name": "sql", "input": "SELECT 1"},
            {"type": "custom_tool_call_output", "call_id": "call_c", "output": "1"},
        ],
        [],
    ),
    (
        "tool role message answers the open call",
        [ToolCall(call_id="call_1", name="f"), msg("tool", "42")],
        {},
        [call_item("call_1"), output_item("call_1", "42")],
        ["tool_output_paired_by_order"],
    ),
    (
        "orphan output as assistant text",
        [msg("user", "hi"), ToolResult(call_id="call_x", output="42", name="f")],
        {},
        [user_item(text_in("hi")), assistant_item("[tool output: f call_x]\n42")],
        ["orphan_tool_output"],
    ),
    (
        "orphan output dropped by policy",
        [ToolResult(call_id="call_x", output="42")],
        {"orphan_tool_output": "drop"},
        [],
        ["orphan_tool_output"],
    ),
    (
        "a second output for the same call is an orphan",
        [
            ToolCall(call_id="call_1", name="f"),
            ToolResult(call_id="call_1", output="a"),
            ToolResult(call_id="call_1", output="b"),
        ],
        {},
        [
            call_item("call_1"),
            output_item("call_1", "a"),
            assistant_item("[tool output: call_1]\nb"),
        ],
        ["orphan_tool_output"],
    ),
    (
        "unanswered call gets an empty output after its group",
        [ToolCall(call_id="call_1", name="f"), msg("assistant", "done")],
        {},
        [call_item("call_1"), output_item("call_1", ""), assistant_item("done")],
        ["tool_call_without_output"],
    ),
    (
        "unanswered call as text by policy",
        [ToolCall(call_id="call_1", name="f", arguments='{"q":1}'), msg("assistant", "done")],
        {"tool_call_without_output": "text"},
        [
            assistant_item('[tool call: f]\n{"q":1}\n(no output was recorded)'),
            assistant_item("done"),
        ],
        ["tool_call_without_output"],
    ),
    (
        "unanswered call dropped by policy",
        [ToolCall(call_id="call_1", name="f"), msg("assistant", "done")],
        {"tool_call_without_output": "drop"},
        [assistant_item("done")],
        ["tool_call_without_output"],
    ),
    (
        "parallel calls: outputs keep their source order",
        [
            ToolCall(call_id="call_a", name="f"),
            ToolCall(call_id="call_b", name="g"),
            ToolResult(call_id="call_b", output="B"),
            ToolResult(call_id="call_a", output="A"),
        ],
        {},
        [
            call_item("call_a"),
            call_item("call_b", name="g"),
            output_item("call_b", "B"),
            output_item("call_a", "A"),
        ],
        [],
    ),
    (
        "parallel calls: the missing output is added after the recorded ones",
        [
            ToolCall(call_id="call_a", name="f"),
            ToolCall(call_id="call_b", name="g"),
            ToolResult(call_id="call_b", output="B"),
        ],
        {},
        [
            call_item("call_a"),
            call_item("call_b", name="g"),
            output_item("call_b", "B"),
            output_item("call_a", ""),
        ],
        ["tool_call_without_output"],
    ),
    (
        "a late output lands where it is, after its call",
        [
            ToolCall(call_id="call_a", name="f"),
            msg("assistant", "waiting"),
            ToolResult(call_id="call_a", output="A"),
        ],
        {},
        [call_item("call_a"), assistant_item("waiting"), output_item("call_a", "A")],
        [],
    ),
    (
        "sequential calls stay in source order",
        [
            ToolCall(call_id="call_a", name="f"),
            ToolResult(call_id="call_a", output="A"),
            ToolCall(call_id="call_b", name="f"),
            ToolResult(call_id="call_b", output="B"),
        ],
        {},
        [
            call_item("call_a"),
            output_item("call_a", "A"),
            call_item("call_b"),
            output_item("call_b", "B"),
        ],
        [],
    ),
]


@pytest.mark.parametrize(
    ("entries", "policy", "expected_items", "expected_codes"),
    [pytest.param(*row[1:], id=row[0]) for row in RULES],
)
def test_rule(
    entries: list[Entry],
    policy: dict[str, Any],
    expected_items: list[dict[str, Any]],
    expected_codes: list[str],
) -> None:
    result = run(*entries, **policy)
    assert [p.item for p in result.items] == expected_items
    assert sorted(codes(result)) == sorted(expected_codes)
    assert all(f.conversation_id == CONV_ID for f in result.findings)


# --- policy says fail, or content is invalid ---------------------------------------------------

FAILURES: list[tuple[str, list[Entry], dict[str, Any], str]] = [
    ("unknown role", [msg("chatbot", "beep")], {}, "unknown_role"),
    ("refusal", [msg("assistant", RefusalPart(refusal="no"))], {"refusal": "fail"}, "refusal"),
    (
        "text over the limit",
        [msg("user", "x" * 11)],
        {"max_text_chars": 10},
        "message_too_large",
    ),
    (
        "tool output over the limit",
        [ToolCall(call_id="c", name="f"), ToolResult(call_id="c", output="y" * 11)],
        {"max_text_chars": 10},
        "message_too_large",
    ),
    (
        "orphan output",
        [ToolResult(call_id="c", output="1")],
        {"orphan_tool_output": "fail"},
        "orphan_tool_output",
    ),
    (
        "unanswered call",
        [ToolCall(call_id="c", name="f")],
        {"tool_call_without_output": "fail"},
        "tool_call_without_output",
    ),
    ("hosted tool", [HostedToolStep(tool="file_search")], {"hosted_tool": "fail"}, "hosted_tool"),
    ("reasoning", [Reasoning(text="t")], {"reasoning": "fail"}, "reasoning"),
    (
        "assistant image",
        [msg("assistant", ImagePart(file_id="f"))],
        {"assistant_image": "fail"},
        "assistant_image",
    ),
    ("audio", [msg("user", AudioPart(transcript="t"))], {"audio": "fail"}, "audio"),
    (
        "unresolved image",
        [msg("user", ImagePart(reference="x"))],
        {"unresolved_image": "fail"},
        "unresolved_image",
    ),
    ("image with nothing to send", [msg("user", ImagePart())], {}, "invalid_content"),
    ("file with nothing to send", [msg("user", FilePart(filename="a"))], {}, "invalid_content"),
    ("file data without filename", [msg("user", FilePart(file_data="AA"))], {}, "invalid_content"),
]


@pytest.mark.parametrize(
    ("entries", "policy", "code"), [pytest.param(*row[1:], id=row[0]) for row in FAILURES]
)
def test_failure(entries: list[Entry], policy: dict[str, Any], code: str) -> None:
    padded = [msg("user", "first"), *entries]
    padded[-1] = padded[-1].model_copy(update={"source_id": "src-42"})
    with pytest.raises(ConversationError) as info:
        run(*padded, **policy)
    error = info.value
    assert error.code == code
    assert error.conversation_id == CONV_ID
    assert error.location == "chats.jsonl:7"
    assert CONV_ID in error.message and "chats.jsonl:7" in error.message
    assert error.source_id == "src-42"
    assert f"entry {len(padded) - 1} (src-42)" in error.message


# --- annotations and citation markers ----------------------------------------------------------


def annotated(text: str, *annotations: Annotation) -> Message:
    return Message(role="assistant", parts=[TextPart(text=text, annotations=list(annotations))])


def test_annotations_kept_where_every_field_is_known() -> None:
    result = run(
        annotated(
            "See the doc.",
            Annotation(kind="file_citation", file_id="file-1", filename="a.pdf", index=3),
            Annotation(kind="file_path", file_id="file-2", start_index=4),
            Annotation(
                kind="url_citation", url="https://x.test", title="X", start_index=0, end_index=3
            ),
            Annotation(
                kind="container_file_citation",
                container_id="cntr_1",
                file_id="cfile_1",
                filename="out.csv",
                start_index=1,
                end_index=2,
            ),
        )
    )
    assert codes(result) == []
    assert result.items[0].item["content"][0]["annotations"] == [
        {"type": "file_citation", "file_id": "file-1", "filename": "a.pdf", "index": 3},
        {"type": "file_path", "file_id": "file-2", "index": 4},
        {
            "type": "url_citation",
            "url": "https://x.test",
            "title": "X",
            "start_index": 0,
            "end_index": 3,
        },
        {
            "type": "container_file_citation",
            "container_id": "cntr_1",
            "file_id": "cfile_1",
            "filename": "out.csv",
            "start_index": 1,
            "end_index": 2,
        },
    ]


@pytest.mark.parametrize(
    ("annotation", "missing"),
    [
        (Annotation(kind="file_citation", file_id="file-1", start_index=3), "filename"),
        (Annotation(kind="file_citation", file_id="file-1", filename="a.pdf"), "index"),
        (Annotation(kind="file_path", start_index=1), "file_id"),
        (
            Annotation(kind="url_citation", url="https://x.test", start_index=0, end_index=1),
            "title",
        ),
        (Annotation(kind="container_file_citation", file_id="f", filename="n"), "container_id"),
    ],
)
def test_annotation_dropped_when_a_required_field_is_unknown(
    annotation: Annotation, missing: str
) -> None:
    result = run(annotated("text 【1†source】", annotation))
    assert result.items[0].item["content"][0] == {
        "type": "output_text",
        "text": "text 【1†source】",
        "annotations": [],
    }
    assert codes(result) == ["annotation_dropped"]
    assert missing in result.findings[0].message
    assert annotation.kind in result.findings[0].message


def test_annotations_on_user_text_or_string_content_are_reported() -> None:
    citation = Annotation(kind="file_citation", file_id="f", filename="n", index=0)
    user = Message(role="user", parts=[TextPart(text="q", annotations=[citation])])
    assert codes(run(user)) == ["annotation_dropped"]
    assert codes(run(annotated("a", citation), assistant_content="string")) == [
        "annotation_dropped"
    ]


def test_citation_markers_stripped_and_indices_shifted() -> None:
    text = "Rates rose【4:0†source】 and fell【4:1†source】."
    first = text.index("【4:0")
    result = run(
        annotated(
            text,
            Annotation(
                kind="file_citation",
                marker="【4:0†source】",
                file_id="f1",
                filename="a.pdf",
                start_index=first,
                end_index=first + 11,
            ),
            Annotation(kind="file_path", marker="【4:1†source】", file_id="f2"),
        ),
        citation_markers="strip",
    )
    part = result.items[0].item["content"][0]
    assert part["text"] == "Rates rose and fell."
    assert part["annotations"] == [
        {"type": "file_citation", "file_id": "f1", "filename": "a.pdf", "index": len("Rates rose")}
    ]
    assert sorted(codes(result)) == ["annotation_dropped", "citation_markers_stripped"]
    stripped = next(f for f in result.findings if f.code == "citation_markers_stripped")
    assert stripped.count == 2


def test_citation_markers_kept_by_default() -> None:
    text = "Rates rose【4:0†source】."
    result = run(
        annotated(
            text, Annotation(kind="file_path", marker="【4:0†source】", file_id="f", index=10)
        )
    )
    assert result.items[0].item["content"][0]["text"] == text
    assert codes(result) == []


# --- call ids ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call_id", "result_id", "reason"),
    [
        (None, None, "missing"),
        ("", "", "missing"),
        ("c" * 65, "c" * 65, "longer than 64"),
    ],
)
def test_call_id_synthesized(call_id: str | None, result_id: str | None, reason: str) -> None:
    result = run(ToolCall(call_id=call_id, name="f"), ToolResult(call_id=result_id, output="1"))
    synthesized = synthesized_call_id(CONV_ID, 0)
    assert [p.item for p in result.items] == [call_item(synthesized), output_item(synthesized, "1")]
    assert "call_id_synthesized" in codes(result)
    assert reason in result.findings[0].message
    assert 1 <= len(synthesized) <= 64


def test_duplicate_call_id_gets_a_new_id_and_outputs_pair_in_order() -> None:
    result = run(
        ToolCall(call_id="call_1", name="f"),
        ToolResult(call_id="call_1", output="first"),
        ToolCall(call_id="call_1", name="g"),
        ToolResult(call_id="call_1", output="second"),
    )
    second = synthesized_call_id(CONV_ID, 2)
    assert [p.item for p in result.items] == [
        call_item("call_1"),
        output_item("call_1", "first"),
        call_item(second, name="g"),
        output_item(second, "second"),
    ]
    assert codes(result) == ["call_id_synthesized"]


def test_synthesized_ids_are_deterministic_and_distinct_per_conversation() -> None:
    assert synthesized_call_id("a", 1) == synthesized_call_id("a", 1)
    assert synthesized_call_id("a", 1) != synthesized_call_id("a", 2)
    assert synthesized_call_id("a", 1) != synthesized_call_id("b", 1)


def test_legacy_function_messages_pair_by_order() -> None:
    # ShareGPT / legacy `function_call` + `function` messages: no ids anywhere
    result = run(
        msg("user", "weather?"),
        ToolCall(name="get_weather", arguments='{"city":"Paris"}'),
        msg("observation", '{"temp":20}'),
        msg("assistant", "20 degrees"),
        ToolCall(name="get_weather", arguments='{"city":"Rome"}'),
        msg("function", '{"temp":25}', name="get_weather"),
    )
    first, second = synthesized_call_id(CONV_ID, 1), synthesized_call_id(CONV_ID, 4)
    assert [p.item for p in result.items] == [
        user_item(text_in("weather?")),
        call_item(first, "get_weather", '{"city":"Paris"}'),
        output_item(first, '{"temp":20}'),
        assistant_item("20 degrees"),
        call_item(second, "get_weather", '{"city":"Rome"}'),
        output_item(second, '{"temp":25}'),
    ]
    assert (
        sorted(codes(result)) == ["call_id_synthesized"] * 2 + ["tool_output_paired_by_order"] * 2
    )


def test_output_without_id_prefers_the_current_group() -> None:
    result = run(
        ToolCall(call_id="old", name="f"),
        msg("assistant", "meanwhile"),
        ToolCall(call_id="new", name="g"),
        ToolResult(output="answer"),
    )
    items = [p.item for p in result.items]
    assert output_item("new", "answer") in items
    assert output_item("old", "") in items


# --- provenance, notes, purity -----------------------------------------------------------------


def test_source_notes_become_findings() -> None:
    conv = conversation(
        msg("user", "x"),
        notes=[
            SourceNote(code="branch_skipped", message="2 branches skipped", source_id="n1", count=2)
        ],
    )
    finding = transform(conv, Policy()).findings[0]
    assert (finding.code, finding.message, finding.source_id, finding.count) == (
        "branch_skipped",
        "2 branches skipped",
        "n1",
        2,
    )
    assert finding.conversation_id == CONV_ID


def test_items_carry_their_source_entry() -> None:
    result = run(
        msg("user", "q", source_id="m1"),
        ToolCall(call_id="c", name="f", source_id="c-src"),
        msg("assistant", "a", source_id="m2"),
    )
    assert [(p.entry_index, p.source_id) for p in result.items] == [
        (0, "m1"),
        (1, "c-src"),
        (1, "c-src"),
        (2, "m2"),
    ]
    assert result.findings[0].source_id == "c-src"


def test_never_id_status_or_chat_completions_leftovers() -> None:
    result = run(
        msg("user", "q", source_id="msg_123", created_at=1.0, name="bob", metadata={"k": "v"}),
        msg("assistant", "a", source_id="msg_456", created_at=2.0),
        ToolCall(call_id="c", name="f", source_id="fc_1", created_at=3.0),
        ToolResult(call_id="c", output="o", name="f", source_id="c"),
    )
    assert [sorted(p.item) for p in result.items] == [
        ["content", "role", "type"],
        ["content", "role", "type"],
        ["arguments", "call_id", "name", "type"],
        ["call_id", "output", "type"],
    ]


def test_transform_is_pure() -> None:
    conv = conversation(
        msg("user", "q", ImagePart(reference="x")),
        ToolCall(name="f"),
        annotated("a【1】", Annotation(kind="file_path", marker="【1】", file_id="f", index=1)),
    )
    before = conv.model_dump()
    policy = Policy(citation_markers="strip")
    assert transform(conv, policy) == transform(conv, policy)
    assert conv.model_dump() == before


# --- ordering across many generated conversations ----------------------------------------------


def generated_conversation(seed: int) -> SourceConversation:
    rng = random.Random(seed)
    entries: list[Entry] = []
    for counter in range(1, rng.randint(5, 60) + 1):
        roll = rng.random()
        if roll < 0.5:
            role = rng.choice(["user", "assistant", "system", "developer"])
            entries.append(msg(role, *[f"t{counter}.{i}" for i in range(rng.randint(0, 3))]))
        elif roll < 0.8:
            ids = [
                rng.choice([f"call_{counter}_{i}", None, "dup", "x" * 70])
                for i in range(rng.randint(1, 3))
            ]
            for call_id in ids:
                entries.append(ToolCall(call_id=call_id, name=f"fn{counter}"))
            for call_id in rng.sample(ids, k=rng.randint(0, len(ids))):
                entries.append(ToolResult(call_id=call_id, output=f"out{counter}"))
        elif roll < 0.9:
            entries.append(ToolResult(call_id=rng.choice([None, "stray"]), output=f"late{counter}"))
        else:
            extras: list[Entry] = [HostedToolStep(tool="file_search"), Reasoning(text="r")]
            entries.append(rng.choice(extras))
    return conversation(*entries)


@pytest.mark.parametrize("seed", range(40))
def test_ordering_and_pairing_hold(seed: int) -> None:
    conv = generated_conversation(seed)
    result = transform(conv, Policy())
    items = [p.item for p in result.items]

    # every text lands, in source order
    source_texts = [
        part.text
        for entry in conv.entries
        if isinstance(entry, Message)
        for part in entry.parts
        if isinstance(part, TextPart) and part.text
    ]
    sent_texts = [
        part["text"]
        for item in items
        if item["type"] == "message" and not str(item["content"][0].get("text", "")).startswith("[")
        for part in item["content"]
    ]
    assert sent_texts == source_texts

    # every call lands once, in source order, with a unique id; each output follows its call
    calls = [item for item in items if item["type"] == "function_call"]
    assert [c["name"] for c in calls] == [e.name for e in conv.entries if isinstance(e, ToolCall)]
    assert len({c["call_id"] for c in calls}) == len(calls)
    position = {
        item["call_id"]: i for i, item in enumerate(items) if item["type"] == "function_call"
    }
    outputs = [(i, item) for i, item in enumerate(items) if item["type"] == "function_call_output"]
    assert sorted(item["call_id"] for _, item in outputs) == sorted(position)
    assert all(position[item["call_id"]] < i for i, item in outputs)

    # every entry is accounted for: sent, or dropped with a finding
    found = codes(result)
    results = [e for e in conv.entries if isinstance(e, ToolResult)]
    answered = len(outputs) - found.count("tool_call_without_output")
    assert answered + found.count("orphan_tool_output") == len(results)
    dropped = sum(
        found.count(c) for c in ("empty_message", "hosted_tool_as_text", "reasoning_dropped")
    )
    messages = sum(1 for e in conv.entries if isinstance(e, Message | HostedToolStep | Reasoning))
    text_items = sum(1 for item in items if item["type"] == "message")
    assert text_items - found.count("orphan_tool_output") - found.count("hosted_tool_as_text") == (
        messages - dropped
    )
