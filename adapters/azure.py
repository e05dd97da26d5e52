"""Azure endpoints and credentials, shared by the Azure threads source and the Azure target.

- A URL's query (Azure's `api-version`) is kept apart from its path (`split_url`), because the
  SDK appends request paths to the base URL's raw text: `http://host/openai?api-version=X`
  would otherwise become `http://host/openai?api-version=Xthreads/...`.
- The key comes from `AZURE_OPENAI_API_KEY` and is sent in the `api-key` header (the SDK's
  Azure clients do that); without it, Microsoft Entra ID through `azure-identity` (the
  optional `[azure]` extra): `DefaultAzureCredential` unless a credential is given.

No key or token is ever part of a description.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit, urlunsplit

AZURE_KEY_ENV = "AZURE_OPENAI_API_KEY"
OPENAI_SCOPE = "https://cognitiveservices.azure.com/.default"
"""The Entra ID scope of Azure OpenAI resources (and the `/openai/v1/` API)."""
FOUNDRY_SCOPE = "https://ai.azure.com/.default"
"""The Entra ID scope of Foundry project endpoints (the Agent Service)."""


class AzureSetupError(Exception):
    """The Azure endpoint or credentials cannot be used."""


@dataclass(frozen=True)
class AzureAuth:
    """How calls authenticate: an API key, or a token provider (Entra ID). Never printed."""

    method: Literal["api_key", "entra_id"]
    api_key: str | None = field(default=None, repr=False)
    token_provider: Callable[[], str] | None = field(default=None, repr=False)

    def client_arguments(self) -> dict[str, Any]:
        """Keyword arguments for `AzureOpenAI` / `AsyncAzureOpenAI`."""
        if self.method == "api_key":
            return {"api_key": self.api_key}
        return {"azure_ad_token_provider": self.token_provider}

    def describe(self) -> str:
        """Which credential is used, without its value."""
        if self.method == "api_key":
            return f"api-key from {AZURE_KEY_ENV}"
        return "Microsoft Entra ID"


def split_url(url: str) -> tuple[str, dict[str, str]]:
    """A URL without its query, and the query's parameters (to send on every request)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    base = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    return base, query


def is_project_endpoint(url: str) -> bool:
    """Whether `url` is a Foundry project endpoint (`https://x.services.ai.azure.com/api/projects/p`)."""
    return "/api/projects/" in urlsplit(url).path + "/"


def resolve_auth(*, scope: str, credential: Any | None = None) -> AzureAuth:
    """The key from `AZURE_OPENAI_API_KEY`, else an Entra ID token provider for `scope`.

    `credential` is any `azure-identity` credential (an object with `get_token`); the default
    is `DefaultAzureCredential()`.

    Raises:
        AzureSetupError: No key is set and `azure-identity` is not installed.
    """
    key = os.environ.get(AZURE_KEY_ENV)
    if key and credential is None:
        return AzureAuth(method="api_key", api_key=key)
    try:
        from azure.identity import DefaultAzureCredential, get_bearer_token_provider
    except ImportError as exc:
        raise AzureSetupError(
            f"no {AZURE_KEY_ENV} is set, and Microsoft Entra ID needs azure-identity: "
            "pip install 'chat-migrate[azure]' (or set the key)"
        ) from exc
    if credential is None:
        credential = DefaultAzureCredential()
    return AzureAuth(method="entra_id", token_provider=get_bearer_token_provider(credential, scope))
