"""HTTP pieces the local server's apps share: JSON and error responses, the item list envelope, a
dropped connection, and a request's route (its path with the ids as placeholders)."""

from __future__ import annotations

import asyncio
import json
import re

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from migrate.server.errors import ApiError

_RAW_SEND_KEY = "chat_migrate.raw_send"


_ID_SEGMENT = re.compile(r"^/v1/conversations/[^/]+(/items(/[^/]+)?)?$")


_RESPONSE_SEGMENT = re.compile(r"^/v1/responses/[^/]+(/input_items)?$")


def route_of(method: str, path: str) -> str:
    """`POST /v1/conversations/{conversation_id}/items` for any concrete ids."""
    if _ID_SEGMENT.match(path):
        parts = path.split("/")
        parts[3] = "{conversation_id}"
        if len(parts) > 5:
            parts[5] = "{item_id}"
        path = "/".join(parts)
    elif _RESPONSE_SEGMENT.match(path):
        parts = path.split("/")
        parts[3] = "{response_id}"
        path = "/".join(parts)
    return f"{method} {path}"


def json_response(payload: object, status: int = 200) -> Response:
    """A compact JSON response."""
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(body, status_code=status, media_type="application/json")


def error_response(error: ApiError, headers: dict[str, str] | None = None) -> Response:
    """The OpenAI-style error body for `error`."""
    return Response(
        error.body_bytes(), status_code=error.status, media_type="application/json", headers=headers
    )


def list_body(
    items_json: list[str], first_id: str | None, last_id: str | None, more: bool
) -> bytes:
    """The item list envelope, built around items that are already JSON."""
    return (
        '{"object":"list","data":['
        + ",".join(items_json)
        + '],"first_id":'
        + json.dumps(first_id)
        + ',"has_more":'
        + ("true" if more else "false")
        + ',"last_id":'
        + json.dumps(last_id)
        + "}"
    ).encode()


class DropConnection(Response):
    """Not a response: closes the client's connection without sending a byte."""

    def __init__(self) -> None:
        super().__init__(status_code=500)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw_send = scope.get(_RAW_SEND_KEY)
        # uvicorn's `send` is a bound method of the request cycle, which holds the transport.
        cycle = getattr(raw_send, "__self__", None)
        transport = getattr(cycle, "transport", None)
        if transport is None:
            raise ConnectionAbortedError("the server cannot drop this connection")
        transport.abort()
        for _ in range(1000):
            if getattr(cycle, "disconnected", True):
                return
            await asyncio.sleep(0.001)
