"""What a failed call means (`CallError.kind`, from the SDK's error), and the retries of reads and
deletes, which are safe to repeat."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp
import httpx2
import openai

from migrate.errors import (
    CallAmbiguous,
    CallError,
    CallFatal,
    CallNotFound,
    CallRateLimited,
    CallRejected,
    CallTimedOut,
    CallUnreachable,
)
from migrate.replay.ratelimit import retry_after_seconds

UNWRAPPED_ERRORS = (aiohttp.ClientError, TimeoutError)
"""What the SDK's `aiohttp` transport raises that the SDK lets through as it is (the `aiohttp`
errors it has no `httpx2` class for, a plain timeout) instead of an `APIConnectionError`."""


def classify(exc: openai.APIError | aiohttp.ClientError | TimeoutError) -> CallError:
    """Map an SDK error (or one of `UNWRAPPED_ERRORS`) to what the replayer may do about it."""
    if isinstance(exc, openai.APIStatusError):
        error = _classify_status(exc)
        error.api_shaped = isinstance(exc.body, dict) and isinstance(exc.body.get("message"), str)
        return error
    cause = exc.__cause__ if isinstance(exc, openai.APIError) else exc
    origin = _aiohttp_origin(exc)
    if origin is not None:
        return _classify_aiohttp(origin)
    if isinstance(cause, httpx2.ConnectError | httpx2.ConnectTimeout | httpx2.PoolTimeout):
        return CallUnreachable(f"cannot connect: {cause.__class__.__name__}: {cause}")
    if isinstance(exc, openai.APITimeoutError) or isinstance(cause, TimeoutError):
        return CallTimedOut("the call timed out")
    detail = f"{cause.__class__.__name__}: {cause}" if cause is not None else str(exc)
    return CallAmbiguous(f"connection lost: {detail}")


def _aiohttp_origin(exc: BaseException) -> aiohttp.ClientError | None:
    """The `aiohttp` error behind an SDK error, when the client sends through `aiohttp`."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, aiohttp.ClientError):
            return seen
        seen = seen.__cause__
    return None


def _classify_aiohttp(origin: aiohttp.ClientError) -> CallError:
    """What an `aiohttp` failure means, from its own class: the SDK's transport reports every
    lost connection as `httpx2.ConnectTimeout`, including one dropped after the request was
    sent (which the target may have applied), so its `httpx2` class cannot tell."""
    detail = f"{origin.__class__.__name__}: {origin}"
    # Raised while connecting (or waiting for a connection), before any byte of the request.
    if isinstance(origin, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError):
        return CallUnreachable(f"cannot connect: {detail}")
    if isinstance(origin, aiohttp.ServerTimeoutError):
        return CallTimedOut("the call timed out")
    return CallAmbiguous(f"connection lost: {detail}")


def _classify_status(exc: openai.APIStatusError) -> CallError:
    status = exc.status_code
    message = _api_message(exc)
    code = exc.code
    if status == 429:
        if code == "insufficient_quota":
            return CallFatal(message, status=status, code=code)
        retry_after = retry_after_seconds(exc.response.headers)
        return CallRateLimited(message, status=status, code=code, retry_after=retry_after)
    if status in (401, 403):
        return CallFatal(message, status=status, code=code)
    if status == 404:
        return CallNotFound(message, status=status, code=code)
    if status in (408, 409) or status >= 500:
        return CallAmbiguous(message, status=status, code=code)
    return CallRejected(message, status=status, code=code)


def _api_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return f"{exc.status_code}: {body['message']}"
    return exc.message


READ_ATTEMPTS = 6
"""Attempts of one listing or deletion (safe to repeat) before giving up on it; a 429 is not
an attempt: it only says to wait."""


async def with_retries(call: Callable[[], Any]) -> Any:
    """A read or a delete, retried on anything that may pass (they are safe to repeat)."""
    attempt = 0
    while True:
        try:
            return await call()
        except CallError as error:
            limited = error.status == 429 and error.kind == "not_applied"
            if not limited:
                attempt += 1
            if error.kind not in ("not_applied", "ambiguous") or attempt >= READ_ATTEMPTS:
                raise
            if error.retry_after is None:
                await asyncio.sleep(min(8.0, 0.25 * 2 ** max(0, attempt - 1)))
