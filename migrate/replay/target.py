"""The target: a Conversations API reached through the official `openai` SDK.

Either the OpenAI API (or any Conversations-compatible server at `base_url`), or the local
server started in-process for the job (`kind="local"`). Every call goes through `AsyncOpenAI`
with the SDK's retries off: `migrate.replay` retries by kind of failure, which this module
classifies (`CallError.kind`). Item writes skip the SDK's request transform (we validate items
ourselves when planning); the SDK still supplies base URL, auth, headers and error classes. On
a client with a fixed API key, writes also skip its request layer (`migrate.replay.direct`).

What a failed call means is `migrate.replay.failures`; how the target stores what we send
(`item_difference`), which reconciliation and `verify` compare, is `migrate.replay.stored`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx2
import openai
from openai import AsyncOpenAI
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import SchemaValidator, core_schema, from_json, to_json

from adapters.azure import AzureAuth, split_url
from migrate.errors import (
    CallAmbiguous,
    CallError,
    CallFatal,
    CallNotApplied,
    CallNotFound,
    CallRateLimited,
    CallRejected,
    ConfigError,
    TargetRefusedError,
    TargetUnreachableError,
)
from migrate.replay.azure import CLOCK_SLACK_SECONDS, azure_client, conversations_url, matches
from migrate.replay.direct import DirectWrites, http_client
from migrate.replay.failures import UNWRAPPED_ERRORS, classify
from migrate.replay.ratelimit import RateLimiter

logger = logging.getLogger(__name__)

OPENAI_BASE_URL = "https://api.openai.com/v1"
LIST_PAGE_SIZE = 100
PREFLIGHT_ID = "conv_migrate_preflight_does_not_exist"
"""The conversation the preflight reads: it cannot exist, so the answer is a 404."""
PREFLIGHT_TIMEOUT = 8.0
"""Seconds the preflight waits (a wrong `--base-url` must fail fast)."""
LIST_INCLUDE = ["message.input_image.image_url"]
"""Listed items leave image URLs out unless asked for them; verification compares them."""
_CREATED_IDS = SchemaValidator(
    core_schema.typed_dict_schema(
        {
            "data": core_schema.typed_dict_field(
                core_schema.list_schema(
                    core_schema.typed_dict_schema(
                        {
                            "id": core_schema.typed_dict_field(
                                core_schema.any_schema(), required=False
                            )
                        },
                        extra_behavior="ignore",
                    )
                ),
                required=False,
            )
        },
        extra_behavior="ignore",
    )
)
"""An append's answer read down to its items' ids: the items echo what was sent, which the
replayer does not read, so they are never made into Python objects."""


class TargetConfig(BaseModel):
    """Where a job writes and how it talks to it. Holds no secret: the key is read from env."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["local", "openai", "azure"] = "local"
    base_url: str | None = None
    """`openai` only: a Conversations-compatible server; else `OPENAI_BASE_URL` or the API."""
    azure_endpoint: str | None = None
    """`azure` only: the resource or Foundry project endpoint (`migrate.replay.azure`)."""
    organization: str | None = None
    project: str | None = None
    timeout: float = 60.0
    """Seconds before a call counts as timed out (and, for a write, as ambiguous)."""
    max_rate: float | None = None
    """Requests per second never to exceed; None lets the target's signals decide."""
    server_options: dict[str, Any] = Field(default_factory=dict)
    """`local` only: keyword options for the embedded server (latency, faults, rate limit)."""
    unreachable_after: float = Field(default=300.0, gt=0)
    """Seconds during which the target answers no call at all (refused connections,
    timeouts) before the job stops (exit 3) instead of failing conversations for it."""


def resolve_base_url(config: TargetConfig) -> str:
    """The base URL an `openai` target writes to (flag, then `OPENAI_BASE_URL`, then the API)."""
    if config.kind == "local":
        raise ConfigError("a local target's base URL is known only once its server runs")
    if config.kind == "azure":
        return conversations_url(config.azure_endpoint or "")[0]
    return config.base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_BASE_URL


