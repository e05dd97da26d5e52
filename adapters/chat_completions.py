"""Chat Completions message arrays (and OpenAI fine-tuning lines) to neutral conversations.

A record is an object holding a messages array (`messages_field`, else `messages`,
`conversations`, `history` or `turns`), or a bare array of messages. Entry positions are
`message N` (0-based index in that array); tool calls split off an assistant message are
`message N tool_call K`. Message keys this reader does not interpret (`weight`, timestamps an
app added, ...) are kept in the entry's metadata; top-level keys other than the id, title,
timestamp, metadata and messages (fine-tuning `tools`, `functions`, `parallel_tool_calls`, ...)
are kept in the conversation's metadata.
"""

from __future__ import annotations

from typing import Any

from adapters._json_common import (
    RecordContext,
    RecordError,
    arguments_text,
    describe_type,
    first_timestamp,
    parse_timestamp,
    pick_id,
)
from adapters.model import (
    AudioPart,
    Entry,
    FilePart,
    ImagePart,
    Message,
    Part,
    RefusalPart,
    SourceConversation,
    SourceNote,
    TextPart,
    ToolCall,
    ToolResult,
)

MESSAGES_FIELDS = ("messages", "conversations", "history", "turns")

_MESSAGE_KEYS = frozenset(
    {
        "role",
        "content",
        "name",
        "tool_calls",
        "function_call",
        "tool_call_id",
        "refusal",
        "audio",
        "id",
        "created_at",
        "create_time",
        "created",
        "timestamp",
    }
)
_TITLE_FIELD = "title"


def find_messages_field(record: dict[str, Any], configured: str | None) -> str | None:
    """The name of the record's messages field, or None if it has none."""
    if configured:
        return configured if configured in record else None
    for name in MESSAGES_FIELDS:
        if name in record:
            return name
    return None


def read_chat_completions(
    value: Any, ctx: RecordContext, *, source_kind: str
) -> SourceConversation:
    """Turn one record into a conversation; raises RecordError if it cannot be read."""
    if isinstance(value, list):
        return _conversation(value, ctx, source_kind=source_kind, conversation_id=ctx.derived_id)
    if not isinstance(value, dict):
        raise RecordError(
            "not_an_object",
            f"{ctx.location}: the record is {describe_type(value)}, expected an object with a "
            "messages array or an array of messages",
        )
    config = ctx.config
    conversation_id, id_field = pick_id(value, config.id_field, ctx.derived_id)
    field = find_messages_field(value, config.messages_field)
    if field is None:
        looked_for = config.messages_field or ", ".join(MESSAGES_FIELDS)
        raise RecordError(
            "missing_messages",
            f"{ctx.location}: conversation {conversation_id!r} has no messages field "
            f"(looked for {looked_for})",
            conversation_id=conversation_id,
        )
    created_at, created_field = first_timestamp(value)
    title = value.get(_TITLE_FIELD)
    meta_name = config.metadata_field or "metadata"
    consumed = {field, meta_name, _TITLE_FIELD, id_field, created_field}
    metadata = {k: v for k, v in value.items() if k not in consumed}
    own = value.get(meta_name)
    if isinstance(own, dict):
        metadata.update(own)
    elif own is not None:
        metadata[meta_name] = own
    conversation = _conversation(
        value[field], ctx, source_kind=source_kind, conversation_id=conversation_id, field=field
    )
    conversation.title = title if isinstance(title, str) else None
    conversation.created_at = created_at
    conversation.metadata = metadata
    return conversation


def _conversation(
    messages: Any,
    ctx: RecordContext,
    *,
    source_kind: str,
    conversation_id: str,
    field: str = "messages",
) -> SourceConversation:
    if not isinstance(messages, list):
        raise RecordError(
            "invalid_messages",
            f"{ctx.location}: conversation {conversation_id!r}: {field!r} is "
            f"{describe_type(messages)}, expected an array of messages",
            conversation_id=conversation_id,
        )
    notes: list[SourceNote] = []
    try:
        entries = messages_to_entries(messages, notes)
    except RecordError as exc:
        exc.message = f"{ctx.location}: conversation {conversation_id!r}: {exc.message}"
        exc.conversation_id = conversation_id
        raise
    return SourceConversation(
        source_kind=source_kind,
        id=conversation_id,
        location=ctx.location,
        entries=entries,
        notes=notes,
    )


