"""Writes sent as pre-built requests on the SDK client's own HTTP client.

`client.post` spends most of a write's client CPU before and after the network: request
option models, header merging, URL parsing, the answer's wrapper (about 0.8 of 1.1 ms per
20-item call against an in-memory transport, against 0.25 ms for sending the same request on
the same `httpx2` client). A write here is one `httpx2.Request` built from what the SDK client
holds, read through its public attributes (the base URL, the default headers and the auth
headers, over the `httpx2` client's own), sent on the `httpx2` client the SDK itself sends on
(`http_client`, made here and passed to the SDK so that we hold it: the SDK's own
`DefaultAioHttpClient`, reads and deletes included). A failed
answer becomes the SDK's own error (`_make_status_error_from_response`, the one private name
used), so what a failure means (`migrate.replay.failures`) does not depend on the path a
call took.

Only for a client whose authentication is a fixed API key in a header: the clients
`migrate.replay.target` builds for `openai` and plain `local` targets. Azure clients, whose
Entra token may be refreshed per request, and base URLs with a query (a proxy's
`api-version`) send through `client.post`, as do reads and deletes. What the SDK adds that
these requests leave out: its `X-Stainless-Retry-Count` and `X-Stainless-Read-Timeout`
headers, which only describe its own retries.
"""

from __future__ import annotations

import ssl
import warnings

import anyio
import httpx2
import openai
from openai import AsyncOpenAI

CONNECTION_ERRORS = (httpx2.RequestError, ssl.SSLError, anyio.EndOfStream)
"""What the SDK reports as `APIConnectionError` (timeouts, a kind of `RequestError`, aside).
Like the SDK, what else the transport raises goes up as it is (`migrate.replay.failures`)."""

# aiohttp warns of any body over 1 MB passed as bytes (a batch with images inline): the body is
# in memory already, and the event loop's transport buffers what the socket does not take.
warnings.filterwarnings("ignore", "Sending a large body directly", ResourceWarning)


def http_client(base_url: str, timeout: httpx2.Timeout) -> httpx2.AsyncClient:
    """The SDK's `httpx2` client on its `aiohttp` transport (`openai[aiohttp]`, the SDK's
    `DefaultAioHttpClient`: its limits, redirects and timeout), which parses answers in C where
    the default transport does it in Python: about a third less client CPU per call. What its
    failures mean is read from the `aiohttp` error behind them (`migrate.replay.failures`)."""
    return openai.DefaultAioHttpClient(base_url=base_url, timeout=timeout)


class DirectWrites:
    """POSTs of JSON bytes through an `AsyncOpenAI` client's HTTP client, past its request
    layer. `client` must authenticate with a fixed API key, and `http` be its `http_client`."""

    def __init__(self, client: AsyncOpenAI, http: httpx2.AsyncClient) -> None:
        sdk_headers = {**client.default_headers, **client.auth_headers}
        self._headers = httpx2.Headers(http.headers)  # what `http` adds to what it sends
        self._headers.update({k: v for k, v in sdk_headers.items() if isinstance(v, str)})
        self._base_url = str(client.base_url).rstrip("/")
        self._client = client
        self._http = http

    async def post(self, path: str, content: bytes, *, timeout: float) -> httpx2.Response:
        """POST `content` to `path` under the base URL; the answer, or the SDK's error."""
        request = httpx2.Request(
            "POST",
            self._base_url + path,
            content=content,
            headers=self._headers,
            extensions={"timeout": httpx2.Timeout(timeout).as_dict()},
        )
        try:
            response = await self._http.send(request)
        except httpx2.TimeoutException as exc:
            raise openai.APITimeoutError(request=request) from exc
        except CONNECTION_ERRORS as exc:
            raise openai.APIConnectionError(request=request) from exc
        if not response.is_success:
            raise self._client._make_status_error_from_response(response)
        return response
