"""Decoding of single SQL values and Chat Completions messages into neutral entries.

Everything here is pure: a value in, entries (or a `RowError` saying what is wrong) out. The
table reader (`adapters.sql_tables`) and the presets (`adapters.sql_presets`) build on it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from adapters.model import (
    AudioPart,
    Entry,
    FilePart,
    ImagePart,
    Message,
    Part,
    RefusalPart,
    SourceNote,
    TextPart,
    ToolCall,
    ToolResult,
)

ROLE_NAMES = {
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "ai": "assistant",
    "system": "system",
    "developer": "developer",
    "tool": "tool",
    "function": "function",
}
"""Chat Completions roles and the common aliases, mapped to neutral role names."""


class RowError(ValueError):
    """A row (or one JSON value in it) that cannot be read; `code` names the kind of problem."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class RowInfo:
    """Provenance shared by every entry decoded from one row."""

    position: str
    source_id: str | None = None
    created_at: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def fields(self) -> dict[str, Any]:
        """Keyword arguments for an entry of the neutral model."""
        return {
            "source_id": self.source_id,
            "position": self.position,
            "created_at": self.created_at,
            "metadata": dict(self.metadata),
        }

    def with_source_id(self, source_id: str | None) -> RowInfo:
        """The same provenance with another source id (when the value carries its own)."""
        return replace(self, source_id=source_id) if source_id else self


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
            raise RowError("malformed_json", f"column {column} is not UTF-8: {exc}") from None
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise RowError("malformed_json", f"malformed JSON in column {column}: {exc}") from None
    return raw


