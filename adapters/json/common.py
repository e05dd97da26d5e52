"""Shared pieces of the JSON readers: record context, ids and timestamps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from adapters.chat_messages import TIMESTAMP_FIELDS, parse_timestamp
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


def first_timestamp(record: dict[str, Any]) -> tuple[float | None, str | None]:
    """The first usable timestamp among the usual field names, and that field's name."""
    for name in TIMESTAMP_FIELDS:
        if name in record:
            stamp = parse_timestamp(record[name])
            if stamp is not None:
                return stamp, name
    return None, None
