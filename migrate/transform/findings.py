"""Findings (lossy or repairing steps) and errors, as they appear in plans and reports."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class Finding(BaseModel):
    """One lossy or repairing step taken for one conversation (or one entry in it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str
    conversation_id: str
    message: str
    source_id: str | None = None
    count: int = 1
    value: Any = None
    """The value that did not reach the target (JSON, cut at `adapters.model.NOTE_VALUE_CHARS`
    characters of JSON text), when the finding drops one."""


class ErrorRecord(BaseModel):
    """Why one conversation (or unreadable record) was not migrated, and what to do about it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str
    message: str
    location: str
    conversation_id: str | None = None
    source_id: str | None = None
    hint: str | None = None
