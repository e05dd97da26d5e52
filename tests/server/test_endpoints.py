"""Every endpoint of the local server, driven through the official `openai` SDK."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import openai
import pytest
from openai import OpenAI

from migrate.server.testing import ServerFactory

ID_SHAPE = r"[0-9a-f]{48}"


def user(text: str) -> Any:
    return {"type": "message", "role": "user", "content": text}


def fill(client: OpenAI, count: int) -> str:
    """A conversation holding messages "m0".."m{count-1}" in that order."""
    conversation = client.conversations.create()
    for start in range(0, count, 20):
        batch = [user(f"m{n}") for n in range(start, min(count, start + 20))]
        client.conversations.items.create(conversation.id, items=batch)
    return conversation.id


def texts(items: list[Any]) -> list[str]:
    return [item.content[0].text for item in items]


def id_of(item: Any) -> str:
    """The server-minted id of a returned item."""
    assert isinstance(item.id, str)
    return item.id


def test_conversation_create_retrieve_update_delete(client: OpenAI) -> None:
    created = client.conversations.create(metadata={"topic": "test"})
    assert re.fullmatch(f"conv_{ID_SHAPE}", created.id)
    assert created.object == "conversation"
    assert created.metadata == {"topic": "test"}
    assert isinstance(created.created_at, int)

    fetched = client.conversations.retrieve(created.id)
    assert fetched == created

    updated = client.conversations.update(
        created.id, metadata={"topic": "updated-test", "purpose": "conversation-test"}
    )
    assert updated.metadata == {"topic": "updated-test", "purpose": "conversation-test"}
    assert client.conversations.retrieve(created.id).metadata == updated.metadata

    replaced = client.conversations.update(created.id, metadata={"only": "this"})
    assert replaced.metadata == {"only": "this"}, "metadata updates replace the whole object"

    deleted = client.conversations.delete(created.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (
        created.id,
        "conversation.deleted",
        True,
    )
    with pytest.raises(openai.NotFoundError) as missing:
        client.conversations.retrieve(created.id)
    assert missing.value.body == {
        "message": f"Conversation with id '{created.id}' not found.",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }


def test_create_without_anything_gives_empty_metadata(client: OpenAI) -> None:
    created = client.conversations.create()
    assert created.metadata == {}
    assert client.conversations.items.list(created.id).data == []


def test_create_with_items_stores_them_in_order(client: OpenAI) -> None:
    items = [user(f"first {n}") for n in range(20)]
    created = client.conversations.create(items=items)
    listed = client.conversations.items.list(created.id, order="asc", limit=100)
    assert texts(listed.data) == [f"first {n}" for n in range(20)]


def test_string_content_comes_back_as_parts(client: OpenAI) -> None:
    conversation = client.conversations.create()
    items: list[Any] = [
        {"type": "message", "role": "system", "content": "be terse"},
        {"type": "message", "role": "developer", "content": "really"},
        {"role": "user", "content": "hello"},
        {"type": "message", "role": "assistant", "content": "hi there"},
    ]
    result = client.conversations.items.create(conversation.id, items=items)
    bodies = [item.model_dump(exclude_none=True) for item in result.data]
    for body, role in zip(bodies[:3], ("system", "developer", "user"), strict=True):
        assert body["role"] == role
        assert body["status"] == "completed"
        assert body["content"] == [{"type": "input_text", "text": body["content"][0]["text"]}]
    assert bodies[3]["content"] == [
        {"type": "output_text", "text": "hi there", "annotations": [], "logprobs": []}
    ]
    assert all(re.fullmatch(f"msg_{ID_SHAPE}", body["id"]) for body in bodies)
    # Items share their conversation's id suffix, like the real API's ids.
    assert all(body["id"][-16:] == conversation.id[-16:] for body in bodies)


def test_items_create_returns_the_list_envelope(client: OpenAI) -> None:
    conversation = client.conversations.create()
    raw = client.conversations.items.with_raw_response.create(
        conversation.id,
        items=[user("second item")],
        include=["message.input_image.image_url", "web_search_call.action.sources"],
    )
    body = raw.http_response.json()
    assert set(body) == {"object", "data", "first_id", "last_id", "has_more"}
    assert body["object"] == "list"
    assert body["has_more"] is False
    assert body["first_id"] == body["last_id"] == body["data"][0]["id"]


def test_tool_items_round_trip(client: OpenAI) -> None:
    conversation = client.conversations.create()
    items: list[Any] = [
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": '{"temp_c": 20}'},
        {"type": "custom_tool_call", "call_id": "call_2", "name": "sql", "input": "SELECT 1"},
        {
            "type": "custom_tool_call_output",
            "call_id": "call_2",
            "output": [{"type": "input_text", "text": "1"}],
        },
    ]
    created = client.conversations.items.create(conversation.id, items=items).data
    assert [item.type for item in created] == [item["type"] for item in items]
    prefixes = [id_of(item).split("_")[0] for item in created]
    assert prefixes == ["fc", "fc", "ctc", "ctco"]
    call = created[0].model_dump(exclude_none=True)
    assert call == {**items[0], "id": created[0].id, "status": "completed"}
    output = created[1].model_dump(exclude_none=True)
    assert output == {**items[1], "id": created[1].id, "status": "completed"}


def test_images_and_files_keep_their_fields(client: OpenAI) -> None:
    conversation = client.conversations.create()
    parts: list[Any] = [
        {"type": "input_text", "text": "look"},
        {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "auto"},
        {"type": "input_image", "file_id": "file-abc", "detail": "low"},
        {"type": "input_file", "file_id": "file-def"},
    ]
    item = client.conversations.items.create(
        conversation.id, items=[{"type": "message", "role": "user", "content": parts}]
    ).data[0]
    fetched = client.conversations.items.retrieve(id_of(item), conversation_id=conversation.id)
    content = fetched.model_dump(exclude_none=True)["content"]
    assert content[1] == parts[1]
    assert content[2] == parts[2]
    assert content[3] == parts[3]


def test_assistant_annotations_are_kept(client: OpenAI) -> None:
    conversation = client.conversations.create()
    annotation = {"type": "file_citation", "file_id": "file-1", "index": 3, "filename": "a.pdf"}
    part = {"type": "output_text", "text": "see [1]", "annotations": [annotation]}
    items: list[Any] = [{"type": "message", "role": "assistant", "content": [part]}]
    item = client.conversations.items.create(conversation.id, items=items).data[0]
    assert item.model_dump(exclude_none=True)["content"][0]["annotations"] == [annotation]


def test_retrieve_and_delete_one_item(client: OpenAI) -> None:
    conversation_id = fill(client, 3)
    items = client.conversations.items.list(conversation_id, order="asc").data
    middle = items[1]
    middle_id = id_of(middle)
    assert client.conversations.items.retrieve(middle_id, conversation_id=conversation_id) == middle

    answer = client.conversations.items.delete(middle_id, conversation_id=conversation_id)
    assert answer.object == "conversation"
    assert answer.id == conversation_id
    assert texts(client.conversations.items.list(conversation_id, order="asc").data) == [
        "m0",
        "m2",
    ]
    with pytest.raises(openai.NotFoundError) as missing:
        client.conversations.items.retrieve(middle_id, conversation_id=conversation_id)
    assert missing.value.message.endswith(f"Item with id '{middle_id}' not found.")
    with pytest.raises(openai.NotFoundError):
        client.conversations.items.delete(middle_id, conversation_id=conversation_id)


def test_items_keep_insertion_order_across_batches(client: OpenAI) -> None:
    conversation_id = fill(client, 47)
    listed = list(client.conversations.items.list(conversation_id, order="asc", limit=100))
    assert texts(listed) == [f"m{n}" for n in range(47)]


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_pagination_pages_with_after(client: OpenAI, order: str) -> None:
    conversation_id = fill(client, 7)
    expected = [f"m{n}" for n in range(7)]
    if order == "desc":
        expected.reverse()
    seen: list[str] = []
    after: str | None = None
    pages = []
    while True:
        kwargs: dict[str, Any] = {"order": order, "limit": 3}
        if after is not None:
            kwargs["after"] = after
        page = client.conversations.items.list(conversation_id, **kwargs)
        pages.append(page)
        seen += texts(page.data)
        assert page.to_dict()["first_id"] == page.data[0].id
        assert page.last_id == page.data[-1].id
        if not page.has_more:
            break
        after = page.last_id
    assert seen == expected
    assert [len(page.data) for page in pages] == [3, 3, 1]
    assert [page.has_more for page in pages] == [True, True, False]


def test_default_order_is_newest_first_and_limit_20(client: OpenAI) -> None:
    conversation_id = fill(client, 25)
    page = client.conversations.items.list(conversation_id)
    assert texts(page.data) == [f"m{n}" for n in range(24, 4, -1)]
    assert page.has_more is True


def test_sdk_auto_pagination_walks_every_page(client: OpenAI) -> None:
    conversation_id = fill(client, 45)
    every = list(client.conversations.items.list(conversation_id, order="asc", limit=10))
    assert texts(every) == [f"m{n}" for n in range(45)]


def test_list_of_an_empty_conversation(client: OpenAI) -> None:
    conversation = client.conversations.create()
    raw = client.conversations.items.with_raw_response.list(conversation.id)
    assert raw.http_response.json() == {
        "object": "list",
        "data": [],
        "first_id": None,
        "has_more": False,
        "last_id": None,
    }


def test_unknown_after_is_an_error(client: OpenAI) -> None:
    conversation_id = fill(client, 2)
    with pytest.raises(openai.NotFoundError) as missing:
        client.conversations.items.list(conversation_id, after="msg_nope")
    assert missing.value.body["param"] == "after"  # type: ignore[index]


@pytest.mark.parametrize(
    ("query", "param", "code"),
    [
        ({"limit": 0}, "limit", "integer_below_min_value"),
        ({"limit": 101}, "limit", "integer_above_max_value"),
        ({"order": "sideways"}, "order", "invalid_value"),
        ({"include": ["everything"]}, "include", "invalid_value"),
    ],
)
def test_bad_list_parameters(client: OpenAI, query: dict[str, Any], param: str, code: str) -> None:
    conversation_id = fill(client, 1)
    with pytest.raises(openai.BadRequestError) as bad:
        client.conversations.items.list(conversation_id, **query)
    assert bad.value.body["param"] == param  # type: ignore[index]
    assert bad.value.code == code


def test_limit_100_is_allowed(client: OpenAI) -> None:
    conversation_id = fill(client, 101)
    page = client.conversations.items.list(conversation_id, limit=100, order="asc")
    assert len(page.data) == 100
    assert page.has_more is True


def test_unknown_conversation_is_404_everywhere(client: OpenAI) -> None:
    ghost = "conv_0000"
    calls: list[Callable[[], object]] = [
        lambda: client.conversations.retrieve(ghost),
        lambda: client.conversations.update(ghost, metadata={}),
        lambda: client.conversations.delete(ghost),
        lambda: client.conversations.items.create(ghost, items=[user("x")]),
        lambda: client.conversations.items.list(ghost),
        lambda: client.conversations.items.retrieve("msg_1", conversation_id=ghost),
        lambda: client.conversations.items.delete("msg_1", conversation_id=ghost),
    ]
    for call in calls:
        with pytest.raises(openai.NotFoundError) as missing:
            call()
        assert missing.value.message.endswith(f"Conversation with id '{ghost}' not found.")
        assert missing.value.type == "invalid_request_error"


def test_item_of_another_conversation_is_not_found(client: OpenAI) -> None:
    first = fill(client, 1)
    second = fill(client, 1)
    item = client.conversations.items.list(first).data[0]
    with pytest.raises(openai.NotFoundError):
        client.conversations.items.retrieve(id_of(item), conversation_id=second)


def test_deleted_conversation_keeps_its_items_in_the_store(
    local_server: ServerFactory, sdk: Callable[..., OpenAI]
) -> None:
    base_url = local_server()
    client = sdk(base_url)
    conversation_id = fill(client, 3)
    client.conversations.delete(conversation_id)
    with pytest.raises(openai.NotFoundError):
        client.conversations.items.list(conversation_id)
    store = local_server.server(base_url).app.store
    assert [item["content"][0]["text"] for item in store.all_items(conversation_id)] == [
        "m0",
        "m1",
        "m2",
    ]
    with pytest.raises(openai.NotFoundError):
        client.conversations.delete(conversation_id)


def test_unknown_route_is_an_openai_style_404(client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client.get("/conversations", cast_to=object)
    assert missing.value.body == {
        "message": "Invalid URL (GET /v1/conversations)",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
