"""A status other than `completed`, and fields with no place in the API, are findings."""

from __future__ import annotations

from adapters.assistants.timeline import build_conversation
from adapters.model import HostedToolStep
from adapters.responses.items import decode_items


def test_a_responses_message_with_unknown_fields_or_not_completed_is_noted() -> None:
    history = decode_items(
        [
            {
                "type": "message",
                "id": "msg_1",
                "role": "assistant",
                "status": "incomplete",
                "provider": {"name": "x"},
                "content": [{"type": "output_text", "text": "Hal", "annotations": []}],
            },
            {"type": "message", "role": "user", "status": "completed", "content": "ok"},
        ]
    )
    (note,) = history.notes
    assert note.code == "unmapped_field" and note.source_id == "msg_1"
    assert note.value == {"status": "incomplete", "provider": {"name": "x"}}


def test_a_failed_hosted_call_shows_its_status() -> None:
    history = decode_items(
        [
            {"type": "web_search_call", "id": "ws_1", "status": "failed", "action": {"q": 1}},
            {"type": "web_search_call", "id": "ws_2", "status": "completed", "action": {"q": 2}},
        ]
    )
    failed, done = history.entries
    assert isinstance(failed, HostedToolStep) and isinstance(done, HostedToolStep)
    assert failed.input is not None and "status: failed" in failed.input
    assert done.input is not None and "status" not in done.input


def test_an_incomplete_assistants_message_is_noted_with_its_details() -> None:
    message = {
        "id": "msg_1",
        "object": "thread.message",
        "created_at": 1,
        "thread_id": "thread_1",
        "role": "assistant",
        "status": "incomplete",
        "incomplete_details": {"reason": "max_tokens"},
        "incomplete_at": 2,
        "content": [{"type": "text", "text": {"value": "Hal", "annotations": []}}],
    }
    conversation = build_conversation(
        thread={"id": "thread_1", "object": "thread", "created_at": 1},
        messages=[
            message,
            {**message, "id": "msg_2", "status": "completed"}
            | {"incomplete_details": None, "incomplete_at": None},
        ],
        location="t.json",
    )
    (note,) = [n for n in conversation.notes if n.code == "unmapped_field"]
    assert note.source_id == "msg_1"
    assert note.value == {
        "status": "incomplete",
        "incomplete_details": {"reason": "max_tokens"},
        "incomplete_at": 2,
    }
