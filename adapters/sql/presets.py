"""Row decoders for the tables that chat libraries write: LangChain, Agents SDK, LlamaIndex.

Each decoder takes the parsed JSON of one row and its provenance and returns the neutral
entries it holds (plus notes on repairs), or raises `DecodeError`.

- LangChain `SQLChatMessageHistory` (`message_store`): `{"type", "data"}` from
  `message_to_dict`; tool calls in `data.tool_calls` (args as an object) or, in older rows,
  in `data.additional_kwargs.tool_calls` / `function_call`.
- OpenAI Agents SDK sessions (`agent_messages.message_data`): one Responses input item per row.
  Placeholder ids (`__fake_id__`) are not ids; an empty `call_id` stays `None` so the transform
  repairs and reports it, and the adapter adds a note for each one. Fields of messages, calls,
  outputs and reasoning that do not reach the target (unknown keys, `logprobs`, a `status`
  other than `completed`) are an `unmapped_field` note with their values; hosted tools and
  other item types are read by `adapters.responses.items`, every field shown.
- LlamaIndex `SQLAlchemyChatStore` (`llama_index_memory.data`): a `ChatMessage` with `blocks`
  (or the older `content`) and tool calls in `additional_kwargs`.

It is one module over 500 lines because it is one thing: the row decoders of the three library
schemas, side by side in one shape (a row's JSON to entries and notes) and sharing the notes
for what they do not map.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from adapters.base import DecodeError
from adapters.chat_messages import Provenance, compact_json, content_parts, tool_calls, tool_output
from adapters.model import (
    Annotation,
    AudioPart,
    Entry,
    FilePart,
    ImagePart,
    Message,
    Part,
    Reasoning,
    RefusalPart,
    SourceNote,
    TextPart,
    ToolCall,
    ToolResult,
    note_value,
)
from adapters.responses.items import ItemError, decode_items
from adapters.sql.mapping import Decoded, map_role

PLACEHOLDER_IDS = frozenset({"__fake_id__", "FAKE_ID"})
"""Ids the Agents SDK writes for models that return none; they identify nothing."""


# --- LangChain -------------------------------------------------------------------------------

_LANGCHAIN_TYPES = {
    "human": "user",
    "ai": "assistant",
    "system": "system",
    "developer": "developer",
}


_LANGCHAIN_KEYS = frozenset(
    {"content", "type", "name", "id", "tool_calls", "invalid_tool_calls", "tool_call_id", "role"}
)
_CALL_KWARGS = frozenset({"tool_calls", "function_call"})


def langchain_entries(message: object, info: Provenance) -> Decoded:
    """Entries of one `message_to_dict` value: `{"type": ..., "data": {...}}`; what the target
    has no place for (`response_metadata`, `usage_metadata`, `artifact`, an error `status`,
    other `additional_kwargs`) is an `unmapped_field` note with its values."""
    decoded = _langchain_entries(message, info)
    assert isinstance(message, dict)
    data: dict[str, Any] = message["data"]
    unmapped = _unmapped(data, _LANGCHAIN_KEYS | {"additional_kwargs", "status", "example"})
    unmapped |= _unmapped(data.get("additional_kwargs"), _CALL_KWARGS, "additional_kwargs.")
    if data.get("status") not in (None, "success"):
        unmapped["status"] = data["status"]
    if data.get("example"):
        unmapped["example"] = data["example"]
    at = info.with_source_id(_text_or_none(data.get("id")))
    decoded.notes.extend(_unmapped_note(unmapped, str(message.get("type")), at))
    return decoded


def _unmapped(values: object, known: frozenset[str], prefix: str = "") -> dict[str, Any]:
    """The entries of `values` (a dict) outside `known` that hold something."""
    if not isinstance(values, dict):
        return {}
    return {
        f"{prefix}{key}": value
        for key, value in values.items()
        if key not in known and value not in (None, "", [], {})
    }


def _unmapped_note(unmapped: dict[str, Any], kind: str, info: Provenance) -> list[SourceNote]:
    if not unmapped:
        return []
    return [
        SourceNote(
            code="unmapped_field",
            message=f"{info.position}: {kind} field(s) with no place in the Conversations API "
            f"kept in the report only: {', '.join(sorted(unmapped))}",
            source_id=info.source_id,
            count=len(unmapped),
            value=note_value(unmapped),
        )
    ]


def _langchain_entries(message: object, info: Provenance) -> Decoded:
    if not isinstance(message, dict) or not isinstance(message.get("data"), dict):
        raise DecodeError("unexpected_json", "message is not a LangChain {type, data} object")
    data: dict[str, Any] = message["data"]
    kind = str(message.get("type") or data.get("type") or "").removesuffix("MessageChunk")
    kind = {"AI": "ai", "Human": "human", "System": "system", "Tool": "tool"}.get(kind, kind)
    kind = kind.lower()
    info = info.with_source_id(_text_or_none(data.get("id")))
    name = _text_or_none(data.get("name"))
    if kind == "tool":
        notes: list[SourceNote] = []
        output = _tool_text(data.get("content"), "tool message", info, notes)
        status = data.get("status")
        if status == "error":
            info = replace(info, metadata={**info.metadata, "status": "error"})
        call_id = _text_or_none(data.get("tool_call_id")) or None
        result = ToolResult(**info.fields(), call_id=call_id, output=output, name=name)
        return Decoded([result], notes)
    if kind == "function":
        notes = []
        output = _tool_text(data.get("content"), "function message", info, notes)
        return Decoded([ToolResult(**info.fields(), output=output, name=name)], notes)
    if kind == "chat":
        role = map_role(data.get("role"))
    elif kind in _LANGCHAIN_TYPES:
        role = _LANGCHAIN_TYPES[kind]
    else:
        raise DecodeError("unknown_role", f"unknown LangChain message type {message.get('type')!r}")
    decoded = Decoded()
    calls, notes = _langchain_calls(data, info)
    call_ids = {call.call_id for call in calls if call.call_id}
    parts, reasoning, block_calls = _langchain_blocks(data.get("content"), info, call_ids)
    if data.get("content") is None and not calls and not block_calls:
        raise DecodeError("null_content", f"{kind} message has NULL content")
    decoded.entries.extend(reasoning)
    if parts or not (calls or block_calls):
        decoded.entries.append(Message(**info.fields(), role=role, parts=parts, name=name))
    decoded.entries.extend(block_calls)
    decoded.entries.extend(calls)
    decoded.notes.extend(notes)
    return decoded


def _langchain_calls(
    data: Mapping[str, Any], info: Provenance
) -> tuple[list[ToolCall], list[SourceNote]]:
    calls: list[ToolCall] = []
    notes: list[SourceNote] = []
    for call in data.get("tool_calls") or []:
        if not isinstance(call, dict) or not isinstance(call.get("name"), str):
            raise DecodeError("unexpected_json", f"tool call {call!r} has no name")
        calls.append(
            ToolCall(
                **info.fields(),
                call_id=_text_or_none(call.get("id")) or None,
                name=call["name"],
                arguments=compact_json(call.get("args") or {}),
            )
        )
    for call in data.get("invalid_tool_calls") or []:
        if not isinstance(call, dict):
            raise DecodeError("unexpected_json", f"invalid tool call {call!r} is not an object")
        args = call.get("args")
        calls.append(
            ToolCall(
                **info.fields(),
                call_id=_text_or_none(call.get("id")) or None,
                name=_text_or_none(call.get("name")) or "",
                arguments=args if isinstance(args, str) else compact_json(args or ""),
            )
        )
        notes.append(
            SourceNote(
                code="invalid_tool_call",
                message=f"{info.position}: the model's tool call could not be parsed when it "
                f"was made ({call.get('error') or 'no error given'}); kept with its raw arguments",
                source_id=info.source_id,
            )
        )
    if calls:
        return calls, notes
    extra = data.get("additional_kwargs")
    if isinstance(extra, dict):
        calls = tool_calls({"tool_calls": extra.get("tool_calls")}, info)
        function_call = extra.get("function_call")
        if isinstance(function_call, dict) and isinstance(function_call.get("name"), str):
            arguments = function_call.get("arguments")
            calls.append(
                ToolCall(
                    **info.fields(),
                    name=function_call["name"],
                    arguments=arguments if isinstance(arguments, str) else compact_json(arguments),
                )
            )
    return calls, notes


def _langchain_blocks(
    content: object, info: Provenance, call_ids: set[str]
) -> tuple[list[Part], list[Entry], list[ToolCall]]:
    if not isinstance(content, list):
        return _parts(content, info), [], []
    parts: list[Part] = []
    reasoning: list[Entry] = []
    calls: list[ToolCall] = []
    for block in content:
        if not isinstance(block, dict):
            parts.extend(_parts([block], info))
            continue
        kind = block.get("type")
        if kind in ("reasoning", "thinking"):
            text = block.get("reasoning") or block.get("thinking") or block.get("text")
            reasoning.append(Reasoning(**info.fields(), text=_text_or_none(text)))
        elif kind in ("tool_use", "tool_call"):
            call_id = _text_or_none(block.get("id"))
            if call_id in call_ids:
                continue  # the same call is in `tool_calls`, which wins
            name = block.get("name")
            if not isinstance(name, str):
                raise DecodeError("unexpected_json", f"{kind} block without a name")
            calls.append(
                ToolCall(
                    **info.fields(),
                    call_id=call_id or None,
                    name=name,
                    arguments=compact_json(block.get("input") or block.get("args") or {}),
                )
            )
        elif kind == "image" or kind == "file":
            parts.append(_standard_block(block))
        else:
            parts.extend(_parts([block], info))
    return parts, reasoning, calls


def _standard_block(block: Mapping[str, Any]) -> Part:
    """A LangChain standard image/file block (`url`, `base64` + `mime_type`, `file_id`)."""
    source_type = block.get("source_type")
    url = _text_or_none(block.get("url"))
    data = _text_or_none(block.get("base64")) or (
        _text_or_none(block.get("data")) if source_type == "base64" else None
    )
    file_id = _text_or_none(block.get("file_id")) or (
        _text_or_none(block.get("id")) if source_type == "id" else None
    )
    mime = _text_or_none(block.get("mime_type")) or "application/octet-stream"
    data_url = f"data:{mime};base64,{data}" if data else None
    if block.get("type") == "image":
        if not (url or data_url or file_id):
            raise DecodeError("unexpected_json", "image block without url, data or file id")
        return ImagePart(url=url or data_url, file_id=file_id)
    if not (url or data_url or file_id):
        raise DecodeError("unexpected_json", "file block without url, data or file id")
    filename = block.get("filename") or (block.get("metadata") or {}).get("filename")
    return FilePart(
        file_id=file_id, file_data=data_url, file_url=url, filename=_text_or_none(filename)
    )


# --- OpenAI Agents SDK -----------------------------------------------------------------------


def agents_item_entries(item: object, info: Provenance) -> Decoded:
    """Entries of one Agents SDK session item (a Responses input item)."""
    if not isinstance(item, dict):
        raise DecodeError("unexpected_json", "message_data is not a Responses item object")
    item_id = _text_or_none(item.get("id"))
    info = info.with_source_id(None if item_id in PLACEHOLDER_IDS else item_id)
    kind = item.get("type")
    if kind in (None, "message") and "role" in item:
        role = map_role(item.get("role"))
        if role in ("tool", "function"):
            raise DecodeError("unknown_role", f"role {role!r} in a Responses message item")
        message = Message(**info.fields(), role=role, parts=responses_parts(item))
        return Decoded([message], _unmapped_fields(item, "message", info))
    if isinstance(kind, str) and kind in _AGENTS_ITEM_KEYS:
        decoded = _agents_item(item, kind, info)
        decoded.notes.extend(_unmapped_fields(item, kind, info))
        return decoded
    if isinstance(kind, str):
        return _responses_item(item, info)
    raise DecodeError("unexpected_json", "item has neither a type nor a role")


_AGENTS_ITEM_KEYS: dict[str, frozenset[str]] = {
    "message": frozenset({"type", "id", "role", "content", "status"}),
    "function_call": frozenset({"type", "id", "call_id", "name", "arguments", "status"}),
    "custom_tool_call": frozenset({"type", "id", "call_id", "name", "input", "status"}),
    "function_call_output": frozenset({"type", "id", "call_id", "output", "status"}),
    "custom_tool_call_output": frozenset({"type", "id", "call_id", "output", "status"}),
    "reasoning": frozenset({"type", "id", "summary", "content", "encrypted_content", "status"}),
}
"""The fields each item type maps; `status` only when `completed` (what a landed item is)."""
_PART_KEYS: dict[str, frozenset[str]] = {
    "input_text": frozenset({"type", "text", "annotations"}),
    "output_text": frozenset({"type", "text", "annotations"}),
    "text": frozenset({"type", "text", "annotations"}),
    "refusal": frozenset({"type", "refusal"}),
    "input_image": frozenset({"type", "image_url", "file_id", "detail"}),
    "input_file": frozenset({"type", "file_id", "file_data", "file_url", "filename"}),
    "input_audio": frozenset({"type", "input_audio"}),
}


def _unmapped_fields(item: Mapping[str, Any], kind: str, info: Provenance) -> list[SourceNote]:
    """An `unmapped_field` note for the fields of an item (and of its content parts) that do
    not reach the target: unknown keys that hold something, and a `status` other than
    `completed`."""
    unmapped = _unmapped(dict(item), _AGENTS_ITEM_KEYS[kind])
    if item.get("status") not in (None, "completed"):
        unmapped["status"] = item["status"]
    content = item.get("content") if kind == "message" else None
    for index, part in enumerate(content if isinstance(content, list) else []):
        if isinstance(part, dict) and part.get("type") in _PART_KEYS:
            unmapped |= _unmapped(part, _PART_KEYS[part["type"]], f"content[{index}].")
    return _unmapped_note(unmapped, kind, info)


def _responses_item(item: Mapping[str, Any], info: Provenance) -> Decoded:
    """Hosted tools and every other item type, read as the Responses reader reads them (every
    field shown, the item kept for `provider_items = "keep"`), at the row's provenance."""
    try:
        history = decode_items([dict(item)])
    except ItemError as exc:
        raise DecodeError("unexpected_json", str(exc)) from None
    fields = info.fields()
    entries = [
        entry.model_copy(
            update={**fields, "source_id": info.source_id or entry.source_id}, deep=True
        )
        for entry in history.entries
    ]
    notes = [
        note.model_copy(update={"message": f"{info.position}: {note.message}"})
        for note in history.notes
    ]
    return Decoded(entries, notes)