def validate_target(config: TargetConfig) -> None:
    """Refuse combinations that cannot work, before anything is planned or written."""
    if config.kind == "local":
        if config.base_url is not None:
            raise ConfigError(
                "--base-url needs --target openai", hint="the local target runs its own server"
            )
        return
    if config.server_options:
        raise ConfigError("server options (latency, faults) apply to --target local only")
    if config.kind == "azure":
        if not config.azure_endpoint:
            raise ConfigError(
                "--target azure needs --azure-endpoint",
                hint="the resource (https://NAME.openai.azure.com) or Foundry project endpoint",
            )
        if config.base_url is not None:
            raise ConfigError("--base-url is for --target openai; Azure takes --azure-endpoint")
        return
    if config.azure_endpoint is not None:
        raise ConfigError("--azure-endpoint needs --target azure")
    base_url = resolve_base_url(config)
    if _is_openai(base_url) and not os.environ.get("OPENAI_API_KEY"):
        raise ConfigError(
            "--target openai needs an API key", hint="set OPENAI_API_KEY in the environment"
        )


def describe_target(config: TargetConfig, base_url: str | None = None) -> str:
    """One secret-free line naming where writes go."""
    if config.kind == "local":
        where = f" at {base_url}" if base_url else ""
        return f"local Conversations server{where}"
    url = base_url or resolve_base_url(config)
    if config.kind == "azure":
        return f"Azure OpenAI Conversations at {url}"
    name = "OpenAI API" if _is_openai(url) else "Conversations-compatible server"
    extra = "".join(
        f", {label} {value}"
        for label, value in (("organization", config.organization), ("project", config.project))
        if value
    )
    return f"{name} at {url}{extra}"


