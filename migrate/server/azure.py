"""The local server's Azure flavour: what Azure OpenAI and Foundry answer, for rehearsals.

Built from Microsoft's REST reference, not from recorded Azure traffic (none exists here):

- Conversations at `/openai/v1/...` (the `/v1/...` of the OpenAI flavour); `api-version` is
  optional and may be `v1` or `preview`; `GET /openai/v1/conversations` lists conversations
  (`limit` 1..100, default 20, `order`, `after`) (learn.microsoft.com/rest/api/microsoft-foundry/
  azureopenai/conversations; ai.azure.com/api-reference/conversations/list-conversations).
- Auth: the key in the `api-key` header, or `Authorization: Bearer` (a key or an Entra ID
  token: the local server cannot check Entra tokens, so without a configured key it takes any).
- Assistants threads, read only, seeded from an export directory: Azure OpenAI's
  `/openai/threads...` (dated `api-version`, e.g. `2024-05-01-preview`) and a Foundry project's
  `/api/projects/{project}/threads...` (`api-version=v1`), both with the thread list
  `GET .../threads` (`limit`, `order`, `after`, `before`) the Agent Service documents
  (learn.microsoft.com/rest/api/aifoundry/aiagents/threads/list-threads). `api-version` is
  required there: without it Azure answers 400 `MissingApiVersionParameter`.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from migrate.server import validation
from migrate.server.app import LocalConversationsServer
from migrate.server.errors import ApiError
from migrate.server.http import error_response, json_response

logger = logging.getLogger(__name__)

V1_API_VERSIONS = ("v1", "preview")
_THREADS = re.compile(r"^(?:/openai|/api/projects/[^/]+)(/threads(?:/.*)?)$")
_ACCESS_DENIED = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide "
    "a valid key for an active subscription and use a correct regional API endpoint for your "
    "resource."
)


def azure_error(status: int, code: str, message: str) -> ApiError:
    """An error with Azure's `code` (Azure's bodies carry a code and a message)."""
    return ApiError(status, message, type="azure_error", code=code)


class ThreadsArchive:
    """Assistants threads (thread, messages, runs, run steps) read from export documents."""

    def __init__(self, documents: Sequence[dict[str, Any]]) -> None:
        self.threads: dict[str, dict[str, Any]] = {}
        for document in documents:
            thread = document.get("thread")
            if isinstance(thread, dict) and isinstance(thread.get("id"), str):
                self.threads[thread["id"]] = document

    @classmethod
    def from_directory(cls, directory: Path) -> ThreadsArchive:
        """Every `*.json` thread document in `directory` (as `migrate export-threads` writes)."""
        documents = []
        for path in sorted(directory.glob("*.json")):
            try:
                document = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                logger.warning("threads: skipping %s: %s", path, exc)
                continue
            if isinstance(document, dict):
                documents.append(document)
        return cls(documents)

    def answer(self, path: str, query: dict[str, str]) -> object:
        """The JSON answer to `GET <path>` (`path` starts at `/threads`)."""
        parts = path.strip("/").split("/")
        if len(parts) == 1:
            listed = sorted(
                (d["thread"] for d in self.threads.values()),
                key=lambda t: (t.get("created_at") or 0, t["id"]),
            )
            return _page(listed, query)
        document = self.threads.get(parts[1])
        if document is None:
            raise azure_error(404, "not_found", f"No thread found with id '{parts[1]}'.")
        if len(parts) == 2:
            return document["thread"]
        if parts[2:] == ["messages"]:
            return _page(_objects(document.get("messages")), query)
        if parts[2:] == ["runs"]:
            return _page(_objects(document.get("runs")), query)
        if len(parts) == 5 and parts[2] == "runs" and parts[4] == "steps":
            steps = [s for s in _objects(document.get("run_steps")) if s.get("run_id") == parts[3]]
            return _page(steps, query)
        raise azure_error(404, "404", "Resource not found")


class AzureFlavour:
    """ASGI app: Azure's paths, `api-version` and `api-key` in front of the local server."""

    def __init__(self, server: LocalConversationsServer) -> None:
        self.server = server
        options = server.options
        self._api_key = options.api_key.get_secret_value() if options.api_key else None
        self.threads = (
            ThreadsArchive.from_directory(options.threads_dir)
            if options.threads_dir is not None
            else ThreadsArchive([])
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_admin"):
            await self.server(scope, receive, send)
            return
        path: str = scope["path"]
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        app: ASGIApp
        try:
            scope = self._authorized(scope)
            version = query.get("api-version")
            if path == "/openai/v1" or path.startswith("/openai/v1/"):
                if version is not None and version not in V1_API_VERSIONS:
                    raise azure_error(
                        400, "BadRequest", f"API version '{version}' is not supported here."
                    )
                # The OpenAI flavour's pipeline (limits, faults, stats) under Azure's prefix.
                await self.server({**scope, "path": path.removeprefix("/openai")}, receive, send)
                return
            threads = _THREADS.match(path)
            if threads is None:
                raise azure_error(404, "404", "Resource not found")
            if not version:
                raise azure_error(
                    400,
                    "MissingApiVersionParameter",
                    "The api-version query parameter (?api-version=) is required for all requests.",
                )
            if scope["method"] != "GET":
                raise azure_error(405, "405", "The local server serves threads read only.")
            app = json_response(self.threads.answer(threads.group(1), query))
        except ApiError as error:
            app = error_response(error)
        await app(scope, receive, send)

    def _authorized(self, scope: Scope) -> Scope:
        """The scope with its `api-key` checked and turned into the bearer the server checks."""
        headers = dict(scope["headers"])
        key = headers.get(b"api-key")
        if key is None:
            if b"authorization" not in headers:
                raise azure_error(401, "401", _ACCESS_DENIED)
            return scope
        given = key.decode("latin-1")
        if self._api_key is not None and not secrets.compare_digest(
            given.encode(), self._api_key.encode()
        ):
            raise azure_error(401, "401", _ACCESS_DENIED)
        bearer = (b"authorization", b"Bearer " + (self._api_key or given).encode())
        others = [(n, v) for n, v in scope["headers"] if n not in (b"api-key", b"authorization")]
        return {**scope, "headers": [*others, bearer]}


def asgi_app(server: LocalConversationsServer) -> ASGIApp:
    """What to serve for `server`'s flavour."""
    return AzureFlavour(server) if server.options.flavour == "azure" else server


def _objects(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        value = value.get("data")
    return [v for v in value or [] if isinstance(v, dict)]


def _page(objects: list[dict[str, Any]], query: dict[str, str]) -> dict[str, Any]:
    """One page of an Assistants list (`objects` oldest first), as the API envelopes it."""
    limit = validation.parse_limit(query.get("limit"))
    ordered = objects if validation.parse_order(query.get("order")) == "asc" else objects[::-1]
    ids = [str(o.get("id")) for o in ordered]
    start, end = 0, len(ordered)
    for cursor, is_after in ((query.get("after"), True), (query.get("before"), False)):
        if cursor:
            if cursor not in ids:
                raise azure_error(404, "not_found", f"No object found with id '{cursor}'.")
            if is_after:
                start = ids.index(cursor) + 1
            else:
                end = ids.index(cursor)
    data = ordered[start:end][:limit]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0].get("id") if data else None,
        "last_id": data[-1].get("id") if data else None,
        "has_more": start + len(data) < end,
    }
