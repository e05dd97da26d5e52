"""Rate limiting (429, Retry-After, x-ratelimit-* headers), latency settings, and auth (401)."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx2
import openai
import pytest
from openai import OpenAI
from pydantic import SecretStr

from migrate.server.faults import Latency, TokenBucket, format_duration
from migrate.server.options import ServerOptions
from migrate.server.testing import AdminClient, ServerFactory

ClientFactory = Callable[..., OpenAI]
RATE_HEADERS = (
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
)


@pytest.mark.parametrize(
    ("seconds", "spelled"),
    [
        (0.0, "0ms"),
        (0.002, "2ms"),
        (0.12, "120ms"),
        (1.0, "1s"),
        (1.5, "1.5s"),
        (59.999, "59.999s"),
        (60.0, "1m0s"),
        (360.0, "6m0s"),
        (361.25, "6m1.25s"),
    ],
)
def test_durations_are_spelled_like_the_api(seconds: float, spelled: str) -> None:
    assert format_duration(seconds) == spelled
    assert seconds_of(spelled) == pytest.approx(seconds)


def seconds_of(spelled: str) -> float:
    """Read back a duration such as `59.964s`, `1m0s` or `120ms`."""
    if spelled.endswith("ms"):
        return int(spelled[:-2]) / 1000
    minutes, _, seconds = spelled[:-1].rpartition("m")
    return int(minutes or 0) * 60 + float(seconds)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_spends_and_refills() -> None:
    clock = FakeClock()
    bucket = TokenBucket(60, clock=clock)
    decisions = [bucket.take() for _ in range(60)]
    assert all(decision.allowed for decision in decisions)
    assert [decision.remaining for decision in decisions[:3]] == [59, 58, 57]
    assert decisions[-1].remaining == 0
    assert decisions[-1].reset_seconds == pytest.approx(60.0)

    refused = bucket.take()
    assert not refused.allowed
    assert refused.retry_after_seconds == pytest.approx(1.0)

    clock.now += 2.5
    assert bucket.peek().remaining == 2
    assert bucket.take().allowed
    assert bucket.take().allowed
    assert not bucket.take().allowed

    clock.now += 3600
    assert bucket.peek().remaining == 60, "the bucket never holds more than one minute's worth"


def test_unlimited_bucket_still_reports_headers() -> None:
    decision = TokenBucket(None).take()
    assert decision.allowed
    assert [name for name, _ in decision.headers()] == [name.encode() for name in RATE_HEADERS]


def test_latency_is_fixed_plus_seeded_jitter() -> None:
    first = [Latency(100, 50, seed=3).next_delay() for _ in range(1)]
    again = Latency(100, 50, seed=3)
    delays = [again.next_delay() for _ in range(50)]
    assert delays[0] == first[0]
    assert all(0.1 <= delay <= 0.15 for delay in delays)
    assert len(set(delays)) > 1
    assert Latency(40, 0, seed=1).next_delay() == pytest.approx(0.04)
    assert [Latency(100, 50, seed=4).next_delay() for _ in range(1)] != first


def test_server_with_latency_and_jitter_answers(
    local_server: ServerFactory, sdk: ClientFactory
) -> None:
    client = sdk(local_server(latency_ms=5, jitter_ms=5, seed=1))
    conversation = client.conversations.create()
    assert client.conversations.retrieve(conversation.id) == conversation


def test_rate_limit_headers_and_429(local_server: ServerFactory, sdk: ClientFactory) -> None:
    client = sdk(local_server(rpm=3))
    conversation = client.conversations.create()
    first = client.conversations.with_raw_response.retrieve(conversation.id)
    second = client.conversations.items.with_raw_response.list(conversation.id)
    assert first.headers["x-ratelimit-limit-requests"] == "3"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    assert second.headers["x-ratelimit-remaining-requests"] == "0"
    assert 50 < seconds_of(second.headers["x-ratelimit-reset-requests"]) <= 60

    with pytest.raises(openai.RateLimitError) as limited:
        client.conversations.retrieve(conversation.id)
    error = limited.value
    assert error.status_code == 429
    assert error.type == "requests"
    assert error.code == "rate_limit_exceeded"
    headers = error.response.headers
    assert int(headers["retry-after"]) >= 1
    assert headers["retry-after"] == "20"  # one request every 20 s at 3 per minute
    assert 19_000 < int(headers["retry-after-ms"]) <= 20_000
    assert headers["x-ratelimit-remaining-requests"] == "0"


def test_every_kind_of_answer_carries_rate_headers(
    local_server: ServerFactory, sdk: ClientFactory
) -> None:
    base_url = local_server(rpm=1000)
    client = sdk(base_url)
    responses: list[httpx2.Response] = []
    conversation = client.conversations.with_raw_response.create()
    responses.append(conversation.http_response)
    for failing in (
        lambda: client.conversations.retrieve("conv_missing"),
        lambda: client.conversations.items.create(conversation.parse().id, items=[]),
    ):
        with pytest.raises(openai.APIStatusError) as failed:
            failing()
        responses.append(failed.value.response)
    responses.append(httpx2.get(f"{base_url}/conversations/conv_x"))  # 401
    assert [response.status_code for response in responses] == [200, 404, 400, 401]
    for response in responses:
        for name in RATE_HEADERS:
            assert name in response.headers, (response.status_code, name)
        assert response.headers["x-request-id"].startswith("req_")


def test_missing_bearer_token_is_401(shared_server: str) -> None:
    for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer"}):
        response = httpx2.post(f"{shared_server}/conversations", json={}, headers=headers)
        assert response.status_code == 401
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error"
        assert "You didn't provide an API key" in error["message"]


def test_any_token_is_accepted_when_none_is_configured(
    shared_server: str, sdk: ClientFactory
) -> None:
    assert sdk(shared_server, api_key="anything-goes").conversations.create().id


def test_configured_key_is_enforced(
    local_server: ServerFactory, sdk: ClientFactory, admin: Callable[[str], AdminClient]
) -> None:
    base_url = local_server(ServerOptions(api_key=SecretStr("sk-local-secret")))
    with pytest.raises(openai.AuthenticationError) as denied:
        sdk(base_url, api_key="sk-wrong").conversations.create()
    assert denied.value.code == "invalid_api_key"
    assert "sk-wrong" not in denied.value.message
    assert sdk(base_url, api_key="sk-local-secret").conversations.create().id
    with pytest.raises(httpx2.HTTPStatusError):
        admin(base_url).stats()  # the admin client's default token is wrong here
    allowed = AdminClient(base_url, api_key="sk-local-secret")
    try:
        assert allowed.stats()["conversations_created"] == 1
    finally:
        allowed.close()


def test_stats_count_requests_by_route_and_status(
    local_server: ServerFactory, sdk: ClientFactory, admin: Callable[[str], AdminClient]
) -> None:
    base_url = local_server()
    client = sdk(base_url)
    conversation = client.conversations.create()
    client.conversations.items.create(
        conversation.id, items=[{"type": "message", "role": "user", "content": "x"}]
    )
    with pytest.raises(openai.NotFoundError):
        client.conversations.retrieve("conv_nope")
    stats = admin(base_url).stats()
    assert stats["requests"] == {
        "POST /v1/conversations": {"200": 1},
        "POST /v1/conversations/{conversation_id}/items": {"200": 1},
        "GET /v1/conversations/{conversation_id}": {"404": 1},
    }
    assert stats["items_committed"] == 1
    assert [entry["operation"] for entry in admin(base_url).log()] == [
        "conversations.create",
        "items.create",
    ]
    assert admin(base_url).log(after=1)[0]["seq"] == 2


def test_a_drained_bucket_refuses_everything_until_the_drain_ends() -> None:
    clock = FakeClock()
    bucket = TokenBucket(60, clock=clock)
    bucket.drain(5.0)
    refused = bucket.take()
    assert not refused.allowed
    assert refused.retry_after_seconds == pytest.approx(1.0)  # the next token, which it loses
    clock.now += 4.5
    assert not bucket.take().allowed, "the other client took every token refilled meanwhile"
    clock.now += 0.5
    assert not bucket.take().allowed, "the drain ends with an empty bucket"
    clock.now += 2.0
    assert bucket.take().allowed
    assert bucket.take().allowed
    assert not bucket.take().allowed


def test_drain_through_admin_and_at_start(
    local_server: ServerFactory, sdk: ClientFactory, admin: Callable[[str], AdminClient]
) -> None:
    started_drained = sdk(local_server(rpm=6000, drain_seconds=30))
    with pytest.raises(openai.RateLimitError):
        started_drained.conversations.create()
    base_url = local_server(rpm=6000)
    client = sdk(base_url)
    conversation = client.conversations.create()
    admin(base_url).drain(0.3)
    with pytest.raises(openai.RateLimitError) as limited:
        client.conversations.retrieve(conversation.id)
    assert int(limited.value.response.headers["retry-after-ms"]) <= 10  # one token at 100/s
    time.sleep(0.45)
    assert client.conversations.retrieve(conversation.id).id == conversation.id


def test_drain_needs_admin_changes_and_a_limit(
    local_server: ServerFactory, admin: Callable[[str], AdminClient]
) -> None:
    read_only = local_server(rpm=60, admin_changes=False)
    with pytest.raises(httpx2.HTTPStatusError) as refused:
        admin(read_only).drain(1.0)
    assert refused.value.response.status_code == 403
    with pytest.raises(ValueError, match="drain_seconds needs rpm"):
        ServerOptions(drain_seconds=1.0)


def test_without_rate_headers_answers_carry_none(
    local_server: ServerFactory, sdk: ClientFactory
) -> None:
    client = sdk(local_server(rpm=2, rate_headers=False))
    created = client.conversations.with_raw_response.create()
    client.conversations.retrieve(created.parse().id)
    with pytest.raises(openai.RateLimitError) as limited:
        client.conversations.retrieve(created.parse().id)
    for headers in (created.headers, limited.value.response.headers):
        assert not [name for name in headers if name.startswith("x-ratelimit")]
    assert int(limited.value.response.headers["retry-after"]) >= 1