def _agents_item(item: Mapping[str, Any], kind: str, info: Provenance) -> Decoded:
    match kind:
        case "function_call" | "custom_tool_call":
            name = item.get("name")
            if not isinstance(name, str):
                raise DecodeError("unexpected_json", f"{kind} without a name")
            arguments = item.get("arguments") if kind == "function_call" else item.get("input")
            call_id = _text_or_none(item.get("call_id")) or None
            call = ToolCall(
                **info.fields(),
                call_id=call_id,
                name=name,
                arguments=arguments if isinstance(arguments, str) else compact_json(arguments),
                tool_type="function" if kind == "function_call" else "custom",
            )
            return Decoded([call], _empty_call_id_notes(call_id, kind, name, info))
        case "function_call_output" | "custom_tool_call_output":
            call_id = _text_or_none(item.get("call_id")) or None
            output_notes: list[SourceNote] = []
            result = ToolResult(
                **info.fields(),
                call_id=call_id,
                output=_tool_text(item.get("output"), kind, info, output_notes),
                tool_type="function" if kind == "function_call_output" else "custom",
            )
            return Decoded([result], output_notes + _empty_call_id_notes(call_id, kind, None, info))
        case "reasoning":
            texts = [
                part["text"]
                for key in ("summary", "content")
                for part in item.get(key) or []
                if isinstance(part, dict) and isinstance(part.get("text"), str)
            ]
            return Decoded(
                [
                    Reasoning(
                        **info.fields(),
                        text="\n\n".join(texts) or None,
                        encrypted=bool(item.get("encrypted_content")),
                    )
                ]
            )
    raise DecodeError("unexpected_json", f"item type {kind!r} is not read here")


