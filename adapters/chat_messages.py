"""The one decoder of Chat Completions messages, shared by the JSON files and the SQL readers.

A message is `{role, content, name?, tool_calls?, function_call?, tool_call_id?, refusal?,
audio?, ...}`. The same message gives the same entries and notes whichever reader holds it;
only the provenance (`Provenance`: position, source id, timestamp, metadata) comes from the
container. Rules:

- `role` is required; `human`/`ai` (any case) become `user`/`assistant`; any other role is kept
  verbatim and the transform decides (`policy.unknown_role`).
- `content` is a string, null, one part or an array of parts (a stored completion's
  `content_parts`, when not null, are the parts as sent and win over its flattened `content`).
  A part type this decoder does not know (or a known type without its body) is a note
  `unknown_part_type`; its `text`, if any, is kept. A message left with nothing readable (no
  part, no tool call) because of such parts fails the conversation with `unknown_content`.
- A `tool` or `function` message is a tool output: null content is an empty output; an array of
  text parts is their texts joined as they are; an array of text, image and file parts keeps
  them as the output's parts (the API takes images and files in a tool output); any other array
  is sent as its JSON text with a note `tool_output_as_json`.
- Tool calls are split off the message, after it; an assistant message whose only content is
  empty text next to tool calls is not a message of its own. An empty call id is no id.
- Citations: the message's `annotations` (search models' `url_citation`, indices into the
  message text) go on its first text part; a text part's own `annotations` (flat Responses style
  or nested Chat Completions style) stay on it. `url_citation`, `file_citation`, `file_path` and
  `container_file_citation` are kept; any other annotation is a note `unknown_annotation`
  carrying its value.
- Keys this decoder does not interpret (fine-tuning `weight`, Gemini `extra_content`, ...) go
  to the entry's metadata and are a note `unmapped_field` carrying their values.

It is one module over 500 lines because it is one thing: the one message decoder (a layer of
its own in the import contracts), whose content, tool-call and annotation rules share one set
of notes and one provenance.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from adapters.base import DecodeError
from adapters.model import (
    Annotation,
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
    note_value,
)

ROLE_ALIASES = {"human": "user", "ai": "assistant"}
"""Role names some apps write for the Chat Completions roles."""

TIMESTAMP_FIELDS = ("created_at", "create_time", "created", "timestamp")
_TIMESTAMP_KEYS = frozenset(TIMESTAMP_FIELDS)


def timestamp_field(messages: list[Any]) -> str:
    """The first of `TIMESTAMP_FIELDS` a message of `messages` has (else `created_at`)."""
    for message in messages:
        if isinstance(message, dict) and not _TIMESTAMP_KEYS.isdisjoint(message):
            for key in TIMESTAMP_FIELDS:
                if message.get(key) is not None:
                    return key
    return "created_at"


MESSAGE_KEYS = frozenset(
    {
        "role",
        "content",
        "name",
        "tool_calls",
        "function_call",
        "tool_call_id",
        "refusal",
        "audio",
        "content_parts",
        "annotations",
        "id",
        *TIMESTAMP_FIELDS,
    }
)
"""The message keys the decoder interprets; every other key goes to the entry's metadata."""


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where a message sits, and what its container knows about it.

    `source_id` and `created_at` from the container win; when they are None the message's own
    `id` and timestamp are used. `number_calls` gives tool calls split off the message positions
    of their own (`POSITION tool_call K`); otherwise they share the message's position.
    """

    position: str
    source_id: str | None = None
    created_at: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    number_calls: bool = True

    def fields(self) -> dict[str, Any]:
        """Keyword arguments for an entry of the neutral model."""
        return {
            "source_id": self.source_id,
            "position": self.position,
            "created_at": self.created_at,
            "metadata": dict(self.metadata),
        }

    def with_source_id(self, source_id: str | None) -> Provenance:
        """The same provenance with another source id (when the value carries its own)."""
        return replace(self, source_id=source_id) if source_id else self


# --- value helpers ---------------------------------------------------------------------------


def compact_json(value: object) -> str:
    """Compact JSON text of a value, keeping non-ASCII characters as they are."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def arguments_text(value: object) -> str:
    """Tool-call arguments as the string the API wants (objects are JSON-encoded)."""
    if value is None:
        return ""
    return value if isinstance(value, str) else compact_json(value)


