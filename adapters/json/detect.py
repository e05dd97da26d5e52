"""Tell the JSON conversation formats apart from a file's first record.

Rules, first match wins: a `mapping` is a ChatGPT export; a `thread` key or `thread.*` objects
are an Assistants export; turns with `from` (or `images`, or a top-level `system` string) are
ShareGPT; a record with only `messages`, `tools`, `functions` and `parallel_tool_calls` is a
fine-tuning line (read exactly like Chat Completions, reported as `finetune`); Responses items
(a bare array, `items`, `input` plus `output`, or a response object; `adapters.responses`) are
`responses`; any other record with a messages array, or a stored completion's
`{object: "list", data: [messages]}` page, is Chat Completions.
"""

from __future__ import annotations

from typing import Any

from adapters.config import JsonFormat, JsonSourceConfig
from adapters.json.chat_completions import find_messages_field, is_stored_messages_list
from adapters.json.listing import SourceFile
from adapters.json.stream import Layout, peek_first_value, scan_object_prefixes
from adapters.responses.records import is_responses_record

FINETUNE_KEYS = frozenset({"messages", "tools", "functions", "parallel_tool_calls"})
_SCAN_EVENTS = 2000
_THREAD_OBJECT_PREFIXES = frozenset({"object", "data.item.object", "messages.item.object"})
_THREAD_OBJECTS = frozenset({"thread", "thread.message", "thread.run", "thread.run.step"})


def detect_record_format(value: Any, config: JsonSourceConfig) -> JsonFormat | None:
    """The format a single record is written in, or None if it matches none of them."""
    if is_responses_record(value):
        return "responses"
    if isinstance(value, list):
        first = value[0] if value else None
        if not isinstance(first, dict):
            return None
        if first.get("object") in _THREAD_OBJECTS:
            return "assistants"
        if "role" in first:
            return "chat_completions"
        return "sharegpt" if "from" in first else None
    if not isinstance(value, dict):
        return None
    if "mapping" in value:
        return "chatgpt"
    if is_stored_messages_list(value):
        return "chat_completions"
    if _is_assistants(value):
        return "assistants"
    field = find_messages_field(value, config.messages_field)
    turns = value.get(field) if field else None
    if not isinstance(turns, list):
        return None
    first_turn = turns[0] if turns else None
    if isinstance(first_turn, dict) and "from" in first_turn:
        return "sharegpt"
    if field == "conversations" and not turns:
        return "sharegpt"
    if isinstance(value.get("images"), list) or isinstance(value.get("system"), str):
        return "sharegpt"
    if field == "messages" and value.keys() <= FINETUNE_KEYS:
        return "finetune"
    return "chat_completions"


def detect_file_format(
    path: SourceFile, layout: Layout, config: JsonSourceConfig
) -> JsonFormat | None:
    """The format of the file's first record, or None if the file is empty or unrecognised."""
    if layout in (Layout.EMPTY, Layout.NOT_JSON):
        return None
    if layout is Layout.OBJECT:
        # Look for the cheap markers first, so that a large export envelope is not loaded whole.
        for prefix, event, value in scan_object_prefixes(path, max_events=_SCAN_EVENTS):
            if prefix == "" and event == "map_key" and value == "thread":
                return "assistants"
            if prefix == "" and event == "map_key" and value == "mapping":
                return "chatgpt"
            if prefix in _THREAD_OBJECT_PREFIXES and value in _THREAD_OBJECTS:
                return "assistants"
    return detect_record_format(peek_first_value(path, layout), config)


def _is_assistants(value: dict[str, Any]) -> bool:
    if "thread" in value or value.get("object") in _THREAD_OBJECTS:
        return True
    for key in ("data", "messages"):
        items = value.get(key)
        first = items[0] if isinstance(items, list) and items else None
        if isinstance(first, dict) and first.get("object") in _THREAD_OBJECTS:
            return True
    return False