def _empty_call_id_notes(
    call_id: str | None, kind: str, name: str | None, info: Provenance
) -> list[SourceNote]:
    if call_id is not None:
        return []
    what = f"{kind} {name!r}" if name else kind
    return [
        SourceNote(
            code="empty_call_id",
            message=f"{info.position}: {what} has an empty call_id (the Agents SDK stores "
            "none for some non-OpenAI models); calls and outputs are paired by order",
            source_id=info.source_id,
        )
    ]


def responses_parts(item: Mapping[str, Any]) -> list[Part]:
    """Parts of a Responses message item's `content` (a string or input/output parts)."""
    content = item.get("content")
    if content is None:
        raise DecodeError("null_content", f"{item.get('role')} message has NULL content")
    if isinstance(content, str):
        return [TextPart(text=content)] if content else []
    if not isinstance(content, list):
        raise DecodeError("unexpected_json", f"content is {type(content).__name__}, not text")
    parts: list[Part] = []
    for part in content:
        if not isinstance(part, dict):
            raise DecodeError("unexpected_json", f"content part {part!r} is not an object")
        match part.get("type"):
            case "input_text" | "output_text" | "text":
                text = part.get("text")
                if not isinstance(text, str):
                    raise DecodeError("unexpected_json", "text part without text")
                annotations = [_annotation(note) for note in part.get("annotations") or []]
                parts.append(TextPart(text=text, annotations=annotations))
            case "refusal":
                parts.append(RefusalPart(refusal=str(part.get("refusal") or "")))
            case "input_image":
                parts.append(
                    ImagePart(
                        url=_text_or_none(part.get("image_url")),
                        file_id=_text_or_none(part.get("file_id")),
                        detail=_text_or_none(part.get("detail")),
                    )
                )
            case "input_file":
                parts.append(
                    FilePart(
                        file_id=_text_or_none(part.get("file_id")),
                        file_data=_text_or_none(part.get("file_data")),
                        file_url=_text_or_none(part.get("file_url")),
                        filename=_text_or_none(part.get("filename")),
                    )
                )
            case "input_audio":
                audio = part.get("input_audio") or {}
                parts.append(
                    AudioPart(
                        data=_text_or_none(audio.get("data")),
                        format=_text_or_none(audio.get("format")),
                    )
                )
            case other:
                raise DecodeError("unknown_content", f"unknown content part type {other!r}")
    return parts


