"""How the target stores what we send (checked on real recordings), error classification, and
`verify`'s comparison of a conversation with its plan."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest

from migrate.errors import CallError
from migrate.jobs.verify import compare_with_plan
from migrate.plan.model import ConversationPlan
from migrate.replay.failures import classify
from migrate.replay.ratelimit import RateLimiter
from migrate.replay.stored import item_difference
from migrate.replay.target import Target
from migrate.transform.transformer import PlannedItem

RECORDINGS = Path(__file__).resolve().parent / "recordings"


def recording(name: str) -> list[dict[str, Any]]:
    path = RECORDINGS / name
    entries: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))["Entries"]
    return entries


def test_items_sent_match_what_the_real_api_returned_for_them() -> None:
    entries = recording("ConversationTests_ConversationItemEndpointsAcceptIncludeQuery.json")
    created = next(e for e in entries if e["RequestUri"].split("?")[0].endswith("/items"))
    sent = created["RequestBody"]["items"]
    returned = created["ResponseBody"]["data"]
    assert len(sent) == len(returned)
    for planned, listed in zip(sent, returned, strict=True):
        assert "id" in listed and "status" in listed
        assert item_difference(planned, listed) is None


def test_tool_items_match_the_real_api_listing() -> None:
    entries = recording("ResponsesTests_FunctionCallWorks.json")
    listing = next(e for e in entries if e["RequestUri"].endswith("/input_items"))
    by_type = {item["type"]: item for item in listing["ResponseBody"]["data"]}
    call = {"type": "function_call", "call_id": "call_S2X9KuEJpYvFcF4hgv1XwM0j"}
    call |= {"name": "get_weather_at_location", "arguments": '{"location":"San Francisco, CA"}'}
    output = {"type": "function_call_output", "call_id": call["call_id"]}
    output |= {"output": "22 celcius and windy"}
    assert item_difference(call, by_type["function_call"]) is None
    assert item_difference(output, by_type["function_call_output"]) is None
    assert item_difference(output | {"output": "23"}, by_type["function_call_output"])


def test_string_content_comes_back_as_parts() -> None:
    listed = {
        "id": "msg_1",
        "type": "message",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": "Hi", "annotations": [], "logprobs": []}],
    }
    assert item_difference({"role": "assistant", "content": "Hi"}, listed) is None
    assert (
        item_difference({"type": "message", "role": "assistant", "content": "Hi"}, listed) is None
    )
    changed = item_difference({"type": "message", "role": "assistant", "content": "Hey"}, listed)
    assert changed is not None and "content[0].text" in changed
    assert item_difference({"type": "message", "role": "user", "content": "Hi"}, listed)


def test_keys_we_sent_must_come_back() -> None:
    planned = {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_image", "image_url": "https://x/a.png", "detail": "auto"}],
    }
    listed = {
        "type": "message",
        "role": "user",
        "id": "msg_1",
        "content": [{"type": "input_image", "detail": "auto"}],
    }
    reason = item_difference(planned, listed)
    assert reason is not None and "image_url" in reason


def status_error(
    status: int, headers: dict[str, str] | None = None, **body: str
) -> openai.APIStatusError:
    request = httpx2.Request("POST", "http://127.0.0.1/v1/conversations")
    response = httpx2.Response(status, headers=headers or {}, request=request)
    error_class = {400: openai.BadRequestError, 401: openai.AuthenticationError}.get(status)
    error_class = error_class or {404: openai.NotFoundError, 429: openai.RateLimitError}.get(status)
    error_class = error_class or openai.InternalServerError
    return error_class(f"Error code: {status}", response=response, body=body or None)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "rejected"),
        (401, "fatal"),
        (404, "not_found"),
        (429, "not_applied"),
        (500, "ambiguous"),
        (503, "ambiguous"),
    ],
)
def test_status_codes_map_to_what_may_be_done(status: int, kind: str) -> None:
    assert classify(status_error(status)).kind == kind


def test_a_429_carries_its_delay_and_a_quota_429_stops_the_job() -> None:
    limited = classify(status_error(429, {"retry-after-ms": "1500"}))
    assert limited.retry_after == 1.5
    assert classify(status_error(429, code="insufficient_quota", message="quota")).kind == "fatal"


def test_the_api_message_is_kept_for_the_report() -> None:
    error = classify(status_error(400, message="Invalid 'items[0].content'", param="items"))
    assert error.message == "400: Invalid 'items[0].content'"


def connection_error(cause: Exception, *, timeout: bool = False) -> openai.APIConnectionError:
    request = httpx2.Request("POST", "http://127.0.0.1/v1/conversations")
    error: openai.APIConnectionError = (
        openai.APITimeoutError(request=request)
        if timeout
        else openai.APIConnectionError(request=request)
    )
    error.__cause__ = cause
    return error


def test_refused_connections_are_not_applied_but_lost_ones_are_ambiguous() -> None:
    refused = connection_error(httpx2.ConnectError("Connection refused"))
    assert classify(refused).kind == "not_applied"
    dropped = connection_error(httpx2.RemoteProtocolError("Server disconnected"))
    assert classify(dropped).kind == "ambiguous"
    timed_out = connection_error(httpx2.ReadTimeout("read timed out"), timeout=True)
    assert classify(timed_out).kind == "ambiguous"
    connect_timeout = connection_error(httpx2.ConnectTimeout("connect"), timeout=True)
    assert classify(connect_timeout).kind == "not_applied"
    assert isinstance(classify(dropped), CallError)


def plan_of(*texts: str) -> ConversationPlan:
    items = [
        PlannedItem(
            item={"type": "message", "role": "user", "content": t}, entry_index=i, source_id=f"m{i}"
        )
        for i, t in enumerate(texts)
    ]
    return ConversationPlan(
        source_kind="test",
        source_id="c",
        location="test:1",
        metadata={},
        items=items,
        batch_sizes=[len(items)],
        fingerprint="fp",
        findings=[],
    )


def listed(*pairs: tuple[str, str]) -> list[dict[str, Any]]:
    return [
        {
            "id": item_id,
            "type": "message",
            "role": "user",
            "status": "completed",
            "content": [{"type": "input_text", "text": t}],
        }
        for item_id, t in pairs
    ]


RECORDED = {0: "msg_a", 1: "msg_b", 2: "msg_c"}


def kinds(problems: list[Any]) -> list[str]:
    return [problem.kind for problem in problems]


def test_verify_accepts_exactly_the_plan() -> None:
    plan = plan_of("a", "b", "c")
    assert (
        compare_with_plan(plan, listed(("msg_a", "a"), ("msg_b", "b"), ("msg_c", "c")), RECORDED)
        == []
    )


def test_verify_names_missing_duplicated_extra_reordered_and_changed_items() -> None:
    plan = plan_of("a", "b", "c")
    assert kinds(compare_with_plan(plan, listed(("msg_a", "a"), ("msg_c", "c")), RECORDED)) == [
        "missing"
    ]
    duplicated = listed(("msg_a", "a"), ("msg_b", "b"), ("msg_x", "b"), ("msg_c", "c"))
    assert kinds(compare_with_plan(plan, duplicated, RECORDED)) == ["duplicated"]
    extra = listed(("msg_a", "a"), ("msg_b", "b"), ("msg_c", "c"), ("msg_z", "hello"))
    assert kinds(compare_with_plan(plan, extra, RECORDED)) == ["extra"]
    reordered = listed(("msg_b", "b"), ("msg_a", "a"), ("msg_c", "c"))
    assert kinds(compare_with_plan(plan, reordered, RECORDED)) == ["reordered"]
    changed = listed(("msg_a", "a"), ("msg_b", "B"), ("msg_c", "c"))
    problems = compare_with_plan(plan, changed, RECORDED)
    assert kinds(problems) == ["changed"]
    assert problems[0].position == 1


def append_answered(content: bytes) -> list[dict[str, Any]]:
    """What `Target.create_items` returns (or raises) for a batch of two answered `content`."""

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=content)

    async def append() -> list[dict[str, Any]]:
        http = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
        client = openai.AsyncOpenAI(
            api_key="k", base_url="http://test/v1", max_retries=0, http_client=http
        )
        target = Target(client, limiter=RateLimiter(), timeout=5.0, description="test")
        try:
            return await target.create_items("conv_1", [{"type": "message"}] * 2)
        finally:
            await client.close()

    return asyncio.run(append())


def test_an_append_answer_is_read_down_to_its_ids() -> None:
    items = listed(("msg_a", "one"), ("msg_b", "two"))
    answer = {"object": "list", "data": items, "first_id": "msg_a", "has_more": False}
    assert append_answered(json.dumps(answer).encode()) == [{"id": "msg_a"}, {"id": "msg_b"}]
    no_id = {"data": [{"type": "message"}, {"id": 7}]}
    assert append_answered(json.dumps(no_id).encode()) == [{}, {"id": 7}]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not json", "POST /conversations/conv_1/items: the target answered non-JSON"),
        (b"[1, 2]", "POST /conversations/conv_1/items: unexpected answer [1, 2]"),
        (b'{"data": [{"id": "msg_a"}]}', "the target answered 1 items for a batch of 2"),
        (b'{"data": "none"}', "the target answered no items for a batch of 2"),
    ],
)
def test_an_unexpected_append_answer_is_ambiguous(content: bytes, message: str) -> None:
    with pytest.raises(CallError) as raised:
        append_answered(content)
    assert raised.value.kind == "ambiguous"
    assert raised.value.message == message


def test_an_append_answer_of_another_shape_is_read_whole() -> None:
    answer = {"data": [{"id": "msg_a", "type": "message"}, "not an item"]}
    assert append_answered(json.dumps(answer).encode()) == [{"id": "msg_a", "type": "message"}]
