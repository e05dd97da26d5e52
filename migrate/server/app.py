"""The local Conversations API as an ASGI app (Starlette), with the rehearsal switches around it.

Every `/v1` request goes through, in order: auth (401), the rate limiter (429), latency, an
ongoing 503 burst, and, for writes (POST), the fault drawn for it. Faults that strike after the
commit are applied by the endpoint once its transaction has committed; `apply_late` holds the
write before it is applied, in a task of its own that no disconnect or cancellation stops.
`/_admin` serves the counters, the commit log and the fault settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import math
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from migrate.server import tokens, validation
from migrate.server.errors import (
    ApiError,
    conversation_not_found,
    item_not_found,
    overloaded,
    server_error,
)
from migrate.server.faults import FaultInjector, Latency, RateDecision, TokenBucket
from migrate.server.http import (
    _RAW_SEND_KEY,
    DropConnection,
    error_response,
    json_response,
    list_body,
    route_of,
)
from migrate.server.ids import request_id
from migrate.server.options import FaultKind, FaultSettings, ServerOptions
from migrate.server.responses import StoredResponses, response_routes
from migrate.server.stats import ServerStats
from migrate.server.store import ConversationStore, ItemNotFoundError

logger = logging.getLogger(__name__)

T = TypeVar("T")

_FAULT_KEY = "chat_migrate.fault"


_NO_AUTH_MESSAGE = (
    "You didn't provide an API key. You need to provide your API key in an Authorization "
    "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
)


class LocalConversationsServer:
    """The ASGI app: Conversations endpoints under `/v1`, admin endpoints under `/_admin`."""

    def __init__(self, options: ServerOptions, store: ConversationStore) -> None:
        self.options = options
        self.store = store
        self.stats = ServerStats()
        self.faults = FaultInjector(options.faults, seed=options.seed)
        self._bucket = TokenBucket(options.rpm)
        if options.drain_seconds:
            self._bucket.drain_from_first(options.drain_seconds)
        self._latency = Latency(options.latency_ms, options.jitter_ms, seed=options.seed)
        self._api_key = options.api_key.get_secret_value() if options.api_key else None
        # One writer thread: SQLite takes one writer at a time, so queueing here beats
        # queueing on the file lock. Readers run beside it (WAL).
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="conversations-writer")
        self._readers = ThreadPoolExecutor(4, thread_name_prefix="conversations-reader")
        self._late_writes: set[asyncio.Task[Any]] = set()
        conversation = "/v1/conversations/{conversation_id}"
        # OpenAI cannot list conversations; Azure can (`migrate.server.azure`).
        listing = (
            [Route("/v1/conversations", self.list_conversations, methods=["GET"])]
            if options.flavour == "azure"
            else []
        )
        self._router = Starlette(
            routes=[
                *listing,
                Route("/v1/conversations", self.create_conversation, methods=["POST"]),
                Route(conversation, self.retrieve_conversation, methods=["GET"]),
                Route(conversation, self.update_conversation, methods=["POST"]),
                Route(conversation, self.delete_conversation, methods=["DELETE"]),
                Route(f"{conversation}/items", self.create_items, methods=["POST"]),
                Route(f"{conversation}/items", self.list_items, methods=["GET"]),
                Route(f"{conversation}/items/{{item_id}}", self.retrieve_item, methods=["GET"]),
                Route(f"{conversation}/items/{{item_id}}", self.delete_item, methods=["DELETE"]),
                Route("/v1/responses/input_tokens", self.count_input_tokens, methods=["POST"]),
                Route("/_admin/stats", self.admin_stats, methods=["GET"]),
                Route("/_admin/log", self.admin_log, methods=["GET"]),
                Route("/_admin/faults", self.admin_faults, methods=["GET", "POST"]),
                Route("/_admin/drain", self.admin_drain, methods=["POST"]),
                *(
                    response_routes(StoredResponses(options.responses_dir))
                    if options.responses_dir is not None
                    else []
                ),
            ],
            exception_handlers={
                ApiError: self._api_error,
                HTTPException: self._http_error,
                ClientDisconnect: self._client_gone,
                Exception: self._unexpected_error,
            },
        )

    @property
    def late_writes_pending(self) -> int:
        """Writes held by `apply_late` that are not applied yet."""
        return len(self._late_writes)

    def close(self) -> None:
        """Stop the worker threads (the store is closed by its owner)."""
        self._writer.shutdown(wait=True)
        self._readers.shutdown(wait=True)

    # -- the request pipeline -----------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._router(scope, receive, send)
            return
        scope[_RAW_SEND_KEY] = send
        path: str = scope["path"]
        if path.startswith("/_admin"):
            await self._admin_request(scope, receive, send)
        else:
            await self._api_request(scope, receive, send)

    async def _admin_request(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._api_key is not None:
            denied = self._authorize(scope)
            if denied is not None:
                await error_response(denied)(scope, receive, send)
                return
        await self._router(scope, receive, send)

    async def _api_request(self, scope: Scope, receive: Receive, send: Send) -> None:
        method: str = scope["method"]
        route = route_of(method, scope["path"])
        status = "dropped"
        decision: RateDecision | None = None

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = str(message["status"])
                headers = list(message.get("headers", []))
                if self.options.rate_headers:
                    headers.extend((decision or self._bucket.peek()).headers())
                headers.append((b"x-request-id", request_id().encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            denied = self._authorize(scope)
            if denied is not None:
                await error_response(denied)(scope, receive, send_with_headers)
                return
            decision = self._bucket.take()
            if not decision.allowed:
                await self._rate_limited(decision)(scope, receive, send_with_headers)
                return
            delay = self._latency.next_delay()
            if delay > 0:
                await asyncio.sleep(delay)
            if self.faults.in_burst():
                await error_response(overloaded())(scope, receive, send_with_headers)
                return
            if method == "POST":
                fault = self.faults.draw_for_write()
                if fault == "burst_503":
                    await error_response(overloaded())(scope, receive, send_with_headers)
                    return
                if fault == "error_before":
                    self.faults.record(fault)
                    await error_response(server_error())(scope, receive, send_with_headers)
                    return
                scope[_FAULT_KEY] = fault
            await self._router(scope, receive, send_with_headers)
        finally:
            self.stats.count_request(route, status)

    def _authorize(self, scope: Scope) -> ApiError | None:
        header = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                header = value
                break
        scheme, _, token = header.decode("latin-1").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return ApiError(401, _NO_AUTH_MESSAGE)
        if self._api_key is not None and not secrets.compare_digest(
            token.encode(), self._api_key.encode()
        ):
            return ApiError(401, "Incorrect API key provided.", code="invalid_api_key")
        return None

    def _rate_limited(self, decision: RateDecision) -> Response:
        wait = decision.retry_after_seconds
        error = ApiError(
            429,
            f"Rate limit reached for requests on the local server: Limit {decision.limit} "
            f"per minute. Please try again in {wait:.3f}s.",
            type="requests",
            code="rate_limit_exceeded",
        )
        headers = {
            "retry-after": str(max(1, math.ceil(wait))),
            "retry-after-ms": str(max(1, math.ceil(wait * 1000))),
        }
        return error_response(error, headers)

    # -- after a commit -----------------------------------------------------------------

    async def _committed(
        self,
        request: Request,
        operation: str,
        conversation_id: str,
        item_ids: list[str],
        payload: Response,
    ) -> Response:
        """Log the commit, then answer, or apply the fault planned for this request."""
        fault: FaultKind | None = request.scope.get(_FAULT_KEY)
        self.stats.record_commit(operation, conversation_id, item_ids, fault=fault)
        if fault is None:
            return payload
        self.faults.record(fault)
        if fault == "apply_late":
            return payload
        logger.info("injected %s after %s on %s", fault, operation, conversation_id)
        if fault == "error_after_commit":
            return error_response(server_error())
        if fault == "drop_after_commit":
            return DropConnection()
        await self._stall(request)
        return payload

    async def _stall(self, request: Request) -> None:
        async def until_disconnected() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(until_disconnected(), self.faults.settings.stall_seconds)

    async def _write(self, function: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writer, functools.partial(function, *args))

    async def _apply(self, request: Request, function: Callable[..., T], *args: Any) -> T:
        """Apply a write; under `apply_late`, after a hold that outlives the client."""
        if request.scope.get(_FAULT_KEY) != "apply_late":
            return await self._write(function, *args)
        delay = self.faults.settings.late_seconds

        async def late() -> T:
            await asyncio.sleep(delay)
            return await self._write(function, *args)

        # Its own task, kept referenced: the write happens whatever becomes of the request.
        task = asyncio.get_running_loop().create_task(late())
        self._late_writes.add(task)
        task.add_done_callback(self._late_writes.discard)
        return await asyncio.shield(task)

    async def _read(self, function: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, functools.partial(function, *args))

    # -- endpoints ----------------------------------------------------------------------

    async def create_conversation(self, request: Request) -> Response:
        """`POST /v1/conversations`."""
        body = validation.parse_json_body(await request.body())
        metadata, items = validation.parse_create_conversation(body)
        record, created = await self._apply(
            request, self.store.create_conversation, metadata, items
        )
        item_ids = [item.id for item in created]
        response = json_response(record.api_object())
        return await self._committed(request, "conversations.create", record.id, item_ids, response)

    async def list_conversations(self, request: Request) -> Response:
        """`GET /v1/conversations` (Azure flavour only): newest first unless `order=asc`."""
        query = request.query_params
        limit = validation.parse_limit(query.get("limit"))
        order = validation.parse_order(query.get("order"))
        after = query.get("after") or None
        page = await self._read(
            functools.partial(self.store.list_conversations, limit=limit, order=order, after=after)
        )
        if page is None:
            raise conversation_not_found(str(after))
        records, more = page
        return json_response(
            {
                "object": "list",
                "data": [record.api_object() for record in records],
                "first_id": records[0].id if records else None,
                "last_id": records[-1].id if records else None,
                "has_more": more,
            }
        )

    async def retrieve_conversation(self, request: Request) -> Response:
        """`GET /v1/conversations/{conversation_id}`."""
        conversation_id = request.path_params["conversation_id"]
        record = await self._read(self.store.get_conversation, conversation_id)
        if record is None:
            raise conversation_not_found(conversation_id)
        return json_response(record.api_object())

    async def update_conversation(self, request: Request) -> Response:
        """`POST /v1/conversations/{conversation_id}`: replace the metadata."""
        conversation_id = request.path_params["conversation_id"]
        body = validation.parse_json_body(await request.body())
        metadata = validation.parse_update_conversation(body)
        record = await self._apply(request, self.store.update_metadata, conversation_id, metadata)
        if record is None:
            raise conversation_not_found(conversation_id)
        response = json_response(record.api_object())
        return await self._committed(request, "conversations.update", record.id, [], response)

    async def delete_conversation(self, request: Request) -> Response:
        """`DELETE /v1/conversations/{conversation_id}`."""
        conversation_id = request.path_params["conversation_id"]
        if not await self._write(self.store.delete_conversation, conversation_id):
            raise conversation_not_found(conversation_id)
        self.stats.record_commit("conversations.delete", conversation_id, [])
        return json_response(
            {"id": conversation_id, "object": "conversation.deleted", "deleted": True}
        )

    async def create_items(self, request: Request) -> Response:
        """`POST /v1/conversations/{conversation_id}/items`."""
        conversation_id = request.path_params["conversation_id"]
        validation.parse_include(request.query_params.getlist("include[]"))
        body = validation.parse_json_body(await request.body())
        items = validation.parse_create_items(body)
        created = await self._apply(request, self.store.add_items, conversation_id, items)
        if created is None:
            raise conversation_not_found(conversation_id)
        item_ids = [item.id for item in created]
        listed = list_body([item.body_json for item in created], item_ids[0], item_ids[-1], False)
        response = Response(listed, media_type="application/json")
        return await self._committed(request, "items.create", conversation_id, item_ids, response)

    async def list_items(self, request: Request) -> Response:
        """`GET /v1/conversations/{conversation_id}/items`."""
        conversation_id = request.path_params["conversation_id"]
        query = request.query_params
        validation.parse_include(query.getlist("include[]"))
        limit = validation.parse_limit(query.get("limit"))
        order = validation.parse_order(query.get("order"))
        after = query.get("after") or None
        try:
            page = await self._read(
                functools.partial(
                    self.store.list_items, conversation_id, limit=limit, order=order, after=after
                )
            )
        except ItemNotFoundError as exc:
            raise item_not_found(exc.item_id, param="after") from None
        if page is None:
            raise conversation_not_found(conversation_id)
        body = list_body(page.items_json, page.first_id, page.last_id, page.has_more)
        return Response(body, media_type="application/json")

    async def retrieve_item(self, request: Request) -> Response:
        """`GET /v1/conversations/{conversation_id}/items/{item_id}`."""
        conversation_id = request.path_params["conversation_id"]
        item_id = request.path_params["item_id"]
        validation.parse_include(request.query_params.getlist("include[]"))
        try:
            item_json = await self._read(self.store.get_item, conversation_id, item_id)
        except LookupError:
            raise conversation_not_found(conversation_id) from None
        if item_json is None:
            raise item_not_found(item_id)
        return Response(item_json.encode(), media_type="application/json")

    async def delete_item(self, request: Request) -> Response:
        """`DELETE .../items/{item_id}`: delete one item; answers with the conversation."""
        conversation_id = request.path_params["conversation_id"]
        item_id = request.path_params["item_id"]
        try:
            record = await self._write(self.store.delete_item, conversation_id, item_id)
        except ItemNotFoundError:
            raise item_not_found(item_id) from None
        if record is None:
            raise conversation_not_found(conversation_id)
        self.stats.record_commit("items.delete", conversation_id, [])
        return json_response(record.api_object())

    async def count_input_tokens(self, request: Request) -> Response:
        """`POST /v1/responses/input_tokens`: the input tokens of a conversation (and input)."""
        body = validation.parse_json_body(await request.body())

        def page(
            conversation_id: str, after: str | None
        ) -> tuple[list[dict[str, Any]], str | None] | None:
            found = self.store.list_items(
                conversation_id, limit=tokens.PAGE, order="asc", after=after
            )
            if found is None:
                return None
            listed = [json.loads(item) for item in found.items_json]
            return listed, found.last_id if found.has_more else None

        counted = await self._read(tokens.count_input_tokens, body, page)
        return json_response(counted)

    # -- admin --------------------------------------------------------------------------

    async def admin_stats(self, request: Request) -> Response:
        """`GET /_admin/stats`: requests by route and status, faults, commits."""
        return json_response(
            {
                "requests": self.stats.requests(),
                "faults": dict(self.faults.injected),
                "rate_limited": self.stats.count("429"),
                "items_committed": self.stats.items_committed,
                "conversations_created": self.stats.conversations_created,
                "late_writes_pending": self.late_writes_pending,
            }
        )

    async def admin_log(self, request: Request) -> Response:
        """`GET /_admin/log?after=N`: committed writes, oldest first."""
        try:
            after = int(request.query_params.get("after", "0"))
        except ValueError:
            raise ApiError(400, "Invalid 'after': expected an integer.", param="after") from None
        return json_response({"object": "list", "data": self.stats.log(after=after)})

    async def admin_faults(self, request: Request) -> Response:
        """`GET|POST /_admin/faults`: read or replace the fault settings (and script)."""
        if request.method == "POST":
            self._require_admin_changes()
            try:
                settings = FaultSettings.model_validate_json(await request.body())
            except ValidationError as exc:
                raise ApiError(400, f"Invalid fault settings: {exc}") from None
            self.faults.configure(settings)
            logger.info("fault settings changed: %s", settings.model_dump_json())
        return json_response(self.faults.settings.model_dump(mode="json"))

    async def admin_drain(self, request: Request) -> Response:
        """`POST /_admin/drain {"seconds": S}`: another client spends the whole limit for S s."""
        self._require_admin_changes()
        try:
            body = json.loads(await request.body() or b"{}")
            seconds = float(body["seconds"])
        except (ValueError, TypeError, KeyError):
            raise ApiError(400, 'Expected {"seconds": S} with S a number.') from None
        if not 0 <= seconds <= 3600:
            raise ApiError(400, "'seconds' must be between 0 and 3600.", param="seconds")
        self._bucket.drain(seconds)
        logger.info("rate limit drained by another client for %gs", seconds)
        return json_response({"drained_seconds": seconds})

    def _require_admin_changes(self) -> None:
        if not self.options.admin_changes:
            raise ApiError(
                403,
                "Fault settings are read-only on this server: start it with --admin "
                "(or --api-key) to change them.",
                code="admin_disabled",
            )

    # -- errors -------------------------------------------------------------------------

    async def _api_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return error_response(exc)

    async def _http_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        message = f"Invalid URL ({request.method} {request.url.path})"
        return error_response(ApiError(404, message))

    async def _client_gone(self, request: Request, exc: Exception) -> Response:
        # The client stopped sending its request (a job stopping, a killed process): nothing
        # was applied and no one reads the answer. Not the server's error.
        logger.debug("client gone during %s %s", request.method, request.url.path)
        return Response(status_code=499)

    async def _unexpected_error(self, request: Request, exc: Exception) -> Response:
        logger.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(server_error())


def create_app(options: ServerOptions, store: ConversationStore) -> LocalConversationsServer:
    """The local server's ASGI app over `store`."""
    return LocalConversationsServer(options, store)
