"""Settings of the local Conversations server: latency, rate limit, faults, auth."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

FaultKind = Literal[
    "error_before",
    "error_after_commit",
    "drop_after_commit",
    "stall_after_commit",
    "burst_503",
    "apply_late",
]
"""What a write request can suffer.

- `error_before`: answer 500 before anything is written.
- `error_after_commit`: commit the write, then answer 500.
- `drop_after_commit`: commit the write, then close the connection without any response.
- `stall_after_commit`: commit the write, then hold the response for `stall_seconds`
  (or until the client gives up), so that a client with a shorter timeout times out.
- `burst_503`: answer 503 to this request and to the next `burst_length - 1` requests of any
  kind (reads included), as an overloaded server would.
- `apply_late`: hold the request `late_seconds` *before* applying the write, then apply it
  even if the client has timed out, disconnected or died meanwhile (as a real server keeps
  processing a request whose client stopped waiting); the answer goes to whoever still waits.
"""

FAULT_KINDS: tuple[FaultKind, ...] = (
    "error_before",
    "error_after_commit",
    "drop_after_commit",
    "stall_after_commit",
    "burst_503",
    "apply_late",
)

ScriptStep = FaultKind | Literal["none"]
"""One step of a fault script: a fault kind, or `none` for a request that goes through."""


class FaultSettings(BaseModel):
    """Fault injection for write requests (POST); changeable at runtime via `/_admin/faults`.

    `script` is consumed first, one step per write request, in order; once it is empty, each
    write request draws a fault from `rates` (probabilities per kind, summing to at most 1).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    rates: dict[FaultKind, float] = Field(default_factory=dict)
    script: tuple[ScriptStep, ...] = ()
    stall_seconds: float = Field(default=30.0, gt=0)
    burst_length: int = Field(default=3, ge=1)
    late_seconds: float = Field(default=5.0, gt=0)
    """How long `apply_late` holds a write before applying it."""

    @model_validator(mode="after")
    def _check_rates(self) -> FaultSettings:
        for kind, rate in self.rates.items():
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"fault rate for {kind} must be between 0 and 1, got {rate}")
        if sum(self.rates.values()) > 1.0 + 1e-9:
            raise ValueError("fault rates must add up to at most 1")
        return self


class ServerOptions(BaseModel):
    """How the local server behaves; every random choice derives from `seed`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    api_key: SecretStr | None = None
    """When set, only `Authorization: Bearer <api_key>` is accepted; otherwise any bearer token."""
    latency_ms: float = Field(default=0.0, ge=0)
    """Fixed delay added to every API request."""
    jitter_ms: float = Field(default=0.0, ge=0)
    """Extra delay per request, uniform in [0, jitter_ms]."""
    rpm: int | None = Field(default=None, ge=1)
    """Requests per minute (token bucket, full at start); None means no limit."""
    drain_seconds: float = Field(default=0.0, ge=0)
    """For this long from the first API request on, another client of the account spends the
    whole `rpm` limit (every request answers 429); also `POST /_admin/drain` at any time."""
    rate_headers: bool = True
    """Send `x-ratelimit-*-requests` on every answer. False answers as OpenAI's Conversations
    endpoints do: no such headers, so a client paces from 429s and `Retry-After` alone."""
    faults: FaultSettings = Field(default_factory=FaultSettings)
    seed: int = 0
    access_log: bool = False
    flavour: Literal["openai", "azure"] = "openai"
    """`azure`: answer as Azure OpenAI does (`migrate.server.azure`): `/openai/v1` paths with an
    optional `api-version`, the `api-key` header, the conversation list, Assistants threads."""
    threads_dir: Path | None = None
    """`azure` only: an export directory (`<thread_id>.json` documents) served as threads."""
    responses_dir: Path | None = None
    """A directory of stored responses served under `/v1/responses` (`migrate.server.responses`)."""

    @model_validator(mode="after")
    def _check_flavour(self) -> ServerOptions:
        if self.threads_dir is not None and self.flavour != "azure":
            raise ValueError("threads_dir needs flavour='azure'")
        if self.drain_seconds and self.rpm is None:
            raise ValueError("drain_seconds needs rpm (a limit to drain)")
        return self

    admin_changes: bool = True
    """Whether `POST /_admin/faults` may change the faults (with `api_key` set, it also needs
    the key). `migrate serve` turns it off unless `--admin` or `--api-key` is given."""