class Target:
    """Raw Conversations calls through one `AsyncOpenAI` client and one shared rate limiter."""

    def __init__(
        self,
        client: AsyncOpenAI,
        *,
        limiter: RateLimiter,
        timeout: float,
        description: str,
        unreachable_after: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        can_list_conversations: bool = False,
        writes: DirectWrites | None = None,
    ) -> None:
        self.client = client
        self.writes = writes
        """Sends the writes past the SDK's request layer (None: every call by `client`)."""
        self.can_list_conversations = can_list_conversations
        """The target lists conversations (Azure): a lost create can be found, not orphaned."""
        self.limiter = limiter
        self.timeout = timeout
        self.description = description
        self.unreachable_after = unreachable_after
        self.clock = clock
        self.calls = 0
        self.last_answer = clock()
        self.silent_since: tuple[float, float] | None = None
        """(clock, wall time) of the first call that got no answer since the last answer."""
        self.write_guard: Callable[[], None] | None = None
        """Called right before each write is sent; raises to keep it from being sent."""
        self._base_url: str | None = None

    def _url(self, path: str) -> str:
        """`path` under the client's base URL. The SDK sends an absolute URL as it is, which
        spares it a URL merge on every call. Azure clients, which route by the relative path,
        and a base URL with a query keep the SDK's own merge."""
        if self._base_url is None:
            base = self.client.base_url
            routed = isinstance(self.client, openai.AsyncAzureOpenAI) or bool(base.query)
            self._base_url = "" if routed else str(base).rstrip("/")
        return self._base_url + path if self._base_url else path

    async def create_conversation(
        self, metadata: Mapping[str, str], items: list[dict[str, Any]] | None = None
    ) -> str:
        """Create a conversation with `metadata` (and its first `items`); returns its id."""
        body: dict[str, Any] = {"metadata": dict(metadata)}
        if items:
            body["items"] = items
        body = await self._call("post", "/conversations", body=body)
        conversation_id = body.get("id")
        if not isinstance(conversation_id, str) or not conversation_id:
            raise CallAmbiguous(f"the target answered without a conversation id: {body}")
        return conversation_id

    async def update_conversation(self, conversation_id: str, metadata: Mapping[str, str]) -> None:
        """Set the conversation's metadata: `POST /conversations/{id}`, the request
        `client.conversations.update` sends. Sending the same body again changes nothing."""
        path = f"/conversations/{conversation_id}"
        await self._call("post", path, body={"metadata": dict(metadata)})

    async def create_items(
        self, conversation_id: str, batch: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Append `batch` (1..20 items, sent as is); returns the created items in order
        (their ids at least: the replayer reads nothing else)."""
        body = await self._call(
            "post", f"/conversations/{conversation_id}/items", body={"items": batch}
        )
        data = body.get("data")
        if not isinstance(data, list) or len(data) != len(batch):
            got = len(data) if isinstance(data, list) else "no"
            raise CallAmbiguous(
                f"the target answered {got} items for a batch of {len(batch)}",
            )
        return [item for item in data if isinstance(item, dict)]

    async def list_items(
        self, conversation_id: str, *, on_page: Callable[[], None] | None = None
    ) -> list[dict[str, Any]]:
        """Every item of a conversation, oldest first (all pages); `on_page` before each call."""
        found: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            if on_page is not None:
                on_page()
            params: dict[str, Any] = {
                "order": "asc",
                "limit": LIST_PAGE_SIZE,
                "include": LIST_INCLUDE,
            }
            if after is not None:
                params["after"] = after
            page = await self._call("get", f"/conversations/{conversation_id}/items", params=params)
            data = page.get("data")
            if not isinstance(data, list):
                raise CallAmbiguous(f"unexpected item list from the target: {page}")
            found.extend(item for item in data if isinstance(item, dict))
            last_id = page.get("last_id")
            if not page.get("has_more") or not data or not isinstance(last_id, str):
                return found
            after = last_id

    async def find_conversation(
        self, metadata: Mapping[str, str], *, since: float, on_page: Callable[[], None]
    ) -> str | None:
        """The id of the conversation created with exactly `metadata` since `since`, if any.

        Only on a target that lists conversations: pages newest first and stops at the first
        conversation older than `since` (less the clock slack of `migrate.replay.azure`).
        """
        after: str | None = None
        while True:
            on_page()
            params: dict[str, Any] = {"order": "desc", "limit": LIST_PAGE_SIZE}
            if after is not None:
                params["after"] = after
            page = await self._call("get", "/conversations", params=params)
            data = page.get("data")
            if not isinstance(data, list):
                raise CallAmbiguous(f"unexpected conversation list: {page}")
            for conversation in data:
                if isinstance(conversation, dict) and matches(conversation, metadata, since):
                    return str(conversation["id"])
            oldest = data[-1].get("created_at") if data and isinstance(data[-1], dict) else None
            last_id = page.get("last_id")
            if (
                not page.get("has_more")
                or not isinstance(last_id, str)
                or (isinstance(oldest, int | float) and oldest < since - CLOCK_SLACK_SECONDS)
            ):
                return None
            after = last_id

    async def preflight(self) -> None:
        """One cheap read proving the target answers and accepts the key (before any work).

        Reads a conversation that cannot exist and expects 404 (any answer but 401/403/quota
        proves the same); raises `TargetRefusedError` otherwise.
        """
        try:
            await self._call("get", f"/conversations/{PREFLIGHT_ID}", timeout=PREFLIGHT_TIMEOUT)
        except (CallNotFound, CallRejected) as error:
            # "Invalid URL (GET /v2/...)" is how the API (and the local server) answer a path
            # they do not serve: reachable, but the base URL is wrong.
            if error.api_shaped and "Invalid URL" not in error.message:
                return
            shape = "" if error.api_shaped else " without an API error object"
            raise TargetRefusedError(
                f"{self.description} does not look like a Conversations API: it answered "
                f"{error.message}{shape}",
                hint="check --base-url (or OPENAI_BASE_URL): it names the API root, e.g. "
                "https://api.openai.com/v1",
            ) from error
        except CallNotApplied as error:
            if error.status is not None:  # rate limited: it answers, and took the key
                return
            raise TargetRefusedError(
                f"cannot reach {self.description}: {error.message}",
                hint="check --base-url (or OPENAI_BASE_URL) and that the server is running",
            ) from error
        except CallFatal as error:
            raise TargetRefusedError(
                f"{self.description} refuses the key: {error.message}",
                hint="check OPENAI_API_KEY, the organization/project and the account's quota",
            ) from error
        except CallError as error:
            raise TargetRefusedError(
                f"cannot reach {self.description}: {error.message}",
                hint="check --base-url (or OPENAI_BASE_URL) and that the server is running",
            ) from error

    def raise_if_unreachable(self) -> None:
        """Stop the job once no call got an answer for `unreachable_after` seconds."""
        if self.silent_since is None:
            return
        since, wall = self.silent_since
        if self.clock() - since >= self.unreachable_after:
            when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(wall))
            raise TargetUnreachableError(
                f"target unreachable since {when} ({self.description}); resume when it is back"
            )

    def _answered(self) -> None:
        self.last_answer = self.clock()
        if self.silent_since is not None:
            logger.warning("the target answers again", extra={"event": "target_back"})
            self.silent_since = None

    def _no_answer(self, error: CallError, started: float) -> None:
        # A refused connection reached nobody: it never costs the conversation a retry, even
        # when a call that started earlier was still answered (a server going down answers its
        # last requests while it refuses new ones). A timeout counts as silent only when
        # nothing was answered since this call started.
        error.target_silent = error.kind == "not_applied" or self.last_answer <= started
        if error.target_silent and self.silent_since is None:
            self.silent_since = (self.clock(), time.time())
            logger.warning(
                "the target does not answer (%s); the job pauses and stops after %g s of this",
                error.message,
                self.unreachable_after,
                extra={"event": "target_silent"},
            )

    async def delete_item(self, conversation_id: str, item_id: str) -> None:
        """Delete one item of a conversation (an audit removing a surplus copy)."""
        await self._call("delete", f"/conversations/{conversation_id}/items/{item_id}")

    async def delete_conversation(self, conversation_id: str) -> None:
        """Delete a conversation (its items stay retrievable, as the API documents)."""
        await self._call("delete", f"/conversations/{conversation_id}")

    async def _call(
        self,
        method: Literal["get", "post", "delete"],
        path: str,
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Send one request; returns the JSON object it answered."""
        call_timeout = min(timeout, self.timeout) if timeout is not None else self.timeout
        options: Any = {
            "max_retries": 0,
            "timeout": call_timeout,
            "security": {"bearer_auth": True},
        }
        if params is not None:
            options["params"] = params
        await self.limiter.acquire()
        if method != "get" and self.write_guard is not None:
            try:
                self.write_guard()
            except BaseException:
                self.limiter.release(None)
                raise
        self.calls += 1
        headers: Mapping[str, str] | None = None
        served = False
        started = self.clock()
        try:
            if method == "post":
                # The body goes as JSON bytes, which the SDK sends as they are: the same
                # compact UTF-8 JSON its own encoder writes, in a quarter of the time.
                content = to_json(body or {})
                if self.writes is not None:
                    response = await self.writes.post(path, content, timeout=call_timeout)
                else:
                    response = await self.client.post(
                        self._url(path), cast_to=httpx2.Response, content=content, options=options
                    )
            elif method == "get":
                response = await self.client.get(
                    self._url(path), cast_to=httpx2.Response, options=options
                )
            else:
                response = await self.client.delete(
                    self._url(path), cast_to=httpx2.Response, options=options
                )
            headers = response.headers
            served = True
            self._answered()
        except openai.APIStatusError as exc:
            headers = exc.response.headers
            self._answered()
            error = classify(exc)
            if isinstance(error, CallRateLimited):
                error.retry_after = self.limiter.rate_limited(error.retry_after, headers)
            raise error from exc
        except (openai.APIConnectionError, *UNWRAPPED_ERRORS) as exc:
            error = classify(exc)
            if error.no_answer:
                self._no_answer(error, started)
            raise error from exc
        finally:
            self.limiter.release(headers, served=served)
        try:
            parsed = _parsed(
                response.content, ids_only=method == "post" and path.endswith("/items")
            )
        except ValueError as exc:
            raise CallAmbiguous(f"{method.upper()} {path}: the target answered non-JSON") from exc
        if not isinstance(parsed, dict):
            raise CallAmbiguous(f"{method.upper()} {path}: unexpected answer {parsed!r}")
        return parsed


def _parsed(content: bytes, *, ids_only: bool) -> Any:
    """`content` as JSON; with `ids_only`, an append's answer read down to its items' ids when
    it has the expected shape (else read whole, so that an unexpected answer is reported as it
    came)."""
    if ids_only:
        try:
            return _CREATED_IDS.validate_json(content)
        except ValidationError:
            pass
    return from_json(content)


def _is_openai(base_url: str) -> bool:
    host = urlsplit(base_url).hostname or ""
    return host == "api.openai.com" or host.endswith(".openai.com")


def preflight(config: TargetConfig) -> None:
    """Before any work: prove a remote target answers and accepts the key (exit 2 if not).

    The local target runs inside this process once the job starts, so there is nothing to
    prove for it.
    """
    if config.kind == "local":
        return

    async def probe() -> None:
        async with open_target(config, job_dir=None) as target:
            await target.preflight()

    asyncio.run(probe())


@contextlib.asynccontextmanager
async def open_target(config: TargetConfig, *, job_dir: Path | None) -> AsyncIterator[Target]:
    """Connect to the target (starting the local server for `kind="local"`, in `job_dir`)."""
    validate_target(config)
    with _client_for(config, job_dir) as (client, description, can_list, writes):
        limiter = RateLimiter(max_rate=config.max_rate)
        target = Target(
            client,
            limiter=limiter,
            timeout=config.timeout,
            description=description,
            can_list_conversations=can_list,
            unreachable_after=config.unreachable_after,
            writes=writes,
        )
        try:
            yield target
        finally:
            await client.close()


@contextlib.contextmanager
def _client_for(
    config: TargetConfig, job_dir: Path | None
) -> Iterator[tuple[AsyncOpenAI, str, bool, DirectWrites | None]]:
    """The SDK client, the target's description, whether it lists conversations, and how
    writes skip the SDK's request layer (None: they do not)."""
    if config.kind == "azure":
        assert config.azure_endpoint is not None
        client, description = azure_client(config.azure_endpoint, timeout=config.timeout)
        yield client, description, True, None
        return
    if config.kind == "openai":
        base_url = resolve_base_url(config)
        # Compatible servers may need no key; the SDK insists on a non-empty one.
        api_key = os.environ.get("OPENAI_API_KEY") or "unused"
        plain, writes = _openai_client(config, base_url, api_key)
        yield plain, describe_target(config, base_url), False, writes
        return
    if job_dir is None:
        raise ConfigError(
            "this job writes to the local target, whose conversations live in its job directory",
            hint="give the job directory; to share a job between processes or machines, run "
            "`migrate serve` and write to it with --target openai --base-url",
        )
    from migrate.server.embedded import running_server
    from migrate.server.options import ServerOptions

    try:
        options = ServerOptions.model_validate(config.server_options)
    except ValidationError as exc:
        raise ConfigError(f"invalid local server options:\n{exc}") from exc
    api_key = options.api_key.get_secret_value() if options.api_key is not None else "local"
    with running_server(options, job_dir / "server.db") as base_url:
        if options.flavour == "azure":
            auth = AzureAuth(method="api_key", api_key=api_key)
            azure, _ = azure_client(base_url, timeout=config.timeout, auth=auth)
            yield azure, describe_target(config, f"{base_url} (Azure flavour)"), True, None
        else:
            plain, writes = _openai_client(config, base_url, api_key)
            yield plain, describe_target(config, base_url), False, writes


def _openai_client(
    config: TargetConfig, base_url: str, api_key: str
) -> tuple[AsyncOpenAI, DirectWrites | None]:
    """The SDK client for a fixed `api_key`, and its direct writes (none with a query)."""
    # A query in the base URL (a proxy's `api-version`) goes on every request, not in the path.
    base, query = split_url(base_url)
    timeout = httpx2.Timeout(config.timeout, connect=min(5.0, config.timeout))
    http = http_client(base, timeout)
    client = AsyncOpenAI(
        api_key=api_key,
        base_url=base,
        default_query=query or None,
        organization=config.organization,
        project=config.project,
        max_retries=0,
        timeout=timeout,
        http_client=http,
    )
    return client, None if query else DirectWrites(client, http)
