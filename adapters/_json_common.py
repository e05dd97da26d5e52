"""Shared pieces of the JSON readers: record context, record errors and value helpers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from adapters.config import JsonSourceConfig

ID_FIELDS = (
    "id",
    "conversation_id",
    "session_id",
    "thread_id",
    "chat_id",
    "uuid",
    "conversationId",
    "sessionId",
    "threadId",
    "chatId",
)
"""Field names tried, in order, for a conversation id when `id_field` is not configured."""

TIMESTAMP_FIELDS = ("created_at", "create_time", "created", "timestamp")


class RecordError(Exception):
    """One record cannot be read as a conversation; the reader reports it and goes on."""

    def __init__(self, code: str, message: str, *, conversation_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.conversation_id = conversation_id


@dataclass(frozen=True, slots=True)
class RecordContext:
    """Where a record sits: its location string and the id derived from it."""

    config: JsonSourceConfig
    location: str
    """`file:LINE` (JSONL), `file[INDEX]` (JSON array) or `file` (one JSON object)."""
    derived_id: str
    """A stable id from the file's relative name and the line or index, for records with none."""


def pick_id(record: dict[str, Any], field: str | None, fallback: str) -> tuple[str, str | None]:
    """The record's id from `field` (or the usual id fields) and the field it came from.

    Falls back to `(fallback, None)` when the record has no usable id.
    """
    candidates = (field,) if field else ID_FIELDS
    for name in candidates:
        value = record.get(name)
        if isinstance(value, str) and value:
            return value, name
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value), name
    return fallback, None


def parse_timestamp(value: Any) -> float | None:
    """Unix seconds from a number (seconds or milliseconds) or an ISO 8601 string."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = float(value)
        # Millisecond epochs (JavaScript apps) are three orders of magnitude larger.
        return seconds / 1000.0 if seconds > 1e11 else seconds
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def first_timestamp(record: dict[str, Any]) -> tuple[float | None, str | None]:
    """The first usable timestamp among the usual field names, and that field's name."""
    for name in TIMESTAMP_FIELDS:
        if name in record:
            stamp = parse_timestamp(record[name])
            if stamp is not None:
                return stamp, name
    return None, None


def dump_json(value: Any) -> str:
    """Compact JSON text, keeping non-ASCII characters as they are."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def arguments_text(value: Any) -> str:
    """Tool-call arguments as the string the API wants (objects are JSON-encoded)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return dump_json(value)


def describe_type(value: Any) -> str:
    """A JSON type name for error messages."""
    match value:
        case None:
            return "null"
        case bool():
            return "a boolean"
        case int() | float():
            return "a number"
        case str():
            return "a string"
        case list():
            return "an array"
        case dict():
            return "an object"
    return type(value).__name__
