"""Writes sent past the SDK's request layer (`migrate.replay.direct`) are the requests
`client.post` sends, and their failures mean what the SDK's do."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
from collections.abc import Callable
from typing import Any

import aiohttp
import httpx2
import pytest

from migrate.errors import CallAmbiguous, CallError, CallTimedOut, CallUnreachable
from migrate.replay.direct import DirectWrites
from migrate.replay.ratelimit import RateLimiter
from migrate.replay.target import Target, TargetConfig, open_target

BASE_URL = "http://target.test/v1"
SDK_ONLY_HEADERS = {"x-stainless-retry-count", "x-stainless-read-timeout"}
"""Headers only `client.post` sends: they describe the SDK's own retries."""
BATCH = [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "é"}]}]

Handler = Callable[[httpx2.Request], httpx2.Response]


def targets(handler: Handler) -> tuple[Target, Target]:
    """A target that writes directly and one that writes through `client.post`, sharing one
    SDK client whose HTTP client answers with `handler`."""
    import openai

    http = openai.DefaultAsyncHttpxClient(
        base_url=BASE_URL, timeout=httpx2.Timeout(5.0), transport=httpx2.MockTransport(handler)
    )
    client = openai.AsyncOpenAI(
        api_key="sk-test",
        base_url=BASE_URL,
        organization="org-1",
        project="proj-1",
        max_retries=0,
        http_client=http,
    )

    def target(writes: DirectWrites | None) -> Target:
        return Target(client, limiter=RateLimiter(), timeout=5.0, description="t", writes=writes)

    return target(DirectWrites(client, http)), target(None)


def test_a_direct_write_is_the_request_client_post_sends() -> None:
    sent: list[httpx2.Request] = []

    def answer(request: httpx2.Request) -> httpx2.Response:
        sent.append(request)
        if request.url.path.endswith("/items"):
            return httpx2.Response(200, json={"data": [{"id": "msg_1", **BATCH[0]}]})
        return httpx2.Response(200, json={"id": "conv_1", "object": "conversation"})

    async def both() -> None:
        for target in targets(answer):
            assert await target.create_conversation({"k": "v"}) == "conv_1"
            created = await target.create_items("conv_1", BATCH)
            assert created[0]["id"] == "msg_1"
            await target.update_conversation("conv_1", {"k": "w"})

    asyncio.run(both())
    direct, through_sdk = sent[:3], sent[3:]
    for mine, theirs in zip(direct, through_sdk, strict=True):
        assert (mine.method, mine.url, mine.content) == (theirs.method, theirs.url, theirs.content)
        assert mine.extensions["timeout"] == theirs.extensions["timeout"]
        sdk_headers = {k: v for k, v in theirs.headers.items() if k not in SDK_ONLY_HEADERS}
        assert dict(mine.headers.items()) == sdk_headers
    assert direct[0].headers["authorization"] == "Bearer sk-test"
    assert direct[0].headers["openai-organization"] == "org-1"
    assert json.loads(direct[1].content) == {"items": BATCH}


def _error_answer(status: int) -> Handler:
    def answer(request: httpx2.Request) -> httpx2.Response:
        body = {"error": {"message": f"said {status}", "type": "t", "code": f"c{status}"}}
        return httpx2.Response(status, json=body, headers={"retry-after-ms": "1500"})

    return answer


def _raising(exc: Exception) -> Handler:
    def answer(request: httpx2.Request) -> httpx2.Response:
        raise exc

    return answer


def _failures(handler: Handler) -> list[tuple[Any, ...]]:
    """How each path's write fails: the error's class and everything the replayer reads."""
    seen: list[tuple[Any, ...]] = []

    async def both() -> None:
        for target in targets(handler):
            with pytest.raises(CallError) as caught:
                await target.create_items("conv_1", BATCH)
            error = caught.value
            seen.append(
                (
                    type(error),
                    error.kind,
                    error.message,
                    error.status,
                    error.code,
                    error.retry_after,
                    error.api_shaped,
                    type(error.__cause__),
                )
            )

    asyncio.run(both())
    return seen


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422, 429, 500, 503])
def test_an_error_answer_fails_a_direct_write_as_it_fails_client_post(status: int) -> None:
    direct, through_sdk = _failures(_error_answer(status))
    assert direct == through_sdk
    assert direct[3] == status


