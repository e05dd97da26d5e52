"""One record of a Responses history file: the shapes read and how they become a conversation.

A record (one JSONL line, one JSON object, or one element of a JSON array of records) is one
conversation, in any of these shapes:

- a bare array of items;
- an object with `items` (the layout `migrate export-responses` writes);
- an object with `input` (a string or items) and `output` (items), e.g. a stored request and
  its response;
- a response object (`object: "response"`) with its `output`, and `input` if the app saved it.

The conversation id is the record's `id` (or `--id-field`), else one derived from file and line.
`instructions` (a string or input items) become a leading developer message unless the source
config says `responses_instructions = "drop"` (then `instructions_dropped`). `metadata` becomes
conversation metadata; `first_response_id` and `leaf_response_id` (written by the exporter) are
added to it, so the new conversation names the chain it came from.
"""

from __future__ import annotations

from typing import Any

from adapters.base import DecodeError
from adapters.chat_messages import describe_type
from adapters.json.common import RecordContext, first_timestamp, pick_id
from adapters.model import Entry, Message, SourceConversation, SourceNote, TextPart
from adapters.responses.items import ITEM_TYPES, ItemError, decode_items

SOURCE_KIND = "responses"
CHAIN_KEYS = ("first_response_id", "leaf_response_id")


def is_responses_record(value: Any) -> bool:
    """Whether `value` is written in one of the shapes above."""
    if isinstance(value, list):
        return _starts_with_item(value)
    if not isinstance(value, dict):
        return False
    if value.get("object") == "response" and isinstance(value.get("output"), list):
        return True
    items = value.get("items")
    if isinstance(items, list) and (not items or _starts_with_item(items)):
        return True
    return isinstance(value.get("output"), list) and "input" in value


def _starts_with_item(values: list[Any]) -> bool:
    first = values[0] if values else None
    return isinstance(first, dict) and first.get("type") in ITEM_TYPES


def read_responses(value: Any, ctx: RecordContext) -> SourceConversation:
    """Turn one record into a conversation; raises `DecodeError` if it cannot be read."""
    if isinstance(value, list):
        return _conversation(ctx.derived_id, value, ctx, record={})
    if not isinstance(value, dict):
        raise DecodeError(
            "not_an_object",
            f"{ctx.location}: the record is {describe_type(value)}, expected Responses items",
        )
    conversation_id, _ = pick_id(value, ctx.config.id_field, ctx.derived_id)
    if isinstance(value.get("items"), list):
        items = value["items"]
    else:
        raw_input = value.get("input")
        if isinstance(raw_input, str):
            raw_input = [{"type": "message", "role": "user", "content": raw_input}]
        elif raw_input is None:
            raw_input = []
        if not isinstance(raw_input, list) or not isinstance(value.get("output"), list):
            raise DecodeError(
                "invalid_record",
                f"{ctx.location}: `input` must be a string or a list of items and `output` a "
                "list of items",
                conversation_id=conversation_id,
            )
        items = [*raw_input, *value["output"]]
    return _conversation(conversation_id, items, ctx, record=value)


def _conversation(
    conversation_id: str, items: list[Any], ctx: RecordContext, *, record: dict[str, Any]
) -> SourceConversation:
    try:
        leading, notes = _instructions(record.get("instructions"), ctx, conversation_id)
        history = decode_items(items)
    except ItemError as exc:
        raise DecodeError(
            "invalid_item", f"{ctx.location}: {exc}", conversation_id=conversation_id
        ) from exc
    metadata = record.get(ctx.config.metadata_field or "metadata")
    metadata = dict(metadata) if isinstance(metadata, dict) else {}
    for key in CHAIN_KEYS:
        if isinstance(record.get(key), str):
            metadata[key] = record[key]
    created_at, _ = first_timestamp(record)
    entries: list[Entry] = [*leading, *history.entries]
    return SourceConversation(
        source_kind=SOURCE_KIND,
        id=conversation_id,
        location=ctx.location,
        entries=entries,
        title=record.get("title") if isinstance(record.get("title"), str) else None,
        created_at=created_at,
        metadata=metadata,
        notes=[*notes, *history.notes],
    )


def _instructions(
    value: Any, ctx: RecordContext, conversation_id: str
) -> tuple[list[Entry], list[SourceNote]]:
    if value is None or value == "" or value == []:
        return [], []
    if ctx.config.responses_instructions == "drop":
        note = SourceNote(
            code="instructions_dropped",
            message=f"instructions dropped: {value!r}",
        )
        return [], [note]
    if isinstance(value, str):
        return [
            Message(role="developer", position="instructions", parts=[TextPart(text=value)])
        ], []
    if isinstance(value, list):
        decoded = decode_items(value)
        for entry in decoded.entries:
            entry.position = f"instructions {entry.position}"
        return list(decoded.entries), decoded.notes
    raise DecodeError(
        "invalid_record",
        f"{ctx.location}: instructions are {describe_type(value)}, expected a string or items",
        conversation_id=conversation_id,
    )
