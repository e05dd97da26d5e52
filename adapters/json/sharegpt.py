"""ShareGPT records (FastChat, LLaMA-Factory) to neutral conversations.

Two shapes: `{"conversations": [{"from", "value"}], "system"?, "tools"?}` and the multimodal
`{"messages": [{"role", "content"}], "images": [...]}` whose texts hold one `<image>` token per
image. Roles: human/user -> user; gpt/assistant/chatgpt/bard/model -> assistant; system;
`function_call` (a JSON string `{name, arguments}`, or a list of them) -> ToolCall without a
call id; `observation`/`tool` -> ToolResult without a call id (the transform pairs them by
order). Any other role is kept verbatim. Each `<image>` token becomes an ImagePart referencing
the matching path, in place; images left without a token are appended to the first user turn.
Entry positions are `message N` (0-based turn index); the top-level system prompt is `system`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from adapters.base import DecodeError
from adapters.chat_messages import arguments_text, content_parts, describe_type
from adapters.json.common import RecordContext, pick_id
from adapters.model import (
    Entry,
    ImagePart,
    Message,
    Part,
    SourceConversation,
    SourceNote,
    TextPart,
    ToolCall,
    ToolResult,
)

TURN_FIELDS = ("conversations", "messages")
USER_ROLES = frozenset({"human", "user"})
ASSISTANT_ROLES = frozenset({"gpt", "assistant", "chatgpt", "bard", "model"})
TOOL_RESULT_ROLES = frozenset({"observation", "tool"})
IMAGE_TOKEN = "<image>"
_IMAGE_TOKEN_RE = re.compile(re.escape(IMAGE_TOKEN))
_CONSUMED = frozenset({"system", "tools", "images"})


def read_sharegpt(value: Any, ctx: RecordContext) -> SourceConversation:
    """Turn one ShareGPT record into a conversation; raises DecodeError if it cannot be read."""
    if isinstance(value, list):
        value = {"conversations": value}
    if not isinstance(value, dict):
        raise DecodeError(
            "not_an_object",
            f"{ctx.location}: the record is {describe_type(value)}, expected an object with "
            "a conversations array",
        )
    config = ctx.config
    conversation_id, id_field = pick_id(value, config.id_field, ctx.derived_id)
    field = config.messages_field or next((f for f in TURN_FIELDS if f in value), None)
    if field is None or field not in value:
        raise DecodeError(
            "missing_messages",
            f"{ctx.location}: conversation {conversation_id!r} has no "
            f"{field or ' or '.join(TURN_FIELDS)} field",
            conversation_id=conversation_id,
        )
    turns = value[field]
    if not isinstance(turns, list):
        raise DecodeError(
            "invalid_messages",
            f"{ctx.location}: conversation {conversation_id!r}: {field!r} is "
            f"{describe_type(turns)}, expected an array of turns",
            conversation_id=conversation_id,
        )
    notes: list[SourceNote] = []
    metadata: dict[str, Any] = {
        k: v for k, v in value.items() if k not in _CONSUMED and k not in (field, id_field)
    }
    tools = value.get("tools")
    if isinstance(tools, str) and tools.strip():
        try:
            metadata["tools"] = json.loads(tools)
        except ValueError:
            metadata["tools"] = tools
            notes.append(
                SourceNote(
                    code="tools_unparsed",
                    message="the tools string is not valid JSON; it was kept as text",
                )
            )
    elif tools:
        metadata["tools"] = tools
    images = value.get("images")
    image_paths = [str(p) for p in images] if isinstance(images, list) else []
    if image_paths:
        metadata["images"] = image_paths
    try:
        entries = _entries(value.get("system"), turns, image_paths, notes)
    except DecodeError as exc:
        exc.message = f"{ctx.location}: conversation {conversation_id!r}: {exc.message}"
        exc.conversation_id = conversation_id
        raise
    return SourceConversation(
        source_kind="sharegpt",
        id=conversation_id,
        location=ctx.location,
        entries=entries,
        metadata=metadata,
        notes=notes,
    )


def _entries(
    system: Any, turns: list[Any], image_paths: list[str], notes: list[SourceNote]
) -> list[Entry]:
    entries: list[Entry] = []
    if isinstance(system, str) and system:
        entries.append(Message(role="system", parts=[TextPart(text=system)], position="system"))
    images = iter(image_paths)
    for index, turn in enumerate(turns):
        position = f"message {index}"
        if not isinstance(turn, dict):
            raise DecodeError(
                "invalid_message", f"{position} is {describe_type(turn)}, expected an object"
            )
        raw_role = turn.get("from", turn.get("role"))
        if not isinstance(raw_role, str) or not raw_role:
            raise DecodeError("missing_role", f"{position} has no 'from' (or 'role')")
        text = turn.get("value", turn.get("content"))
        if raw_role == "function_call":
            entries.extend(_function_calls(text, position))
        elif raw_role in TOOL_RESULT_ROLES:
            entries.append(ToolResult(output=_plain_text(text, position), position=position))
        else:
            role = _map_role(raw_role)
            parts = _parts_with_images(text, position, images, notes)
            entries.append(Message(role=role, parts=parts, position=position))
    leftover = list(images)
    if leftover:
        _attach_leftover_images(entries, leftover, notes)
    return entries


def _map_role(role: str) -> str:
    if role in USER_ROLES:
        return "user"
    if role in ASSISTANT_ROLES:
        return "assistant"
    return role


def _plain_text(value: Any, position: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    raise DecodeError(
        "invalid_content", f"{position}: value is {describe_type(value)}, expected a string"
    )


def _function_calls(value: Any, position: str) -> list[ToolCall]:
    parsed = value
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError as exc:
            raise DecodeError(
                "invalid_tool_call",
                f"{position}: function_call value is not JSON ({exc}); expected "
                '{"name": ..., "arguments": ...}',
            ) from exc
    calls = parsed if isinstance(parsed, list) else [parsed]
    result: list[ToolCall] = []
    for number, call in enumerate(calls):
        where = position if len(calls) == 1 else f"{position} call {number}"
        name = call.get("name") if isinstance(call, dict) else None
        if not isinstance(call, dict) or not isinstance(name, str) or not name:
            raise DecodeError("invalid_tool_call", f"{where}: function_call has no name")
        result.append(
            ToolCall(name=name, arguments=arguments_text(call.get("arguments")), position=where)
        )
    return result


def _parts_with_images(
    value: Any, position: str, images: Iterator[str], notes: list[SourceNote]
) -> list[Part]:
    if not isinstance(value, str):
        return content_parts(value, position, notes)
    if IMAGE_TOKEN not in value:
        return [TextPart(text=value)]
    parts: list[Part] = []
    pieces = _IMAGE_TOKEN_RE.split(value)
    for number, piece in enumerate(pieces):
        if number > 0:
            path = next(images, None)
            if path is None:
                notes.append(
                    SourceNote(
                        code="image_missing",
                        message=f"{position}: an {IMAGE_TOKEN} token has no matching image; "
                        "the token was kept as text",
                    )
                )
                piece = IMAGE_TOKEN + piece
            else:
                parts.append(ImagePart(reference=path))
        if piece:
            if parts and isinstance(parts[-1], TextPart):
                parts[-1] = TextPart(text=parts[-1].text + piece)
            else:
                parts.append(TextPart(text=piece))
    return parts


def _attach_leftover_images(
    entries: list[Entry], paths: list[str], notes: list[SourceNote]
) -> None:
    target = next((e for e in entries if isinstance(e, Message) and e.role == "user"), None)
    if target is None:
        target = Message(role="user", position="images")
        entries.insert(0, target)
    target.parts.extend(ImagePart(reference=path) for path in paths)
    notes.append(
        SourceNote(
            code="image_without_token",
            message=f"{len(paths)} image(s) had no {IMAGE_TOKEN} token; they were attached "
            "to the first user turn",
            count=len(paths),
        )
    )
