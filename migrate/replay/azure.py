"""The Azure target: Azure OpenAI's (or a Foundry project's) Conversations API, `/openai/v1/`.

Reached through the SDK's `AsyncAzureOpenAI`, which sends the key in the `api-key` header, or
an Entra ID token (`adapters.azure.resolve_auth`). The endpoint may be a resource
(`https://NAME.openai.azure.com`), a Foundry project
(`https://NAME.services.ai.azure.com/api/projects/PROJECT`) or either one already ending in
`/openai/v1`; its query parameters are sent on every request, never glued to the path.
`api-version` defaults to `v1` (Microsoft's REST reference: "v1 if not otherwise specified").

Azure lists conversations (`GET /openai/v1/conversations`), so an ambiguous create can be
looked up instead of being counted as a possible orphan (`find_conversation`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import httpx2
from openai import AsyncAzureOpenAI

from adapters.azure import (
    FOUNDRY_SCOPE,
    OPENAI_SCOPE,
    AzureAuth,
    AzureSetupError,
    is_project_endpoint,
    resolve_auth,
    split_url,
)
from migrate.errors import ConfigError

DEFAULT_API_VERSION = "v1"
CLOCK_SLACK_SECONDS = 300.0
"""How far the target's clock may lag ours when looking for a conversation created since."""


def conversations_url(endpoint: str) -> tuple[str, dict[str, str]]:
    """The `/openai/v1` base URL of `endpoint`, and its query parameters."""
    base, query = split_url(endpoint)
    path = base.rstrip("/")
    if not path.endswith("/openai/v1"):
        path += "/openai/v1"
    return path, query


def azure_client(
    endpoint: str,
    *,
    timeout: float,
    auth: AzureAuth | None = None,
    credential: Any | None = None,
) -> tuple[AsyncAzureOpenAI, str]:
    """An `AsyncAzureOpenAI` client for `endpoint`'s Conversations API, and its description.

    `auth` defaults to `AZURE_OPENAI_API_KEY`, else Entra ID (with `credential`, if given).
    """
    base_url, query = conversations_url(endpoint)
    api_version = query.pop("api-version", None) or os.environ.get("OPENAI_API_VERSION")
    if auth is None:
        scope = FOUNDRY_SCOPE if is_project_endpoint(endpoint) else OPENAI_SCOPE
        try:
            auth = resolve_auth(scope=scope, credential=credential)
        except AzureSetupError as exc:
            raise ConfigError(
                str(exc), hint="set AZURE_OPENAI_API_KEY, or sign in for Entra ID"
            ) from exc
    client = AsyncAzureOpenAI(
        base_url=base_url,
        api_version=api_version or DEFAULT_API_VERSION,
        default_query=query or None,
        max_retries=0,
        timeout=httpx2.Timeout(timeout, connect=min(5.0, timeout)),
        **auth.client_arguments(),
    )
    description = f"Azure OpenAI Conversations at {base_url} ({auth.describe()})"
    return client, description


def matches(conversation: Mapping[str, Any], metadata: Mapping[str, str], since: float) -> bool:
    """Whether a listed conversation is the one created with `metadata` at or after `since`.

    The metadata carries the job's token for this conversation, so an exact match is ours; the
    time bound keeps an earlier job's copy of the same source (no token) from matching.
    """
    created = conversation.get("created_at")
    if isinstance(created, int | float) and created < since - CLOCK_SLACK_SECONDS:
        return False
    return conversation.get("metadata") == dict(metadata)