def json_object(raw: object, column: str) -> dict[str, Any]:
    """Parse a JSON column that must hold an object."""
    value = json_value(raw, column)
    if value is None:
        raise RowError("null_content", f"column {column} is NULL")
    if not isinstance(value, dict):
        raise RowError(
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
            raise RowError("bad_timestamp", f"bad timestamp {raw!r} in column {column}") from None
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
    if isinstance(raw, int | float | Decimal) and not isinstance(raw, bool):
        return _epoch_seconds(float(raw), raw, column)
    raise RowError("bad_timestamp", f"bad timestamp {raw!r} in column {column}")


def _epoch_seconds(value: float, raw: object, column: str) -> float:
    if not math.isfinite(value) or value < 0:
        raise RowError("bad_timestamp", f"bad timestamp {raw!r} in column {column}")
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


def map_role(raw: object) -> str:
    """The neutral role for a Chat Completions role or alias; `RowError` for anything else."""
    if not isinstance(raw, str) or raw.strip().lower() not in ROLE_NAMES:
        raise RowError("unknown_role", f"unknown role {raw!r}")
    return ROLE_NAMES[raw.strip().lower()]


def compact_json(value: object) -> str:
    """JSON text of a value, keeping non-ASCII text readable."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# --- Chat Completions ------------------------------------------------------------------------


def chat_parts(content: object) -> list[Part]:
    """Parts of Chat Completions `content`: a string or a list of content parts."""
    if content is None or content == "":
        return []
    if isinstance(content, str):
        return [TextPart(text=content)]
    if not isinstance(content, list):
        raise RowError("unexpected_json", f"content is {type(content).__name__}, not text")
    return [_chat_part(part) for part in content]


def _chat_part(part: object) -> Part:
    if isinstance(part, str):
        return TextPart(text=part)
    if not isinstance(part, dict):
        raise RowError("unexpected_json", f"content part {part!r} is not an object")
    match part.get("type"):
        case "text" | "input_text" | "output_text":
            return TextPart(text=_text(part.get("text"), "text part"))
        case "refusal":
            return RefusalPart(refusal=_text(part.get("refusal"), "refusal part"))
        case "image_url":
            image = part.get("image_url")
            if isinstance(image, str):
                return ImagePart(url=image)
            if isinstance(image, dict) and isinstance(image.get("url"), str):
                return ImagePart(url=image["url"], detail=_optional_text(image.get("detail")))
            raise RowError("unexpected_json", "image_url part without a url")
        case "input_audio":
            audio = part.get("input_audio")
            if not isinstance(audio, dict):
                raise RowError("unexpected_json", "input_audio part without input_audio")
            return AudioPart(
                data=_optional_text(audio.get("data")), format=_optional_text(audio.get("format"))
            )
        case "file":
            file = part.get("file")
            if not isinstance(file, dict):
                raise RowError("unexpected_json", "file part without file")
            return FilePart(
                file_id=_optional_text(file.get("file_id")),
                file_data=_optional_text(file.get("file_data")),
                filename=_optional_text(file.get("filename")),
            )
        case other:
            raise RowError("unknown_content", f"unknown content part type {other!r}")


def chat_text(content: object, what: str) -> str:
    """Plain text of a tool output's content: a string, or the text parts of a list joined."""
    if content is None:
        raise RowError("null_content", f"{what} has NULL content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            part if isinstance(part, str) else part.get("text")
            for part in content
            if isinstance(part, str) or (isinstance(part, dict) and "text" in part)
        ]
        if len(texts) == len(content) and all(isinstance(text, str) for text in texts):
            return "".join(str(text) for text in texts)
    return compact_json(content)


def chat_tool_calls(tool_calls: object, info: RowInfo) -> list[ToolCall]:
    """`ToolCall`s from Chat Completions `tool_calls`; a missing or empty id stays `None`."""
    if tool_calls is None:
        return []
    if not isinstance(tool_calls, list):
        raise RowError("unexpected_json", "tool_calls is not a list")
    calls = []
    for call in tool_calls:
        if not isinstance(call, dict):
            raise RowError("unexpected_json", f"tool call {call!r} is not an object")
        if call.get("type") == "custom" or isinstance(call.get("custom"), dict):
            custom = call.get("custom") or {}
            calls.append(
                ToolCall(
                    **info.fields(),
                    call_id=_optional_text(call.get("id")) or None,
                    name=_text(custom.get("name"), "custom tool call name"),
                    arguments=_arguments(custom.get("input")),
                    tool_type="custom",
                )
            )
            continue
        function = call.get("function")
        if not isinstance(function, dict):
            raise RowError("unexpected_json", "tool call without a function")
        calls.append(
            ToolCall(
                **info.fields(),
                call_id=_optional_text(call.get("id")) or None,
                name=_text(function.get("name"), "tool call name"),
                arguments=_arguments(function.get("arguments")),
            )
        )
    return calls


def chat_message_entries(message: Mapping[str, Any], info: RowInfo) -> list[Entry]:
    """Entries for one Chat Completions message (a message, then its tool calls)."""
    role = map_role(message.get("role"))
    content = message.get("content")
    name = _optional_text(message.get("name"))
    if role in ("tool", "function"):
        output = chat_text(content, f"{role} message")
        call_id = _optional_text(message.get("tool_call_id")) if role == "tool" else None
        return [ToolResult(**info.fields(), call_id=call_id or None, output=output, name=name)]
    parts = chat_parts(content)
    if isinstance(message.get("refusal"), str) and message["refusal"]:
        parts.append(RefusalPart(refusal=message["refusal"]))
    audio = message.get("audio")
    if isinstance(audio, dict) and (audio.get("id") or audio.get("transcript")):
        parts.append(
            AudioPart(
                audio_id=_optional_text(audio.get("id")),
                transcript=_optional_text(audio.get("transcript")),
            )
        )
    calls = chat_tool_calls(message.get("tool_calls"), info)
    function_call = message.get("function_call")
    if isinstance(function_call, dict):
        calls.append(
            ToolCall(
                **info.fields(),
                name=_text(function_call.get("name"), "function_call name"),
                arguments=_arguments(function_call.get("arguments")),
            )
        )
    if content is None and not parts and not calls:
        raise RowError("null_content", f"{role} message has NULL content")
    entries: list[Entry] = []
    if parts or not calls:
        entries.append(Message(**info.fields(), role=role, parts=parts, name=name))
    entries.extend(calls)
    return entries


def _arguments(value: object) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else compact_json(value)


def _text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise RowError("unexpected_json", f"{what} is missing or not text")
    return value


def _optional_text(value: object) -> str | None:
    return value if isinstance(value, str) else None