def _annotation(note: object) -> Annotation:
    if not isinstance(note, dict):
        raise DecodeError("unexpected_json", f"annotation {note!r} is not an object")
    kind = note.get("type")
    if kind not in ("file_citation", "file_path", "url_citation", "container_file_citation"):
        raise DecodeError("unknown_content", f"unknown annotation type {kind!r}")
    fields = {key: note[key] for key in Annotation.model_fields if key != "kind" and key in note}
    return Annotation.model_validate({"kind": kind, **fields})


# --- LlamaIndex ------------------------------------------------------------------------------

_LLAMAINDEX_ROLES = {"chatbot": "assistant", "model": "assistant"}


_LLAMAINDEX_KWARGS = frozenset({"name", "tool_calls", "tool_call_id"})


def llamaindex_entries(message: object, info: Provenance, *, row_role: object = None) -> Decoded:
    """Entries of one `ChatMessage.model_dump(mode="json")` value; keys and `additional_kwargs`
    the target has no place for are an `unmapped_field` note with their values."""
    decoded = _llamaindex_entries(message, info, row_role=row_role)
    assert isinstance(message, dict)
    unmapped = _unmapped(message, frozenset({"role", "blocks", "content", "additional_kwargs"}))
    kwargs = message.get("additional_kwargs")
    unmapped |= _unmapped(kwargs, _LLAMAINDEX_KWARGS, "additional_kwargs.")
    decoded.notes.extend(_unmapped_note(unmapped, "ChatMessage", info))
    return decoded


