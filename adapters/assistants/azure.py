"""Assistants threads on Azure: Azure OpenAI Assistants and the Foundry Agent Service.

Both speak the Assistants protocol. An Azure OpenAI resource (`https://NAME.openai.azure.com`)
serves threads under `/openai/threads` with a dated `api-version` (default
`2024-05-01-preview`); a Foundry project endpoint
(`https://NAME.services.ai.azure.com/api/projects/PROJECT`) serves them under `/threads` with
`api-version=v1`, and documents a thread list (`GET /threads`), which OpenAI never had.
Azure's classic threads retire on 2027-03-31.

The SDK's `AzureOpenAI` client sends the key (`AZURE_OPENAI_API_KEY`) in the `api-key` header,
or an Entra ID token (`adapters.azure`); a query in the endpoint URL is sent on every request.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai

from adapters.azure import (
    FOUNDRY_SCOPE,
    OPENAI_SCOPE,
    AzureSetupError,
    is_project_endpoint,
    resolve_auth,
    split_url,
)
from adapters.base import SourceOpenError

OPENAI_ASSISTANTS_API_VERSION = "2024-05-01-preview"
"""The Azure OpenAI Assistants API version the SDK's Azure samples use."""
AGENT_SERVICE_API_VERSION = "v1"
"""The Foundry Agent Service's API version (REST reference: `threads?api-version=v1`)."""
LIST_PAGE_SIZE = 100


def azure_threads_client(
    endpoint: str, *, api_version: str | None = None, credential: Any | None = None
) -> openai.AzureOpenAI:
    """An `AzureOpenAI` client whose `beta.threads` calls reach `endpoint`'s threads.

    Raises:
        SourceOpenError: No key is set and Entra ID is not available.
    """
    base, query = split_url(endpoint)
    project = is_project_endpoint(endpoint)
    version = api_version or query.get("api-version")
    query.pop("api-version", None)
    if version is None:
        version = AGENT_SERVICE_API_VERSION if project else OPENAI_ASSISTANTS_API_VERSION
    base = base.rstrip("/")
    if not project and not base.endswith("/openai"):
        base += "/openai"
    try:
        auth = resolve_auth(scope=FOUNDRY_SCOPE if project else OPENAI_SCOPE, credential=credential)
    except AzureSetupError as exc:
        raise SourceOpenError(str(exc)) from exc
    return openai.AzureOpenAI(
        base_url=base, api_version=version, default_query=query or None, **auth.client_arguments()
    )


def describe_endpoint(endpoint: str) -> str:
    """The endpoint without its query (nothing secret is ever in it, but keep it short)."""
    return split_url(endpoint)[0]


def list_thread_ids(client: openai.OpenAI) -> Iterator[str]:
    """Every thread id the service lists, oldest first (the SDK pages through `after`).

    Raises:
        SourceOpenError: The service cannot list threads (Azure OpenAI resources may not).
    """
    # Imported here: `openai.types.beta` costs the CLI's start-up most of a second.
    from openai.pagination import SyncCursorPage
    from openai.types.beta.thread import Thread

    try:
        page = client.get_api_list(
            "/threads",
            model=Thread,
            page=SyncCursorPage[Thread],
            options={"params": {"limit": LIST_PAGE_SIZE, "order": "asc"}},
        )
        for thread in page:
            yield thread.id
    except (openai.NotFoundError, openai.BadRequestError) as exc:
        raise SourceOpenError(
            f"this service does not list threads (HTTP {exc.status_code}); "
            "give the ids with --thread-ids-file"
        ) from exc
    except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
        raise SourceOpenError(
            f"the service refused the credentials: HTTP {exc.status_code}"
        ) from exc
