"""The local server answers with the same shapes as the real API's recorded responses."""

from __future__ import annotations

import json
from typing import Any

import httpx2
from openai import OpenAI

from tests.spec import REAL_FIXTURES

RECORDINGS = REAL_FIXTURES / "openai-dotnet-conversations-responses"


def recorded_call(name: str, method: str, path_part: str) -> Any:
    """The first recorded call matching method and URL fragment."""
    entries = json.loads((RECORDINGS / f"{name}.json").read_text(encoding="utf-8"))["Entries"]
    for entry in entries:
        if entry["RequestMethod"] == method and path_part in entry["RequestUri"]:
            return entry
    raise LookupError(f"{name}: no {method} *{path_part}*")


def recorded(name: str, method: str, path_part: str) -> Any:
    """The response body of the first recorded call matching method and URL fragment."""
    return recorded_call(name, method, path_part)["ResponseBody"]


def shape(value: Any) -> Any:
    """Keys and JSON types, recursively (lists by their first element)."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in sorted(value.items())}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, str):
        return "string"
    return "null" if value is None else type(value).__name__


def as_json(client: OpenAI, method: str, path: str, body: Any = None) -> Any:
    """The JSON body of a call made through the SDK's own HTTP methods."""
    if method == "post":
        return client.post(path, body=body, cast_to=httpx2.Response).json()
    if method == "get":
        return client.get(path, cast_to=httpx2.Response).json()
    return client.delete(path, cast_to=httpx2.Response).json()


CONVERSATIONS = "ConversationTests_CanCreateGetUpdateAndDeleteConversation"
ITEMS = "ConversationTests_ConversationItemEndpointsAcceptIncludeQuery"
FUNCTIONS = "ResponsesTests_FunctionCallWorks"
HISTORY = "ResponsesTests_MessageHistoryWorks"


def test_conversation_objects(client: OpenAI) -> None:
    request = recorded_call(CONVERSATIONS, "POST", "/v1/conversations")["RequestBody"]
    created = as_json(client, "post", "/conversations", request)
    assert shape(created) == shape(recorded(CONVERSATIONS, "POST", "/v1/conversations"))
    conversation_path = f"/conversations/{created['id']}"
    assert shape(as_json(client, "get", conversation_path)) == shape(
        recorded(CONVERSATIONS, "GET", "/v1/conversations/conv_")
    )
    update = {"metadata": {"topic": "updated-test", "purpose": "conversation-test"}}
    updated = as_json(client, "post", conversation_path, update)
    assert updated["metadata"] == recorded(CONVERSATIONS, "POST", "/conv_")["metadata"]
    deleted = as_json(client, "delete", conversation_path)
    expected = recorded(CONVERSATIONS, "DELETE", "/conv_")
    assert shape(deleted) == shape(expected)
    assert {**deleted, "id": expected["id"]} == expected


def test_item_lists_and_message_items(client: OpenAI) -> None:
    first = recorded_call(ITEMS, "POST", "/v1/conversations")["RequestBody"]
    conversation = as_json(client, "post", "/conversations", first)
    second = recorded_call(ITEMS, "POST", "/items")["RequestBody"]
    items_path = f"/conversations/{conversation['id']}/items"
    created = as_json(client, "post", items_path, second)
    assert shape(created) == shape(recorded(ITEMS, "POST", "/items"))

    item_path = f"{items_path}/{created['data'][0]['id']}"
    item = as_json(client, "get", item_path)
    expected_item = recorded(ITEMS, "GET", "/items/msg_")
    assert shape(item) == shape(expected_item)
    assert {**item, "id": expected_item["id"]} == expected_item

    listed = as_json(client, "get", items_path)
    expected_list = recorded(ITEMS, "GET", "/items?")
    assert shape(listed) == shape(expected_list)
    assert [entry["content"] for entry in listed["data"]] == [
        entry["content"] for entry in expected_list["data"]
    ], "newest first by default, as recorded"


def test_function_call_items(client: OpenAI) -> None:
    recorded_items = recorded(FUNCTIONS, "GET", "/input_items")["data"]
    call = next(item for item in recorded_items if item["type"] == "function_call")
    output = next(item for item in recorded_items if item["type"] == "function_call_output")
    request = {
        "items": [
            {key: call[key] for key in ("type", "call_id", "name", "arguments")},
            {key: output[key] for key in ("type", "call_id", "output")},
        ]
    }
    conversation = client.conversations.create()
    created = as_json(client, "post", f"/conversations/{conversation.id}/items", request)["data"]
    assert shape(created[0]) == shape(call)
    assert shape(created[1]) == shape(output)
    assert created[0]["id"].startswith("fc_")
    assert created[1]["id"].startswith("fc_"), "the recordings show fc_ for outputs too"


def test_an_output_may_come_in_a_later_call_than_its_function_call(client: OpenAI) -> None:
    entries = json.loads((RECORDINGS / f"{FUNCTIONS}.json").read_text(encoding="utf-8"))["Entries"]
    first, second = (entry for entry in entries if entry["RequestMethod"] == "POST")
    call = first["ResponseBody"]["output"][0]
    # The real API took the output alone, answering a call an earlier request stored.
    assert [item["type"] for item in second["RequestBody"]["input"]] == ["function_call_output"]
    assert second["RequestBody"]["input"][0]["call_id"] == call["call_id"]
    assert second["StatusCode"] == 200
    # The planner relies on the same for items: the call in one append, its output in the next.
    conversation = client.conversations.create()
    items_path = f"/conversations/{conversation.id}/items"
    sent_call = {key: call[key] for key in ("type", "call_id", "name", "arguments")}
    sent_output = {"type": "function_call_output", "call_id": call["call_id"], "output": "22"}
    as_json(client, "post", items_path, {"items": [sent_call]})
    as_json(client, "post", items_path, {"items": [sent_output]})
    listed = client.conversations.items.list(conversation.id, order="asc")
    assert [(item.type, getattr(item, "call_id", None)) for item in listed.data] == [
        ("function_call", call["call_id"]),
        ("function_call_output", call["call_id"]),
    ]


def test_assistant_history_message(client: OpenAI) -> None:
    history = json.loads((RECORDINGS / f"{HISTORY}.json").read_text(encoding="utf-8"))
    entry = history["Entries"][0]
    sent = entry["RequestBody"]["input"]
    answer = entry["ResponseBody"]["output"][0]
    conversation = client.conversations.create()
    created = as_json(client, "post", f"/conversations/{conversation.id}/items", {"items": sent})
    assert [item["role"] for item in created["data"]] == [item["role"] for item in sent]
    assistant = next(item for item in created["data"] if item["role"] == "assistant")
    assert shape(assistant) == shape(answer)
