"""Requests the real API rejects get a 400 with an OpenAI-style body, and nothing is written."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx2
import openai
import pytest
from openai import OpenAI

from migrate.server.testing import AdminClient

TEXT = {"type": "input_text", "text": "hi"}
OK = {"type": "message", "role": "user", "content": "hi"}


def message(role: str, *parts: Any) -> dict[str, Any]:
    return {"type": "message", "role": role, "content": list(parts)}


# (case id, items, expected param, expected code, words the message must contain)
ITEM_CASES: list[tuple[str, list[Any], str, str | None, str]] = [
    (
        "21 items",
        [OK] * 21,
        "items",
        "array_above_max_length",
        "Invalid 'items': array too long. Expected an array with maximum length 20, "
        "but got an array with length 21 instead.",
    ),
    ("unknown type", [{"type": "note", "text": "x"}], "items[0].type", "invalid_value", "'note'"),
    (
        "assistant with input_text",
        [message("assistant", TEXT)],
        "items[0].content[0].type",
        "invalid_value",
        "Invalid value: 'input_text'. Supported values are: 'output_text' and 'refusal'.",
    ),
    (
        "user with output_text",
        [message("user", {"type": "output_text", "text": "x", "annotations": []})],
        "items[0].content[0].type",
        "invalid_value",
        "'output_text'",
    ),
    (
        "client id on a message",
        [{**OK, "id": "msg_123"}],
        "items[0].id",
        None,
        "Item with id 'msg_123' not found.",
    ),
    (
        "client id on a function_call",
        [{"type": "function_call", "id": "fc_1", "call_id": "c", "name": "f", "arguments": "{}"}],
        "items[0].id",
        None,
        "Item with id 'fc_1' not found.",
    ),
    (
        "hosted tool item",
        [{"type": "reasoning", "id": "rs_1", "summary": []}],
        "items[0].id",
        None,
        "Item with id 'rs_1' not found.",
    ),
    (
        "hosted tool item without id",
        [{"type": "web_search_call", "status": "completed"}],
        "items[0].id",
        "missing_required_parameter",
        "Missing required parameter: 'items[0].id'.",
    ),
    (
        "missing role",
        [{"type": "message", "content": "x"}],
        "items[0].role",
        "missing_required_parameter",
        "Missing required parameter: 'items[0].role'.",
    ),
    (
        "missing content",
        [{"type": "message", "role": "user"}],
        "items[0].content",
        "missing_required_parameter",
        "",
    ),
    (
        "bad role",
        [{"type": "message", "role": "tool", "content": "x"}],
        "items[0].role",
        "invalid_value",
        "'tool'",
    ),
    (
        "content of the wrong type",
        [{"type": "message", "role": "user", "content": 7}],
        "items[0].content",
        "invalid_type",
        "but got an integer instead",
    ),
    (
        "missing call_id",
        [{"type": "function_call", "name": "f", "arguments": "{}"}],
        "items[0].call_id",
        "missing_required_parameter",
        "",
    ),
    (
        "missing name",
        [{"type": "function_call", "call_id": "c", "arguments": "{}"}],
        "items[0].name",
        "missing_required_parameter",
        "",
    ),
    (
        "missing arguments",
        [{"type": "function_call", "call_id": "c", "name": "f"}],
        "items[0].arguments",
        "missing_required_parameter",
        "",
    ),
    (
        "arguments as an object",
        [{"type": "function_call", "call_id": "c", "name": "f", "arguments": {}}],
        "items[0].arguments",
        "invalid_type",
        "expected a string, but got an object instead",
    ),
    (
        "call_id over 64",
        [{"type": "function_call", "call_id": "c" * 65, "name": "f", "arguments": "{}"}],
        "items[0].call_id",
        "string_above_max_length",
        "maximum length 64",
    ),
    (
        "empty call_id",
        [{"type": "function_call_output", "call_id": "", "output": "x"}],
        "items[0].call_id",
        "string_below_min_length",
        "",
    ),
    (
        "missing output",
        [{"type": "function_call_output", "call_id": "c"}],
        "items[0].output",
        "missing_required_parameter",
        "",
    ),
    (
        "missing output call_id",
        [{"type": "function_call_output", "output": "x"}],
        "items[0].call_id",
        "missing_required_parameter",
        "",
    ),
    (
        "image without detail",
        [message("user", {"type": "input_image", "image_url": "https://x/a.png"})],
        "items[0].content[0].detail",
        "missing_required_parameter",
        "",
    ),
    (
        "image with a bad detail",
        [message("user", {"type": "input_image", "file_id": "file-1", "detail": "max"})],
        "items[0].content[0].detail",
        "invalid_value",
        "",
    ),
    (
        "image without a source",
        [message("user", {"type": "input_image", "detail": "auto"})],
        "items[0].content[0].image_url",
        "missing_required_parameter",
        "",
    ),
    (
        "unknown key on a message",
        [{**OK, "created_at": 1700000000}],
        "items[0].created_at",
        "unknown_parameter",
        "Unknown parameter: 'items[0].created_at'.",
    ),
    (
        "status on a message",
        [{**OK, "status": "completed"}],
        "items[0].status",
        "unknown_parameter",
        "",
    ),
    (
        "chat completions leftovers",
        [{"role": "assistant", "content": "x", "tool_calls": []}],
        "items[0].tool_calls",
        "unknown_parameter",
        "",
    ),
    (
        "unknown key on a part",
        [message("user", {**TEXT, "cache": True})],
        "items[0].content[0].cache",
        "unknown_parameter",
        "",
    ),
    (
        "incomplete annotation",
        [
            message(
                "assistant",
                {"type": "output_text", "text": "x", "annotations": [{"type": "file_path"}]},
            )
        ],
        "items[0].content[0].annotations[0].file_id",
        "missing_required_parameter",
        "",
    ),
    ("item not an object", ["hello"], "items[0]", "invalid_type", "expected an object"),
    (
        "the 20th item is bad",
        [OK] * 19 + [{"type": "message", "role": "user"}],
        "items[19].content",
        "missing_required_parameter",
        "",
    ),
]


@pytest.fixture
def admin_client(shared_server: str, admin: Callable[[str], AdminClient]) -> AdminClient:
    return admin(shared_server)


def assert_rejected(
    error: openai.BadRequestError, param: str, code: str | None, words: str
) -> None:
    body = error.body
    assert isinstance(body, dict)
    assert set(body) == {"message", "type", "param", "code"}
    assert body["type"] == "invalid_request_error"
    assert body["param"] == param
    assert body["code"] == code
    assert words in body["message"]


@pytest.mark.parametrize(
    ("items", "param", "code", "words"),
    [case[1:] for case in ITEM_CASES],
    ids=[case[0] for case in ITEM_CASES],
)
def test_items_create_rejects(
    client: OpenAI,
    admin_client: AdminClient,
    items: list[Any],
    param: str,
    code: str | None,
    words: str,
) -> None:
    conversation = client.conversations.create()
    before = admin_client.stats()["items_committed"]
    with pytest.raises(openai.BadRequestError) as rejected:
        client.post(
            f"/conversations/{conversation.id}/items", body={"items": items}, cast_to=object
        )
    assert_rejected(rejected.value, param, code, words)
    assert client.conversations.items.list(conversation.id).data == []
    assert admin_client.stats()["items_committed"] == before


@pytest.mark.parametrize(
    ("items", "param", "code", "words"),
    [case[1:] for case in ITEM_CASES],
    ids=[case[0] for case in ITEM_CASES],
)
def test_conversation_create_rejects_the_same_items(
    client: OpenAI,
    admin_client: AdminClient,
    items: list[Any],
    param: str,
    code: str | None,
    words: str,
) -> None:
    before = admin_client.stats()["conversations_created"]
    with pytest.raises(openai.BadRequestError) as rejected:
        client.post("/conversations", body={"items": items}, cast_to=object)
    assert_rejected(rejected.value, param, code, words)
    assert admin_client.stats()["conversations_created"] == before


def test_items_create_needs_at_least_one_item(client: OpenAI) -> None:
    conversation = client.conversations.create()
    with pytest.raises(openai.BadRequestError) as rejected:
        client.conversations.items.create(conversation.id, items=[])
    assert_rejected(
        rejected.value,
        "items",
        "empty_array",
        "Invalid 'items': empty array. Expected an array with minimum length 1",
    )
    with pytest.raises(openai.BadRequestError) as missing:
        client.post(f"/conversations/{conversation.id}/items", body={}, cast_to=object)
    assert_rejected(missing.value, "items", "missing_required_parameter", "")


METADATA_CASES: list[tuple[str, Any, str, str, str]] = [
    (
        "17 pairs",
        {f"k{n}": "v" for n in range(17)},
        "metadata",
        "object_above_max_properties",
        "at most 16 properties, but got an object with 17 properties",
    ),
    ("key of 65", {"k" * 65: "v"}, "metadata", "string_above_max_length", "length 65"),
    (
        "value of 513",
        {"k": "v" * 513},
        "metadata.k",
        "string_above_max_length",
        "maximum length 512, but got a string with length 513",
    ),
    (
        "number value",
        {"count": 3},
        "metadata.count",
        "invalid_type",
        "expected a string, but got an integer",
    ),
    ("not an object", ["a"], "metadata", "invalid_type", "expected an object"),
]


@pytest.mark.parametrize(
    ("metadata", "param", "code", "words"),
    [case[1:] for case in METADATA_CASES],
    ids=[case[0] for case in METADATA_CASES],
)
def test_metadata_limits(
    client: OpenAI,
    admin_client: AdminClient,
    metadata: Any,
    param: str,
    code: str,
    words: str,
) -> None:
    before = admin_client.stats()["conversations_created"]
    with pytest.raises(openai.BadRequestError) as on_create:
        client.post("/conversations", body={"metadata": metadata}, cast_to=object)
    assert_rejected(on_create.value, param, code, words)
    assert admin_client.stats()["conversations_created"] == before

    conversation = client.conversations.create(metadata={"kept": "yes"})
    with pytest.raises(openai.BadRequestError) as on_update:
        client.post(
            f"/conversations/{conversation.id}", body={"metadata": metadata}, cast_to=object
        )
    assert_rejected(on_update.value, param, code, words)
    assert client.conversations.retrieve(conversation.id).metadata == {"kept": "yes"}


def test_metadata_at_the_limits_is_accepted(client: OpenAI) -> None:
    metadata = {f"{n:02d}" + "k" * 62: "v" * 512 for n in range(16)}
    assert client.conversations.create(metadata=metadata).metadata == metadata


def test_update_requires_metadata(client: OpenAI) -> None:
    conversation = client.conversations.create(metadata={"a": "b"})
    with pytest.raises(openai.BadRequestError) as missing:
        client.post(f"/conversations/{conversation.id}", body={}, cast_to=object)
    assert_rejected(missing.value, "metadata", "missing_required_parameter", "")
    cleared = client.conversations.update(conversation.id, metadata=None)
    assert cleared.metadata == {}


def test_unknown_top_level_parameter(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as rejected:
        client.post("/conversations", body={"items": [], "title": "x"}, cast_to=object)
    assert_rejected(rejected.value, "body.title", "unknown_parameter", "")


@pytest.mark.parametrize("payload", [b"{not json", b"\xff\xfe", b"[1, 2]"])
def test_malformed_bodies(shared_server: str, admin_client: AdminClient, payload: bytes) -> None:
    before = admin_client.stats()["conversations_created"]
    response = httpx2.post(
        f"{shared_server}/conversations",
        content=payload,
        headers={"Authorization": "Bearer test", "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert set(error) == {"message", "type", "param", "code"}
    assert admin_client.stats()["conversations_created"] == before