def parse_timestamp(value: object) -> float | None:
    """Unix seconds from a number (seconds or milliseconds) or an ISO 8601 string, else None."""
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


def describe_type(value: object) -> str:
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


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


# --- messages --------------------------------------------------------------------------------


def message_entries(
    message: Mapping[str, Any], at: Provenance, notes: list[SourceNote]
) -> list[Entry]:
    """Entries for one Chat Completions message: the message, then its tool calls."""
    raw_role = message.get("role")
    if not isinstance(raw_role, str) or not raw_role.strip():
        raise DecodeError("missing_role", f"{at.position} has no role")
    role = ROLE_ALIASES.get(raw_role.strip().lower(), raw_role)
    content = message.get("content")
    if isinstance(message.get("content_parts"), list):
        content = message["content_parts"]  # stored completions: the parts as sent
    # Fast path for the common shape: plain text and nothing else.
    if (
        isinstance(content, str)
        and content
        and len(message) == 2
        and role not in ("tool", "function")
    ):
        # One validation of plain data: a third cheaper than building the part apart.
        return [
            Message.model_validate(
                {
                    **at.fields(),
                    "role": role,
                    "parts": [{"type": "text", "text": content}],
                }
            )
        ]

    own_id = message.get("id")
    own_stamp = None
    if not _TIMESTAMP_KEYS.isdisjoint(message):  # most messages carry no timestamp
        own_stamp = next(
            (
                stamp
                for key in TIMESTAMP_FIELDS
                if (stamp := parse_timestamp(message.get(key))) is not None
            ),
            None,
        )
    extra = {k: v for k, v in message.items() if k not in MESSAGE_KEYS}
    source_id = at.source_id or (own_id if isinstance(own_id, str) and own_id else None)
    created_at = at.created_at if at.created_at is not None else own_stamp
    if extra or source_id is not at.source_id or created_at is not at.created_at:
        at = replace(
            at, source_id=source_id, created_at=created_at, metadata={**at.metadata, **extra}
        )
    name = _text_or_none(message.get("name"))
    if extra:
        notes.append(
            SourceNote(
                code="unmapped_field",
                message=f"{at.position}: message field(s) with no place in the Conversations "
                f"API kept in the report only: {', '.join(sorted(extra))}",
                source_id=at.source_id,
                count=len(extra),
                value=note_value(extra),
            )
        )

    if role in ("tool", "function"):
        call_id = _text_or_none(message.get("tool_call_id")) if role == "tool" else None
        output, parts = tool_output_parts(content, at, notes)
        return [
            ToolResult(
                **at.fields(), call_id=call_id or None, output=output, parts=parts, name=name
            )
        ]

    unknown_before = _unknown_count(notes)
    parts = content_parts(content, at.position, notes, source_id=at.source_id)
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal:
        parts.append(RefusalPart(refusal=refusal))
    audio = message.get("audio")
    if isinstance(audio, dict) and (audio.get("id") or audio.get("transcript")):
        parts.append(
            AudioPart(
                audio_id=_text_or_none(audio.get("id")),
                transcript=_text_or_none(audio.get("transcript")),
            )
        )
    _attach_annotations(message.get("annotations"), parts, at, notes)
    calls = tool_calls(message, at)
    if not parts and not calls and _unknown_count(notes) > unknown_before:
        raise DecodeError(
            "unknown_content",
            f"{at.position}: no content part of this {role} message can be read",
        )
    entries: list[Entry] = []
    has_content = any(not isinstance(p, TextPart) or p.text for p in parts)
    if has_content or not calls:
        entries.append(Message(**at.fields(), role=role, parts=parts, name=name))
    entries.extend(calls)
    return entries


def _unknown_count(notes: list[SourceNote]) -> int:
    return sum(1 for note in notes if note.code == "unknown_part_type")


