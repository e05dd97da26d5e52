"""Decoding of single SQL values and Chat Completions messages into neutral entries.

Everything here is pure: a value in, entries (or a `DecodeError` saying what is wrong) out. The
table reader (`adapters.sql.tables`) and the presets (`adapters.sql.presets`) build on it;
messages themselves are decoded by `adapters.chat_messages`, the decoder the JSON files share.
Row provenance is an `adapters.chat_messages.Provenance` whose tool calls share the row's
position (`number_calls=False`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from adapters.base import DecodeError
from adapters.chat_messages import ROLE_ALIASES, Provenance, message_entries
from adapters.model import Entry, SourceNote

ROLE_NAMES = {
    **{role: role for role in ("user", "assistant", "system", "developer", "tool", "function")},
    **ROLE_ALIASES,
}
"""Chat Completions roles and the common aliases, mapped to neutral role names."""


@dataclass
class Decoded:
    """Entries decoded from one row, and the repairs the adapter made while decoding."""

    entries: list[Entry] = field(default_factory=list)
    notes: list[SourceNote] = field(default_factory=list)


def json_value(raw: object, column: str) -> Any:
    """Parse a JSON column: text or bytes are parsed, values the driver already parsed pass."""
    if isinstance(raw, bytes | bytearray | memoryview):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError("malformed_json", f"column {column} is not UTF-8: {exc}") from None
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except RecursionError:
            raise DecodeError("malformed_json", f"column {column} is nested too deeply") from None
        except json.JSONDecodeError as exc:
            raise DecodeError(
                "malformed_json", f"malformed JSON in column {column}: {exc}"
            ) from None
    return raw


def json_object(raw: object, column: str) -> dict[str, Any]:
    """Parse a JSON column that must hold an object."""
    value = json_value(raw, column)
    if value is None:
        raise DecodeError("null_content", f"column {column} is NULL")
    if not isinstance(value, dict):
        raise DecodeError(
            "unexpected_json", f"column {column} holds {type(value).__name__}, not an object"
        )
    return value


def timestamp_value(raw: object, column: str) -> float | None:
    """Unix seconds from a datetime, an epoch number (s, ms, us or ns) or an ISO 8601 string.

    Naive datetimes are taken as UTC: databases store them without a zone and the engines we
    read (SQLAlchemy sessions, `CURRENT_TIMESTAMP`) write UTC.
    """
    if raw is None:
        return None
    if isinstance(raw, datetime):
        return (raw if raw.tzinfo else raw.replace(tzinfo=UTC)).timestamp()
    if isinstance(raw, date):
        return datetime(raw.year, raw.month, raw.day, tzinfo=UTC).timestamp()
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    if isinstance(raw, str):
        text = raw.strip()
        try:
            return _epoch_seconds(float(text), raw, column)
        except ValueError:
            pass
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise DecodeError(
                "bad_timestamp", f"bad timestamp {raw!r} in column {column}"
            ) from None
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
    if isinstance(raw, int | float | Decimal) and not isinstance(raw, bool):
        return _epoch_seconds(float(raw), raw, column)
    raise DecodeError("bad_timestamp", f"bad timestamp {raw!r} in column {column}")


def _epoch_seconds(value: float, raw: object, column: str) -> float:
    if not math.isfinite(value) or value < 0:
        raise DecodeError("bad_timestamp", f"bad timestamp {raw!r} in column {column}")
    # Epochs in ms, us or ns are told apart by magnitude: 1e11 s is the year 5138.
    for limit, scale in ((1e17, 1e9), (1e14, 1e6), (1e11, 1e3)):
        if value >= limit:
            return value / scale
    return value


def json_safe(value: object) -> Any:
    """A JSON-serialisable form of a column value, for entry metadata."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, Mapping):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return str(value)


def conversation_metadata(rows: Sequence[tuple[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """The conversation metadata from each row's metadata columns (`(row id, values)` in order).

    A column with the same value in every row becomes that value; one whose value varies
    becomes the compact JSON of `{row id: value}` over the rows where it is not NULL. A column
    NULL in every row is left out. The planner fits the result to the API's limits and reports
    what does not fit (`metadata_truncated`, with the values).
    """
    names = list(dict.fromkeys(name for _, values in rows for name in values))
    metadata: dict[str, Any] = {}
    for name in names:
        column = [(row_id, values.get(name)) for row_id, values in rows]
        present: dict[str, Any] = {}
        for row_id, value in column:
            if value is not None:
                # Row ids from a query need not be unique: no value may hide another.
                key, number = row_id, 1
                while key in present:
                    number += 1
                    key = f"{row_id}#{number}"
                present[key] = value
        if not present:
            continue
        first = column[0][1]
        if len(present) == len(column) and all(value == first for _, value in column):
            metadata[name] = first
        else:
            metadata[name] = json.dumps(present, ensure_ascii=False, separators=(",", ":"))
    return metadata


def map_role(raw: object) -> str:
    """The neutral role for a Chat Completions role or alias; `DecodeError` for anything else."""
    if not isinstance(raw, str) or raw.strip().lower() not in ROLE_NAMES:
        raise DecodeError("unknown_role", f"unknown role {raw!r}")
    return ROLE_NAMES[raw.strip().lower()]


# --- Chat Completions ------------------------------------------------------------------------


def column_message_entries(
    message: Mapping[str, Any], info: Provenance, notes: list[SourceNote]
) -> list[Entry]:
    """Entries for a message built from a row's columns (role, content, tool calls, ...).

    The columns are checked as columns first: the role column must hold a Chat Completions role
    or alias (`unknown_role`), and a NULL content column is only allowed next to tool calls
    (`null_content`). Then the message is decoded by `adapters.chat_messages`, like any other.
    """
    role = map_role(message.get("role"))
    has_calls = message.get("tool_calls") or isinstance(message.get("function_call"), dict)
    if message.get("content") is None and not has_calls:
        raise DecodeError("null_content", f"{role} message has NULL content")
    return message_entries({**message, "role": role}, info, notes)