def messages_to_entries(messages: list[Any], notes: list[SourceNote]) -> list[Entry]:
    """Map Chat Completions messages to timeline entries, in order."""
    entries: list[Entry] = []
    for index, message in enumerate(messages):
        position = f"message {index}"
        if not isinstance(message, dict):
            raise RecordError(
                "invalid_message", f"{position} is {describe_type(message)}, expected an object"
            )
        role = message.get("role")
        if not isinstance(role, str) or not role:
            raise RecordError("missing_role", f"{position} has no role")
        content = message.get("content")
        # Fast path for the common shape: plain text and nothing else.
        if isinstance(content, str) and len(message) == 2 and role not in ("tool", "function"):
            entries.append(Message(role=role, parts=[TextPart(text=content)], position=position))
            continue
        entries.extend(_message_entries(message, role, index, notes))
    return entries


def _message_entries(
    message: dict[str, Any], role: str, index: int, notes: list[SourceNote]
) -> list[Entry]:
    position = f"message {index}"
    source_id = message.get("id") if isinstance(message.get("id"), str) else None
    created_at = next(
        (
            stamp
            for key in ("created_at", "create_time", "created", "timestamp")
            if (stamp := parse_timestamp(message.get(key))) is not None
        ),
        None,
    )
    extra = {k: v for k, v in message.items() if k not in _MESSAGE_KEYS}
    name = message.get("name") if isinstance(message.get("name"), str) else None
    content = message.get("content")

    if role == "tool":
        return [
            ToolResult(
                call_id=_str_or_none(message.get("tool_call_id")),
                output=_output_text(content, position),
                name=name,
                source_id=source_id,
                position=position,
                created_at=created_at,
                metadata=extra,
            )
        ]
    if role == "function":
        return [
            ToolResult(
                call_id=None,
                output=_output_text(content, position),
                name=name,
                source_id=source_id,
                position=position,
                created_at=created_at,
                metadata=extra,
            )
        ]

    parts = content_parts(content, position, notes, source_id=source_id)
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal:
        parts.append(RefusalPart(refusal=refusal))
    audio = message.get("audio")
    if isinstance(audio, dict):
        parts.append(
            AudioPart(
                audio_id=_str_or_none(audio.get("id")),
                transcript=_str_or_none(audio.get("transcript")),
            )
        )

    calls = _tool_calls(message, index, created_at=created_at, extra=extra)
    entries: list[Entry] = []
    has_text = any(not isinstance(p, TextPart) or p.text for p in parts)
    if has_text or not calls:
        entries.append(
            Message(
                role=role,
                parts=parts,
                name=name,
                source_id=source_id,
                position=position,
                created_at=created_at,
                metadata=extra,
            )
        )
    entries.extend(calls)
    return entries


def _tool_calls(
    message: dict[str, Any], index: int, *, created_at: float | None, extra: dict[str, Any]
) -> list[ToolCall]:
    calls: list[ToolCall] = []
    raw_calls = message.get("tool_calls")
    if raw_calls is not None and not isinstance(raw_calls, list):
        raise RecordError(
            "invalid_tool_call",
            f"message {index}: tool_calls is {describe_type(raw_calls)}, expected an array",
        )
    for number, raw in enumerate(raw_calls or []):
        position = f"message {index} tool_call {number}"
        if not isinstance(raw, dict):
            raise RecordError(
                "invalid_tool_call", f"{position} is {describe_type(raw)}, expected an object"
            )
        call_id = _str_or_none(raw.get("id"))
        if raw.get("type") == "custom" or "custom" in raw:
            body = raw.get("custom")
            body = body if isinstance(body, dict) else {}
            calls.append(
                ToolCall(
                    call_id=call_id,
                    name=_tool_name(body.get("name"), position),
                    arguments=arguments_text(body.get("input")),
                    tool_type="custom",
                    source_id=call_id,
                    position=position,
                    created_at=created_at,
                    metadata=dict(extra),
                )
            )
            continue
        function = raw.get("function")
        if not isinstance(function, dict):
            raise RecordError("invalid_tool_call", f"{position} has no function object")
        calls.append(
            ToolCall(
                call_id=call_id,
                name=_tool_name(function.get("name"), position),
                arguments=arguments_text(function.get("arguments")),
                source_id=call_id,
                position=position,
                created_at=created_at,
                metadata=dict(extra),
            )
        )
    legacy = message.get("function_call")
    if isinstance(legacy, dict):
        position = f"message {index} function_call"
        calls.append(
            ToolCall(
                call_id=None,
                name=_tool_name(legacy.get("name"), position),
                arguments=arguments_text(legacy.get("arguments")),
                position=position,
                created_at=created_at,
                metadata=dict(extra),
            )
        )
    return calls