def tool_calls(message: Mapping[str, Any], at: Provenance) -> list[ToolCall]:
    """`ToolCall`s from a message's `tool_calls` and legacy `function_call`."""
    calls: list[ToolCall] = []
    raw_calls = message.get("tool_calls")
    if raw_calls is not None and not isinstance(raw_calls, list):
        raise DecodeError(
            "invalid_tool_call",
            f"{at.position}: tool_calls is {describe_type(raw_calls)}, expected an array",
        )
    for number, raw in enumerate(raw_calls or []):
        position = f"{at.position} tool_call {number}"
        if not isinstance(raw, dict):
            raise DecodeError(
                "invalid_tool_call", f"{position} is {describe_type(raw)}, expected an object"
            )
        call_id = _text_or_none(raw.get("id")) or None
        fields = {
            **at.fields(),
            "source_id": at.source_id or call_id,
            "position": position if at.number_calls else at.position,
        }
        if raw.get("type") == "custom" or isinstance(raw.get("custom"), dict):
            body = raw.get("custom")
            body = body if isinstance(body, dict) else {}
            calls.append(
                ToolCall(
                    **fields,
                    call_id=call_id,
                    name=_tool_name(body.get("name"), position),
                    arguments=arguments_text(body.get("input")),
                    tool_type="custom",
                )
            )
            continue
        function = raw.get("function")
        if not isinstance(function, dict):
            raise DecodeError("invalid_tool_call", f"{position} has no function object")
        calls.append(
            ToolCall(
                **fields,
                call_id=call_id,
                name=_tool_name(function.get("name"), position),
                arguments=arguments_text(function.get("arguments")),
            )
        )
    legacy = message.get("function_call")
    if isinstance(legacy, dict):
        position = f"{at.position} function_call"
        calls.append(
            ToolCall(
                **{**at.fields(), "position": position if at.number_calls else at.position},
                name=_tool_name(legacy.get("name"), position),
                arguments=arguments_text(legacy.get("arguments")),
            )
        )
    return calls


def _tool_name(value: object, position: str) -> str:
    if not isinstance(value, str) or not value:
        raise DecodeError("invalid_tool_call", f"{position} has no function name")
    return value


def tool_output_parts(
    content: object, at: Provenance, notes: list[SourceNote]
) -> tuple[str, list[Part]]:
    """A tool message's text, and its parts when it holds images or files (see the rules)."""
    if isinstance(content, dict):
        content = [content]
    if isinstance(content, list) and any(
        isinstance(p, dict) and p.get("type") in _MEDIA_PART_TYPES for p in content
    ):
        unknown_before = _unknown_count(notes)
        parts = content_parts(content, at.position, notes, source_id=at.source_id)
        if _unknown_count(notes) == unknown_before:
            text = "".join(p.text for p in parts if isinstance(p, TextPart))
            return text, parts
        del notes[unknown_before:]
    return tool_output(content, at, notes), []


_MEDIA_PART_TYPES = frozenset({"image_url", "input_image", "image_file", "file", "input_file"})


def tool_output(content: object, at: Provenance, notes: list[SourceNote]) -> str:
    """The text of a tool message's content (see the module rules)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        content = [content]
    if isinstance(content, list):
        texts = [
            part if isinstance(part, str) else part.get("text") if isinstance(part, dict) else None
            for part in content
        ]
        if all(isinstance(text, str) for text in texts):
            return "".join(str(text) for text in texts)
        notes.append(
            SourceNote(
                code="tool_output_as_json",
                message=f"{at.position}: the tool output holds parts other than text; it was "
                "sent as their JSON text",
                source_id=at.source_id,
            )
        )
        return compact_json(content)
    raise DecodeError(
        "invalid_content",
        f"{at.position}: tool output is {describe_type(content)}, expected a string or an array",
    )


def content_parts(
    content: object, position: str, notes: list[SourceNote], *, source_id: str | None = None
) -> list[Part]:
    """Content parts from a string, null, a part or an array of parts (Chat Completions style)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [TextPart(text=content)] if content else []
    if isinstance(content, dict):
        content = [content]
    if not isinstance(content, list):
        raise DecodeError(
            "invalid_content",
            f"{position}: content is {describe_type(content)}, expected a string or an array",
        )
    parts: list[Part] = []
    for raw in content:
        if raw is None:
            continue
        if isinstance(raw, str):
            parts.append(TextPart(text=raw))
            continue
        if not isinstance(raw, dict):
            raise DecodeError(
                "invalid_content",
                f"{position}: content part is {describe_type(raw)}, expected an object",
            )
        part = _part(raw, position, notes)
        if part is not None:
            parts.append(part)
            continue
        kind = raw.get("type")
        text = _text_or_none(raw.get("text"))
        if text is not None:
            parts.append(TextPart(text=text))
        notes.append(
            SourceNote(
                code="unknown_part_type",
                message=f"{position}: content part of type {kind!r} is not understood; "
                + ("its text was kept" if text is not None else "it was not migrated"),
                source_id=source_id,
                value=note_value(raw),
            )
        )
    return parts


