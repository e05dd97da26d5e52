"""Chat Completions message arrays (and OpenAI fine-tuning lines) to neutral conversations.

A record is an object holding a messages array (`messages_field`, else `messages`,
`conversations`, `history` or `turns`), a bare array of messages, or a stored completion's
message list (`GET /chat/completions/{id}/messages`: `{object: "list", data: [...]}`, whose
conversation id is the completion id; `has_more` is a `partial_message_list` note). Entry
positions are `message N` (0-based index in that array); tool calls split off an assistant
message are `message N tool_call K`. Messages are decoded by `adapters.chat_messages` (keys
it does not interpret are kept in the entry's metadata); top-level keys other than the id,
title, timestamp, metadata and messages (fine-tuning `tools`, `functions`,
`parallel_tool_calls`, ...) are kept in the conversation's metadata.
"""

from __future__ import annotations

from typing import Any

from adapters.base import DecodeError
from adapters.chat_messages import Provenance, describe_type, message_entries, timestamp_field
from adapters.json.common import RecordContext, first_timestamp, pick_id
from adapters.model import Entry, SourceConversation, SourceNote

MESSAGES_FIELDS = ("messages", "conversations", "history", "turns")

_TITLE_FIELD = "title"


def is_stored_messages_list(record: dict[str, Any]) -> bool:
    """True for a `GET /chat/completions/{id}/messages` page: `{object: list, data: [...]}`."""
    data = record.get("data")
    if record.get("object") != "list" or not isinstance(data, list):
        return False
    first = data[0] if data else None
    # Assistants message pages have the same envelope; their items name their object.
    return isinstance(first, dict) and "role" in first and "object" not in first


def find_messages_field(record: dict[str, Any], configured: str | None) -> str | None:
    """The name of the record's messages field, or None if it has none."""
    if configured:
        return configured if configured in record else None
    if is_stored_messages_list(record):
        return "data"
    for name in MESSAGES_FIELDS:
        if name in record:
            return name
    return None


def read_chat_completions(
    value: Any, ctx: RecordContext, *, source_kind: str
) -> SourceConversation:
    """Turn one record into a conversation; raises DecodeError if it cannot be read."""
    if isinstance(value, list):
        return _conversation(value, ctx, source_kind=source_kind, conversation_id=ctx.derived_id)
    if not isinstance(value, dict):
        raise DecodeError(
            "not_an_object",
            f"{ctx.location}: the record is {describe_type(value)}, expected an object with a "
            "messages array or an array of messages",
        )
    config = ctx.config
    conversation_id, id_field, field, stored = _identity(value, ctx)
    if field is None:
        looked_for = config.messages_field or ", ".join(MESSAGES_FIELDS)
        raise DecodeError(
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
    if stored and value.get("has_more") is True:
        conversation.notes.append(
            SourceNote(
                code="partial_message_list",
                message=f"{ctx.location}: the stored completion's message list says has_more; "
                f"only the {len(value[field])} message(s) in this page were read",
            )
        )
    return conversation


def readable_id(value: Any, ctx: RecordContext) -> str | None:
    """The id `read_chat_completions` gives the record, found without reading its messages;
    None for a record it would fail (not an object or an array, no messages field)."""
    if isinstance(value, list):
        return ctx.derived_id
    if not isinstance(value, dict):
        return None
    conversation_id, _, field, _ = _identity(value, ctx)
    return None if field is None else conversation_id


def _identity(
    value: dict[str, Any], ctx: RecordContext
) -> tuple[str, str | None, str | None, bool]:
    """The record's id, the field it came from (None: derived), its messages field, and
    whether it is a stored completion's message list."""
    conversation_id, id_field = pick_id(value, ctx.config.id_field, ctx.derived_id)
    field = find_messages_field(value, ctx.config.messages_field)
    stored = field == "data" and is_stored_messages_list(value)
    if stored and id_field is None:
        conversation_id = _stored_completion_id(value) or conversation_id
    return conversation_id, id_field, field, stored


def _stored_completion_id(value: dict[str, Any]) -> str | None:
    """The completion id of a stored-messages page: its message ids are `<id>-<index>`."""
    first = value.get("first_id")
    if isinstance(first, str) and first:
        head, _, index = first.rpartition("-")
        return head if head and index.isdigit() else first
    return None


def _conversation(
    messages: Any,
    ctx: RecordContext,
    *,
    source_kind: str,
    conversation_id: str,
    field: str = "messages",
) -> SourceConversation:
    if not isinstance(messages, list):
        raise DecodeError(
            "invalid_messages",
            f"{ctx.location}: conversation {conversation_id!r}: {field!r} is "
            f"{describe_type(messages)}, expected an array of messages",
            conversation_id=conversation_id,
        )
    notes: list[SourceNote] = []
    try:
        entries = messages_to_entries(messages, notes)
    except DecodeError as exc:
        exc.message = f"{ctx.location}: conversation {conversation_id!r}: {exc.message}"
        exc.conversation_id = conversation_id
        raise
    return SourceConversation(
        source_kind=source_kind,
        id=conversation_id,
        location=ctx.location,
        entries=entries,
        notes=notes,
        entry_time_field=timestamp_field(messages),
    )


def messages_to_entries(messages: list[Any], notes: list[SourceNote]) -> list[Entry]:
    """Map Chat Completions messages to timeline entries, in order."""
    entries: list[Entry] = []
    for index, message in enumerate(messages):
        position = f"message {index}"
        if not isinstance(message, dict):
            raise DecodeError(
                "invalid_message", f"{position} is {describe_type(message)}, expected an object"
            )
        entries.extend(message_entries(message, Provenance(position=position), notes))
    return entries