def _llamaindex_entries(message: object, info: Provenance, *, row_role: object = None) -> Decoded:
    if not isinstance(message, dict):
        raise DecodeError("unexpected_json", "data is not a ChatMessage object")
    raw_role = message.get("role") or row_role
    role = _LLAMAINDEX_ROLES.get(str(raw_role).lower()) or map_role(raw_role)
    extra = message.get("additional_kwargs")
    extra = extra if isinstance(extra, dict) else {}
    name = _text_or_none(extra.get("name"))
    if "blocks" in message:
        parts, reasoning, block_calls = _llamaindex_blocks(message["blocks"], info)
        content_missing = message["blocks"] is None
    else:
        parts, reasoning, block_calls = _parts(message.get("content"), info), [], []
        content_missing = message.get("content") is None
    if role in ("tool", "function"):
        if content_missing:
            raise DecodeError("null_content", f"{role} message has NULL content")
        output = "".join(part.text for part in parts if isinstance(part, TextPart))
        call_id = _text_or_none(extra.get("tool_call_id")) if role == "tool" else None
        return Decoded(
            [ToolResult(**info.fields(), call_id=call_id or None, output=output, name=name)]
        )
    calls = block_calls + tool_calls(
        {"tool_calls": _plain_tool_calls(extra.get("tool_calls"))}, info
    )
    if content_missing and not calls:
        raise DecodeError("null_content", f"{role} message has NULL content")
    entries: list[Entry] = list(reasoning)
    if parts or not calls:
        entries.append(Message(**info.fields(), role=role, parts=parts, name=name))
    entries.extend(calls)
    return Decoded(entries)