@pytest.mark.parametrize(
    "exc",
    [
        httpx2.ConnectError("refused"),
        httpx2.ReadTimeout("slow"),
        httpx2.ConnectTimeout("no route"),
        httpx2.RemoteProtocolError("dropped"),
        httpx2.ReadError("reset"),
        TimeoutError("timed out"),
        aiohttp.ServerDisconnectedError(),  # what the SDK's transport lets through as it is
        aiohttp.ClientPayloadError("truncated"),
    ],
    ids=lambda exc: type(exc).__name__,
)
def test_a_failed_connection_fails_a_direct_write_as_it_fails_client_post(exc: Exception) -> None:
    direct, through_sdk = _failures(_raising(exc))
    assert direct == through_sdk


@pytest.mark.parametrize(
    ("config", "direct"),
    [
        (TargetConfig(kind="openai", base_url=BASE_URL), True),
        (TargetConfig(kind="openai", base_url=BASE_URL + "?api-version=1"), False),
        (TargetConfig(kind="azure", azure_endpoint="https://r.openai.azure.com"), False),
    ],
    ids=["openai", "query in base URL", "azure"],
)
def test_only_fixed_key_clients_without_a_query_write_directly(
    config: TargetConfig, direct: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "k")

    async def writes() -> DirectWrites | None:
        async with open_target(config, job_dir=None) as target:
            return target.writes

    assert (asyncio.run(writes()) is not None) is direct


async def _silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(65536)
    await asyncio.sleep(2)  # longer than the call's timeout


async def _drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(65536)  # the request arrived: the target may have applied it


async def _reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(65536)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _closing(serve: Callable[..., Any]) -> Callable[..., Any]:
    """`serve`, then the connection closed (so that no socket outlives the test)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await serve(reader, writer)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    return handle


def _write_failure(serve: Callable[..., Any] | None) -> list[tuple[type[CallError], str]]:
    """How a write to a real socket fails on the job's HTTP client (direct and through
    `client.post`): `serve` handles each connection; None refuses them."""

    async def both() -> list[tuple[type[CallError], str]]:
        server = None
        if serve is None:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]  # closed again: nothing listens there
        else:
            server = await asyncio.start_server(_closing(serve), "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
        config = TargetConfig(kind="openai", base_url=f"http://127.0.0.1:{port}/v1", timeout=0.5)
        seen: list[tuple[type[CallError], str]] = []
        try:
            async with open_target(config, job_dir=None) as direct:
                through_sdk = Target(
                    direct.client, limiter=RateLimiter(), timeout=0.5, description="t"
                )
                for target in (direct, through_sdk):
                    with pytest.raises(CallError) as caught:
                        await target.create_items("conv_1", BATCH)
                    seen.append((type(caught.value), caught.value.kind))
        finally:
            if server is not None:
                server.close()
                await server.wait_closed()
        return seen

    return asyncio.run(both())


@pytest.mark.parametrize(
    ("serve", "expected"),
    [
        (None, (CallUnreachable, "not_applied")),
        (_silent, (CallTimedOut, "ambiguous")),
        (_drop, (CallAmbiguous, "ambiguous")),
        (_reset, (CallAmbiguous, "ambiguous")),
    ],
    ids=["refused", "no answer", "dropped after the request", "reset after the request"],
)
def test_only_a_write_that_never_left_counts_as_not_applied(
    serve: Callable[..., Any] | None, expected: tuple[type[CallError], str]
) -> None:
    # The HTTP client's transport names every lost connection a connect timeout; a write the
    # target received and then dropped must still count as ambiguous, never as not sent.
    assert _write_failure(serve) == [expected, expected]