def _tool_name(value: Any, position: str) -> str:
    if not isinstance(value, str) or not value:
        raise RecordError("invalid_tool_call", f"{position} has no function name")
    return value


def content_parts(
    content: Any, position: str, notes: list[SourceNote], *, source_id: str | None = None
) -> list[Part]:
    """Content parts from a string, null, a part or an array of parts (Chat Completions style)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [TextPart(text=content)]
    if isinstance(content, dict):
        content = [content]
    if not isinstance(content, list):
        raise RecordError(
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
            raise RecordError(
                "invalid_content",
                f"{position}: content part is {describe_type(raw)}, expected an object",
            )
        part = _part(raw)
        if part is not None:
            parts.append(part)
            continue
        kind = raw.get("type")
        text = raw.get("text") if isinstance(raw.get("text"), str) else None
        if text is not None:
            parts.append(TextPart(text=text))
        notes.append(
            SourceNote(
                code="unknown_part_type",
                message=f"{position}: content part of type {kind!r} is not understood; "
                + ("its text was kept" if text is not None else "it was not migrated"),
                source_id=source_id,
            )
        )
    return parts


def _part(raw: dict[str, Any]) -> Part | None:
    kind = raw.get("type")
    match kind:
        case "text" | "input_text" | "output_text":
            text = raw.get("text", raw.get("value"))
            return TextPart(text=text) if isinstance(text, str) else None
        case "refusal":
            refusal = raw.get("refusal")
            return RefusalPart(refusal=refusal) if isinstance(refusal, str) else None
        case "image_url" | "input_image":
            return _image_part(raw)
        case "image_file":
            body = raw.get("image_file")
            if isinstance(body, dict) and isinstance(body.get("file_id"), str):
                return ImagePart(file_id=body["file_id"], detail=_str_or_none(body.get("detail")))
            return None
        case "input_audio":
            body = raw.get("input_audio")
            if isinstance(body, dict):
                return AudioPart(
                    data=_str_or_none(body.get("data")), format=_str_or_none(body.get("format"))
                )
            return None
        case "file" | "input_file":
            body = raw.get("file") if kind == "file" else raw
            if isinstance(body, dict):
                return FilePart(
                    file_id=_str_or_none(body.get("file_id")),
                    file_data=_str_or_none(body.get("file_data")),
                    file_url=_str_or_none(body.get("file_url")),
                    filename=_str_or_none(body.get("filename")),
                )
            return None
    return None


def _image_part(raw: dict[str, Any]) -> ImagePart | None:
    body = raw.get("image_url", raw.get("value"))
    detail = _str_or_none(raw.get("detail"))
    if isinstance(body, dict):
        detail = _str_or_none(body.get("detail")) or detail
        body = body.get("url")
    if isinstance(body, str) and body:
        if body.startswith(("http://", "https://", "data:")):
            return ImagePart(url=body, detail=detail)
        return ImagePart(reference=body, detail=detail)
    file_id = raw.get("file_id")
    if isinstance(file_id, str) and file_id:
        return ImagePart(file_id=file_id, detail=detail)
    return None


def _output_text(content: Any, position: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            part if isinstance(part, str) else part.get("text")
            for part in content
            if isinstance(part, str | dict)
        ]
        return "\n".join(t for t in texts if isinstance(t, str))
    raise RecordError(
        "invalid_content",
        f"{position}: tool output is {describe_type(content)}, expected a string or an array",
    )


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None