def _plain_tool_calls(tool_calls: object) -> object:
    """Tool calls as stored by LlamaIndex: OpenAI dicts, possibly with extra SDK fields."""
    if not isinstance(tool_calls, list):
        return tool_calls
    return [
        {"id": call.get("id"), "type": "function", "function": call.get("function")}
        if isinstance(call, dict) and "function" in call
        else call
        for call in tool_calls
    ]


def _llamaindex_blocks(
    blocks: object, info: Provenance
) -> tuple[list[Part], list[Entry], list[ToolCall]]:
    if blocks is None:
        return [], [], []
    if not isinstance(blocks, list):
        raise DecodeError("unexpected_json", "blocks is not a list")
    parts: list[Part] = []
    reasoning: list[Entry] = []
    calls: list[ToolCall] = []
    for block in blocks:
        if not isinstance(block, dict):
            raise DecodeError("unexpected_json", f"block {block!r} is not an object")
        kind = block.get("block_type")
        match kind:
            case "text":
                text = block.get("text")
                if not isinstance(text, str):
                    raise DecodeError("unexpected_json", "text block without text")
                if text:
                    parts.append(TextPart(text=text))
            case "image":
                data = _text_or_none(block.get("image"))
                mime = _text_or_none(block.get("image_mimetype")) or "image/png"
                url = _text_or_none(block.get("url")) or (
                    f"data:{mime};base64,{data}" if data else None
                )
                path = _text_or_none(block.get("path"))
                if not (url or path):
                    raise DecodeError("unexpected_json", "image block without url, data or path")
                parts.append(
                    ImagePart(url=url, reference=path, detail=_text_or_none(block.get("detail")))
                )
            case "audio":
                parts.append(
                    AudioPart(
                        data=_text_or_none(block.get("audio")),
                        format=_text_or_none(block.get("format")),
                    )
                )
            case "document":
                data = _text_or_none(block.get("data"))
                mime = _text_or_none(block.get("document_mimetype")) or "application/pdf"
                parts.append(
                    FilePart(
                        file_data=f"data:{mime};base64,{data}" if data else None,
                        file_url=_text_or_none(block.get("url")),
                        filename=_text_or_none(block.get("title")),
                    )
                )
            case "thinking":
                text = _text_or_none(block.get("content"))
                reasoning.append(Reasoning(**info.fields(), text=text))
            case "tool_call":
                name = block.get("tool_name")
                if not isinstance(name, str):
                    raise DecodeError("unexpected_json", "tool_call block without tool_name")
                arguments = block.get("tool_kwargs")
                calls.append(
                    ToolCall(
                        **info.fields(),
                        call_id=_text_or_none(block.get("tool_call_id")) or None,
                        name=name,
                        arguments=arguments
                        if isinstance(arguments, str)
                        else compact_json(arguments or {}),
                    )
                )
            case other:
                raise DecodeError("unknown_content", f"unknown LlamaIndex block type {other!r}")
    return parts, reasoning, calls


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _parts(content: object, info: Provenance) -> list[Part]:
    """Chat Completions content parts; a part that cannot be read fails the row (presets)."""
    notes: list[SourceNote] = []
    parts = content_parts(content, info.position, notes, source_id=info.source_id)
    if notes:
        raise DecodeError("unknown_content", notes[0].message)
    return parts


def _tool_text(content: object, what: str, info: Provenance, notes: list[SourceNote]) -> str:
    """A tool output's text; NULL content fails the row (presets store every output)."""
    if content is None:
        raise DecodeError("null_content", f"{what} has NULL content")
    return tool_output(content, info, notes)