def _attach_annotations(
    raw: object, parts: list[Part], at: Provenance, notes: list[SourceNote]
) -> None:
    if not raw:
        return
    annotations = annotations_of(raw, at.position, notes, source_id=at.source_id)
    target = next((i for i, part in enumerate(parts) if isinstance(part, TextPart)), None)
    if target is None:
        notes.append(
            SourceNote(
                code="unknown_annotation",
                message=f"{at.position}: annotations on a message without text were not migrated",
                source_id=at.source_id,
                value=note_value(raw),
            )
        )
        return
    part = parts[target]
    assert isinstance(part, TextPart)
    parts[target] = part.model_copy(update={"annotations": [*part.annotations, *annotations]})


ANNOTATION_KINDS = ("url_citation", "file_citation", "file_path", "container_file_citation")


def annotations_of(
    raw: object, position: str, notes: list[SourceNote], *, source_id: str | None = None
) -> list[Annotation]:
    """Citations from an `annotations` array; any other annotation is a note with its value."""
    found: list[Annotation] = []
    for item in raw if isinstance(raw, list) else [raw]:
        kind = item.get("type") if isinstance(item, dict) else None
        if not isinstance(item, dict) or kind not in ANNOTATION_KINDS:
            notes.append(
                SourceNote(
                    code="unknown_annotation",
                    message=f"{position}: annotation of type {kind!r} was not migrated",
                    source_id=source_id,
                    value=note_value(item),
                )
            )
            continue
        nested = item.get(kind)
        body = {**item, **nested} if isinstance(nested, dict) else item
        found.append(
            Annotation(
                kind=kind,
                url=_text_or_none(body.get("url")),
                title=_text_or_none(body.get("title")),
                file_id=_text_or_none(body.get("file_id")),
                filename=_text_or_none(body.get("filename")),
                container_id=_text_or_none(body.get("container_id")),
                quote=_text_or_none(body.get("quote")),
                marker=_text_or_none(body.get("text")),
                start_index=_int_or_none(body.get("start_index")),
                end_index=_int_or_none(body.get("end_index")),
                index=_int_or_none(body.get("index")),
            )
        )
    return found


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _part(raw: dict[str, Any], position: str, notes: list[SourceNote]) -> Part | None:
    kind = raw.get("type")
    match kind:
        case "text" | "input_text" | "output_text":
            text = raw.get("text", raw.get("value"))
            if not isinstance(text, str):
                return None
            annotations = raw.get("annotations")
            if not annotations:
                return TextPart(text=text)
            return TextPart(text=text, annotations=annotations_of(annotations, position, notes))
        case "refusal":
            refusal = raw.get("refusal")
            return RefusalPart(refusal=refusal) if isinstance(refusal, str) else None
        case "image_url" | "input_image":
            return _image_part(raw)
        case "image_file":
            body = raw.get("image_file")
            if isinstance(body, dict) and isinstance(body.get("file_id"), str):
                return ImagePart(file_id=body["file_id"], detail=_text_or_none(body.get("detail")))
            return None
        case "input_audio":
            body = raw.get("input_audio")
            if isinstance(body, dict):
                return AudioPart(
                    data=_text_or_none(body.get("data")), format=_text_or_none(body.get("format"))
                )
            return None
        case "file" | "input_file":
            body = raw.get("file") if kind == "file" else raw
            if isinstance(body, dict):
                return FilePart(
                    file_id=_text_or_none(body.get("file_id")),
                    file_data=_text_or_none(body.get("file_data")),
                    file_url=_text_or_none(body.get("file_url")),
                    filename=_text_or_none(body.get("filename")),
                )
            return None
    return None


def _image_part(raw: dict[str, Any]) -> ImagePart | None:
    body = raw.get("image_url", raw.get("value"))
    detail = _text_or_none(raw.get("detail"))
    if isinstance(body, dict):
        detail = _text_or_none(body.get("detail")) or detail
        body = body.get("url")
    if isinstance(body, str) and body:
        if body.startswith(("http://", "https://", "data:")):
            return ImagePart(url=body, detail=detail)
        return ImagePart(reference=body, detail=detail)
    file_id = raw.get("file_id")
    if isinstance(file_id, str) and file_id:
        return ImagePart(file_id=file_id, detail=detail)
    return None
