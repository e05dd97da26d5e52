"""The Assistants timeline builder: order, run steps, parts, annotations, metadata."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.assistants.entries import AssistantsFormatError
from adapters.assistants.timeline import build_conversation
from adapters.model import (
    FilePart,
    HostedToolStep,
    ImagePart,
    Message,
    RefusalPart,
    TextPart,
    ToolCall,
    ToolResult,
)

THREAD = "thread_abc"


def message(
    message_id: str, role: str, created_at: int, *content: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    return {
        "id": message_id,
        "object": "thread.message",
        "thread_id": THREAD,
        "created_at": created_at,
        "role": role,
        "content": list(content) or [text(f"text of {message_id}")],
        "attachments": [],
        "metadata": {},
        **extra,
    }


def text(value: str, *annotations: dict[str, Any]) -> dict[str, Any]:
    return {"type": "text", "text": {"value": value, "annotations": list(annotations)}}


def step(step_id: str, run_id: str, created_at: int, details: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": step_id,
        "object": "thread.run.step",
        "run_id": run_id,
        "thread_id": THREAD,
        "created_at": created_at,
        "type": details["type"],
        "status": "completed",
        "step_details": details,
    }


def creates(message_id: str) -> dict[str, Any]:
    return {"type": "message_creation", "message_creation": {"message_id": message_id}}


def calls(*tool_calls: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_calls", "tool_calls": list(tool_calls)}


def function(call_id: str, name: str, output: str | None) -> dict[str, Any]:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": '{"x": 1}', "output": output},
    }


def kinds(entries: list[Any]) -> list[str]:
    return [f"{e.kind}:{e.source_id}" for e in entries]


def build(**kwargs: Any) -> Any:
    kwargs.setdefault("thread", {"id": THREAD, "object": "thread", "created_at": 1})
    kwargs.setdefault("location", "test")
    return build_conversation(**kwargs)


@pytest.mark.parametrize(
    ("listed", "expected"),
    [
        # oldest first, ties keep list order (ids are random: msg_z before msg_a)
        ([("msg_z", 10), ("msg_a", 10), ("msg_m", 11)], ["msg_z", "msg_a", "msg_m"]),
        # newest first (the API default) is reversed, ties included
        ([("msg_m", 11), ("msg_a", 10), ("msg_z", 10)], ["msg_z", "msg_a", "msg_m"]),
        # any other order is sorted by time, ties in list order
        ([("msg_b", 12), ("msg_a", 10), ("msg_c", 12)], ["msg_a", "msg_b", "msg_c"]),
    ],
)
def test_messages_are_ordered_oldest_first_keeping_ties(
    listed: list[tuple[str, int]], expected: list[str]
) -> None:
    conversation = build(messages=[message(i, "user", t) for i, t in listed])
    assert [e.source_id for e in conversation.entries] == expected


@pytest.mark.parametrize(
    ("thread_order", "expected"), [(None, ["u", "a"]), ("asc", ["a", "u"]), ("desc", ["u", "a"])]
)
def test_a_saved_list_whose_messages_tie_is_taken_newest_first_and_noted(
    thread_order: str | None, expected: list[str]
) -> None:
    # The first GET .../messages of a thread seeded with a user and an assistant message:
    # both in one created_at second, listed newest first.
    listed = [message("a", "assistant", 7), message("u", "user", 7)]
    options = {} if thread_order is None else {"listed": thread_order, "order_given": True}
    conversation = build(messages=listed, **{"listed": "desc", **options})
    assert [e.source_id for e in conversation.entries] == expected
    codes = [n.code for n in conversation.notes]
    assert codes == (["thread_order_assumed"] if thread_order is None else [])
    if thread_order is None:
        assert (
            conversation.notes[0].count == 2
            and "--thread-order asc" in conversation.notes[0].message
        )


def test_unknown_parts_and_annotations_fail_only_themselves() -> None:
    cited = text(
        "See [1] and [2].",
        {
            "type": "url_citation",
            "text": "[1]",
            "start_index": 4,
            "end_index": 7,
            "url_citation": {"url": "https://x.test/", "title": "X"},
        },
        {"type": "hologram", "text": "[2]"},
    )
    video = {"type": "video", "video": {"file_id": "file_v"}}
    conversation = build(
        messages=[message("msg_1", "assistant", 1, cited, video, metadata={"k": "v"}, extra=1)]
    )
    [entry] = conversation.entries
    assert isinstance(entry, Message)
    [part] = entry.parts
    assert isinstance(part, TextPart) and part.text == "See [1] and [2]."
    [annotation] = part.annotations
    assert (annotation.kind, annotation.url, annotation.title) == (
        "url_citation",
        "https://x.test/",
        "X",
    )
    assert [(n.code, n.value) for n in conversation.notes] == [
        ("unknown_annotation", {"type": "hologram", "text": "[2]"}),
        ("unknown_part_type", video),
        ("unmapped_field", {"extra": 1, "metadata": {"k": "v"}}),
    ]


def test_function_steps_go_before_the_message_the_run_produced() -> None:
    run = "run_1"
    conversation = build(
        messages=[
            message("msg_user", "user", 10),
            message("msg_answer", "assistant", 20, run_id=run, assistant_id="asst_1"),
            message("msg_next", "user", 30),
        ],
        runs=[{"id": run, "object": "thread.run", "created_at": 11, "status": "completed"}],
        run_steps=[
            # saved newest first, as the API lists them by default
            step("step_3", run, 19, creates("msg_answer")),
            step("step_2", run, 15, calls(function("call_c", "lookup", "3"))),
            step(
                "step_1",
                run,
                12,
                calls(function("call_a", "weather", "sunny"), function("call_b", "time", "noon")),
            ),
        ],
    )
    assert kinds(conversation.entries) == [
        "message:msg_user",
        "tool_call:call_a",
        "tool_call:call_b",
        "tool_result:call_a",
        "tool_result:call_b",
        "tool_call:call_c",
        "tool_result:call_c",
        "message:msg_answer",
        "message:msg_next",
    ]
    call = conversation.entries[1]
    assert isinstance(call, ToolCall)
    assert (call.call_id, call.name, call.arguments) == ("call_a", "weather", '{"x": 1}')
    assert call.metadata["run_id"] == run and call.metadata["step_id"] == "step_1"
    result = conversation.entries[3]
    assert isinstance(result, ToolResult) and result.output == "sunny"


def test_unanswered_calls_of_a_run_without_message_are_placed_by_time() -> None:
    conversation = build(
        messages=[message("msg_1", "user", 10), message("msg_2", "user", 50)],
        run_steps=[step("step_1", "run_x", 20, calls(function("call_x", "convert", None)))],
    )
    assert kinds(conversation.entries) == ["message:msg_1", "tool_call:call_x", "message:msg_2"]


def test_steps_after_the_runs_last_message_follow_it() -> None:
    conversation = build(
        messages=[
            message("msg_1", "user", 10),
            message("msg_2", "assistant", 20, run_id="run_1"),
            message("msg_3", "user", 20),
        ],
        run_steps=[
            step("step_1", "run_1", 15, creates("msg_2")),
            step("step_2", "run_1", 16, calls(function("call_late", "notify", None))),
        ],
    )
    # a step after the run's message_creation step never lands before that message, whatever
    # its clock says; it still lands before the next user message
    assert kinds(conversation.entries) == [
        "message:msg_1",
        "message:msg_2",
        "tool_call:call_late",
        "message:msg_3",
    ]


def test_hosted_tool_steps_keep_code_logs_images_and_search_results() -> None:
    conversation = build(
        messages=[message("msg_1", "user", 10), message("msg_2", "assistant", 30, run_id="r")],
        run_steps=[
            step(
                "step_1",
                "r",
                12,
                calls(
                    {
                        "id": "call_ci",
                        "type": "code_interpreter",
                        "code_interpreter": {
                            "input": "print(2 + 2)",
                            "outputs": [
                                {"type": "logs", "logs": "4"},
                                {"type": "image", "image": {"file_id": "file-chart"}},
                            ],
                        },
                    },
                    {
                        "id": "call_fs",
                        "type": "file_search",
                        "file_search": {
                            "results": [
                                {
                                    "file_id": "file-guide",
                                    "file_name": "guide.pdf",
                                    "score": 0.5,
                                    "content": [{"type": "text", "text": "Open on Sundays."}],
                                }
                            ]
                        },
                    },
                    {"id": "call_rt", "type": "retrieval", "retrieval": {}},
                ),
            ),
            step("step_2", "r", 29, creates("msg_2")),
        ],
    )
    hosted = [e for e in conversation.entries if isinstance(e, HostedToolStep)]
    assert [(h.tool, h.source_id) for h in hosted] == [
        ("code_interpreter", "call_ci"),
        ("file_search", "call_fs"),
        ("retrieval", "call_rt"),
    ]
    code, search, _ = hosted
    assert (
        code.input == "print(2 + 2)" and code.outputs == ["4"] and code.file_ids == ["file-chart"]
    )
    assert search.outputs == ["guide.pdf (score 0.5)\nOpen on Sundays."]
    assert search.file_ids == ["file-guide"]
    assert kinds(conversation.entries)[-1] == "message:msg_2"


def test_parts_attachments_and_v1_file_ids() -> None:
    user = message(
        "msg_1",
        "user",
        10,
        text("look"),
        {"type": "image_file", "image_file": {"file_id": "file-img", "detail": "high"}},
        {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
        attachments=[
            {
                "file_id": "file-doc",
                "tools": [{"type": "file_search"}, {"type": "code_interpreter"}],
            }
        ],
        file_ids=["file-doc", "file-v1"],
    )
    assistant = message(
        "msg_2",
        "assistant",
        11,
        {"type": "image_file", "image_file": {"file_id": "file-chart"}},
        {"type": "refusal", "refusal": "I can't."},
        status="incomplete",
        incomplete_details={"reason": "max_tokens"},
    )
    conversation = build(messages=[user, assistant], filenames={"file-doc": "plan.pdf"})
    first, second = conversation.entries
    assert isinstance(first, Message) and isinstance(second, Message)
    assert first.parts == [
        TextPart(text="look"),
        ImagePart(file_id="file-img", detail="high"),
        ImagePart(url="https://x.test/a.png"),
        FilePart(file_id="file-doc", filename="plan.pdf"),
        FilePart(file_id="file-v1"),
    ]
    assert first.metadata["attachment_tools"] == {
        "file-doc": ["file_search", "code_interpreter"],
        "file-v1": [],
    }
    assert second.parts == [ImagePart(file_id="file-chart"), RefusalPart(refusal="I can't.")]
    assert second.metadata["status"] == "incomplete"
    assert second.metadata["incomplete_details"] == {"reason": "max_tokens"}


def test_annotations_keep_marker_span_file_and_resolved_name() -> None:
    value = "Free on Sundays【4:0†guide.pdf】. Chart: sandbox:/mnt/data/a.png"
    cite = "【4:0†guide.pdf】"
    path = "sandbox:/mnt/data/a.png"
    conversation = build(
        messages=[
            message(
                "msg_1",
                "assistant",
                10,
                text(
                    value,
                    {
                        "type": "file_citation",
                        "text": cite,
                        "start_index": value.index(cite),
                        "end_index": value.index(cite) + len(cite),
                        "file_citation": {"file_id": "file-guide", "quote": "free on Sundays"},
                    },
                    {
                        "type": "file_path",
                        "text": path,
                        "start_index": value.index(path),
                        "end_index": len(value),
                        "file_path": {"file_id": "file-png"},
                    },
                ),
            )
        ],
        filenames={"file-guide": "guide.pdf"},
    )
    entry = conversation.entries[0]
    assert isinstance(entry, Message)
    part = entry.parts[0]
    assert isinstance(part, TextPart)
    citation, file_path = part.annotations
    assert citation.kind == "file_citation" and citation.marker == cite
    assert value[citation.start_index : citation.end_index] == cite
    assert (citation.file_id, citation.filename, citation.quote) == (
        "file-guide",
        "guide.pdf",
        "free on Sundays",
    )
    assert (file_path.kind, file_path.file_id, file_path.filename) == (
        "file_path",
        "file-png",
        None,
    )


def test_thread_metadata_assistants_and_runs_become_conversation_metadata() -> None:
    conversation = build(
        thread={
            "id": THREAD,
            "object": "thread",
            "created_at": 5,
            "metadata": {"user_id": "u_1"},
            "tool_resources": {"code_interpreter": {"file_ids": ["file-a"]}},
        },
        messages=[message("msg_1", "assistant", 10, assistant_id="asst_1", run_id="run_1")],
        runs=[
            {
                "id": "run_1",
                "assistant_id": "asst_1",
                "status": "failed",
                "model": "gpt-4o",
                "created_at": 9,
                "last_error": {"code": "server_error", "message": "boom"},
            }
        ],
    )
    assert conversation.created_at == 5.0
    assert conversation.metadata["user_id"] == "u_1"
    assert conversation.metadata["assistant_id"] == "asst_1"
    assert conversation.metadata["runs"] == [
        {
            "id": "run_1",
            "assistant_id": "asst_1",
            "status": "failed",
            "model": "gpt-4o",
            "last_error": {"code": "server_error", "message": "boom"},
        }
    ]
    assert conversation.metadata["tool_resources"] == {"code_interpreter": {"file_ids": ["file-a"]}}


def test_empty_thread_has_no_entries() -> None:
    conversation = build(messages=[])
    assert conversation.id == THREAD and conversation.entries == []


def test_message_creation_for_a_missing_message_is_noted() -> None:
    conversation = build(
        messages=[message("msg_1", "user", 10)],
        run_steps=[
            step("step_1", "r", 11, calls(function("call_1", "f", "ok"))),
            step("step_2", "r", 12, creates("msg_deleted")),
        ],
    )
    assert kinds(conversation.entries) == [
        "message:msg_1",
        "tool_call:call_1",
        "tool_result:call_1",
    ]
    assert [n.code for n in conversation.notes] == ["run_step_message_missing"]
    assert "msg_deleted" in conversation.notes[0].message


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        (
            {"messages": [message("msg_1", "user", 1)], "thread": {"id": "thread_other"}},
            "objects of several threads",
        ),
        ({"messages": [{"role": "user", "content": []}], "thread": None}, "no thread id"),
        (
            {
                "messages": [],
                "run_steps": [step("step_1", "r", 1, calls({"id": "c", "type": "computer"}))],
            },
            "run step step_1 has unknown tool call type 'computer'",
        ),
        ({"messages": [message("msg_1", None, 1)]}, "message msg_1 has no role"),  # type: ignore[arg-type]
    ],
)
def test_malformed_threads_fail_naming_the_object(kwargs: dict[str, Any], error: str) -> None:
    with pytest.raises(AssistantsFormatError, match=error.replace("(", r"\(")):
        build(**kwargs)
