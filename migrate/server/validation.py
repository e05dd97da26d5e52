"""Check request bodies the way the real API does and turn input items into stored items.

This module is deliberately independent of the engine's own validation: the server is a second,
separate check of what the engine sends. Every problem raises an `ApiError` (400) whose message,
`param` and `code` follow the real API's wording; nothing is written for a rejected request.

Where the real API's behaviour is unknown, the server is strict and says so here:

- `status` and `id` are refused on every input item (the migration must never send them);
- an `input_image` needs exactly one of `image_url` / `file_id`;
- conversation metadata updates replace the whole metadata object.

It is one module over 500 lines because it is one thing: one explicit parser per item and part
type of the API, side by side in the same shape so each can be compared with the spec.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from migrate.limits import (
    MAX_CALL_ID_CHARS,
    MAX_INPUT_TEXT_CHARS,
    MAX_ITEMS_PER_CALL,
    MAX_METADATA_KEY_CHARS,
    MAX_METADATA_PAIRS,
    MAX_METADATA_VALUE_CHARS,
    MAX_TOOL_NAME_CHARS,
)
from migrate.server.errors import ApiError, invalid_request, item_not_found

MESSAGE_ROLES = ("user", "assistant", "system", "developer")
INPUT_PART_TYPES = ("input_text", "input_image", "input_file")
OUTPUT_PART_TYPES = ("output_text", "refusal")
IMAGE_DETAILS = ("low", "high", "auto", "original")
PHASES = ("commentary", "final_answer")

CREATABLE_TYPES = (
    "message",
    "function_call",
    "function_call_output",
    "custom_tool_call",
    "custom_tool_call_output",
)
"""Item types that can be built from legacy data (no server-minted id needed)."""

SERVER_ID_TYPES = (
    "reasoning",
    "file_search_call",
    "web_search_call",
    "code_interpreter_call",
    "image_generation_call",
    "computer_call",
    "computer_call_output",
    "local_shell_call",
    "local_shell_call_output",
    "mcp_list_tools",
    "mcp_approval_request",
    "mcp_approval_response",
    "mcp_call",
    "item_reference",
    "compaction",
)
"""Item types that only refer to items the server itself created: never creatable here."""

INCLUDE_VALUES = (
    "file_search_call.results",
    "web_search_call.results",
    "web_search_call.action.sources",
    "message.input_image.image_url",
    "computer_call_output.output.image_url",
    "code_interpreter_call.outputs",
    "reasoning.encrypted_content",
    "message.output_text.logprobs",
)

ANNOTATION_FIELDS: dict[str, dict[str, type]] = {
    "file_citation": {"file_id": str, "index": int, "filename": str},
    "url_citation": {"url": str, "start_index": int, "end_index": int, "title": str},
    "container_file_citation": {
        "container_id": str,
        "file_id": str,
        "start_index": int,
        "end_index": int,
        "filename": str,
    },
    "file_path": {"file_id": str, "index": int},
}

StoredItem = dict[str, Any]
"""An item as the server stores and returns it, without its `id` (minted on commit)."""


# -- wording of the real API's errors -------------------------------------------------------


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _quoted_choices(values: tuple[str, ...]) -> str:
    quoted = [f"'{value}'" for value in values]
    if len(quoted) <= 2:
        return " and ".join(quoted)
    return ", ".join(quoted[:-1]) + ", and " + quoted[-1]


def _missing(param: str) -> ApiError:
    return invalid_request(
        f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter"
    )


def _unknown(param: str) -> ApiError:
    return invalid_request(f"Unknown parameter: '{param}'.", param=param, code="unknown_parameter")


def _wrong_type(param: str, expected: str, value: object) -> ApiError:
    return invalid_request(
        f"Invalid type for '{param}': expected {expected}, but got {_json_type(value)} instead.",
        param=param,
        code="invalid_type",
    )


def _bad_value(param: str, value: object, supported: tuple[str, ...]) -> ApiError:
    return invalid_request(
        f"Invalid value: '{value}'. Supported values are: {_quoted_choices(supported)}.",
        param=param,
        code="invalid_value",
    )


def _too_long(param: str, limit: int, length: int) -> ApiError:
    return invalid_request(
        f"Invalid '{param}': string too long. Expected a string with maximum length {limit}, "
        f"but got a string with length {length} instead.",
        param=param,
        code="string_above_max_length",
    )


def _too_short(param: str) -> ApiError:
    return invalid_request(
        f"Invalid '{param}': string too short. Expected a string with minimum length 1, "
        "but got an empty string instead.",
        param=param,
        code="string_below_min_length",
    )


# -- small checks ---------------------------------------------------------------------------


def _check_keys(obj: Mapping[str, Any], allowed: frozenset[str], param: str) -> None:
    for key in obj:
        if key not in allowed:
            raise _unknown(f"{param}.{key}")


def _string(
    obj: Mapping[str, Any],
    key: str,
    param: str,
    *,
    max_length: int | None = None,
    min_length: int = 0,
) -> str:
    if key not in obj or obj[key] is None:
        raise _missing(f"{param}.{key}")
    value = obj[key]
    path = f"{param}.{key}"
    if not isinstance(value, str):
        raise _wrong_type(path, "a string", value)
    if max_length is not None and len(value) > max_length:
        raise _too_long(path, max_length, len(value))
    if min_length and not value:
        raise _too_short(path)
    return value


def _optional_string(obj: Mapping[str, Any], key: str, param: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _wrong_type(f"{param}.{key}", "a string", value)
    return value


def _object(value: object, param: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise _wrong_type(param, "an object", value)
    return value


def _part_type(part: Mapping[str, Any], param: str, supported: tuple[str, ...]) -> str:
    if "type" not in part:
        raise _missing(f"{param}.type")
    kind = part["type"]
    if not isinstance(kind, str):
        raise _wrong_type(f"{param}.type", "a string", kind)
    if kind not in supported:
        raise _bad_value(f"{param}.type", kind, supported)
    return kind


# -- request bodies -------------------------------------------------------------------------


def parse_json_body(raw: bytes) -> dict[str, Any]:
    """Decode a JSON object body; an empty body counts as `{}`."""
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise invalid_request(
            "We could not parse the JSON body of your request. (HINT: This likely means you "
            "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, "
            "but what was sent was not valid JSON.)"
        ) from None
    if not isinstance(body, dict):
        raise invalid_request(
            f"Invalid type for request body: expected an object, but got {_json_type(body)} "
            "instead.",
            code="invalid_type",
        )
    return body


def parse_metadata(value: object, param: str = "metadata") -> dict[str, str]:
    """Check conversation metadata: at most 16 string pairs, keys <= 64, values <= 512."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _wrong_type(param, "an object", value)
    if len(value) > MAX_METADATA_PAIRS:
        raise invalid_request(
            f"Invalid '{param}': too many properties. Expected an object with at most "
            f"{MAX_METADATA_PAIRS} properties, but got an object with {len(value)} properties "
            "instead.",
            param=param,
            code="object_above_max_properties",
        )
    for key, item in value.items():
        if len(key) > MAX_METADATA_KEY_CHARS:
            raise invalid_request(
                f"Invalid '{param}': key too long. Expected keys with maximum length "
                f"{MAX_METADATA_KEY_CHARS}, but got a key with length {len(key)} instead.",
                param=param,
                code="string_above_max_length",
            )
        if not isinstance(item, str):
            raise _wrong_type(f"{param}.{key}", "a string", item)
        if len(item) > MAX_METADATA_VALUE_CHARS:
            raise _too_long(f"{param}.{key}", MAX_METADATA_VALUE_CHARS, len(item))
    return dict(value)


def parse_items(value: object, *, min_items: int, param: str = "items") -> list[StoredItem]:
    """Check a list of input items and return them in their stored shape (ids not yet minted)."""
    if not isinstance(value, list):
        raise _wrong_type(param, "an array", value)
    if len(value) > MAX_ITEMS_PER_CALL:
        raise invalid_request(
            f"Invalid '{param}': array too long. Expected an array with maximum length "
            f"{MAX_ITEMS_PER_CALL}, but got an array with length {len(value)} instead.",
            param=param,
            code="array_above_max_length",
        )
    if len(value) < min_items:
        raise invalid_request(
            f"Invalid '{param}': empty array. Expected an array with minimum length "
            f"{min_items}, but got an empty array instead.",
            param=param,
            code="empty_array",
        )
    return [parse_item(item, f"{param}[{index}]") for index, item in enumerate(value)]


def parse_create_conversation(body: Mapping[str, Any]) -> tuple[dict[str, str], list[StoredItem]]:
    """`POST /conversations`: optional `metadata` and optional `items` (at most 20)."""
    _check_keys(body, frozenset({"items", "metadata"}), "body")
    metadata = parse_metadata(body.get("metadata"))
    raw_items = body.get("items")
    items = [] if raw_items is None else parse_items(raw_items, min_items=0)
    return metadata, items


def parse_update_conversation(body: Mapping[str, Any]) -> dict[str, str]:
    """`POST /conversations/{id}`: `metadata` is required (null clears it)."""
    _check_keys(body, frozenset({"metadata"}), "body")
    if "metadata" not in body:
        raise _missing("metadata")
    return parse_metadata(body["metadata"])


def parse_create_items(body: Mapping[str, Any]) -> list[StoredItem]:
    """`POST /conversations/{id}/items`: 1..20 `items`."""
    _check_keys(body, frozenset({"items"}), "body")
    if "items" not in body:
        raise _missing("items")
    return parse_items(body["items"], min_items=1)


def parse_include(values: list[str]) -> list[str]:
    """Check `include[]` query values against the API's enum."""
    for value in values:
        if value not in INCLUDE_VALUES:
            raise _bad_value("include", value, INCLUDE_VALUES)
    return values


def parse_limit(raw: str | None) -> int:
    """`limit`: an integer from 1 to 100, default 20."""
    if raw is None:
        return 20
    try:
        limit = int(raw)
    except ValueError:
        raise invalid_request(
            f"Invalid type for 'limit': expected an integer, but got a string instead. ('{raw}')",
            param="limit",
            code="invalid_type",
        ) from None
    if limit < 1:
        raise invalid_request(
            f"Invalid 'limit': integer below minimum value. Expected a value >= 1, but got "
            f"{limit} instead.",
            param="limit",
            code="integer_below_min_value",
        )
    if limit > 100:
        raise invalid_request(
            f"Invalid 'limit': integer above maximum value. Expected a value <= 100, but got "
            f"{limit} instead.",
            param="limit",
            code="integer_above_max_value",
        )
    return limit


def parse_order(raw: str | None) -> str:
    """`order`: `asc` or `desc` (the default)."""
    if raw is None:
        return "desc"
    if raw not in ("asc", "desc"):
        raise _bad_value("order", raw, ("asc", "desc"))
    return raw


# -- items ----------------------------------------------------------------------------------


def parse_item(value: object, param: str) -> StoredItem:
    """Check one input item and return its stored shape."""
    item = _object(value, param)
    kind = item.get("type")
    if kind is None:
        if "role" not in item:
            raise _missing(f"{param}.type")
        kind = "message"
    if not isinstance(kind, str):
        raise _wrong_type(f"{param}.type", "a string", kind)
    if kind in SERVER_ID_TYPES:
        if item.get("id") is None:
            raise _missing(f"{param}.id")
        raise item_not_found(str(item["id"]), param=f"{param}.id", status=400)
    parser = _ITEM_PARSERS.get(kind)
    if parser is None:
        raise _bad_value(f"{param}.type", kind, CREATABLE_TYPES + SERVER_ID_TYPES)
    if "id" in item:
        # A client id is looked up in the server's own store, where a migrated item never is.
        raise item_not_found(str(item["id"]), param=f"{param}.id", status=400)
    return parser(item, param)


def _parse_message(item: Mapping[str, Any], param: str) -> StoredItem:
    _check_keys(item, frozenset({"type", "role", "content", "phase"}), param)
    if "role" not in item:
        raise _missing(f"{param}.role")
    role = item["role"]
    if not isinstance(role, str):
        raise _wrong_type(f"{param}.role", "a string", role)
    if role not in MESSAGE_ROLES:
        raise _bad_value(f"{param}.role", role, MESSAGE_ROLES)
    if "content" not in item or item["content"] is None:
        raise _missing(f"{param}.content")
    content = item["content"]
    assistant = role == "assistant"
    parts: list[dict[str, Any]]
    if isinstance(content, str):
        if len(content) > MAX_INPUT_TEXT_CHARS:
            raise _too_long(f"{param}.content", MAX_INPUT_TEXT_CHARS, len(content))
        parts = [_output_text(content, []) if assistant else _input_text(content)]
    elif isinstance(content, list):
        supported = OUTPUT_PART_TYPES if assistant else INPUT_PART_TYPES
        parts = [
            _parse_part(part, f"{param}.content[{index}]", supported)
            for index, part in enumerate(content)
        ]
    else:
        raise _wrong_type(f"{param}.content", "one of a string or array of objects", content)
    stored: StoredItem = {"type": "message", "status": "completed", "content": parts, "role": role}
    phase = item.get("phase")
    if phase is not None:
        if phase not in PHASES:
            raise _bad_value(f"{param}.phase", phase, PHASES)
        stored["phase"] = phase
    return stored


def _input_text(text: str) -> dict[str, Any]:
    return {"type": "input_text", "text": text}


def _output_text(text: str, annotations: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "output_text", "annotations": annotations, "logprobs": [], "text": text}


def _parse_part(value: object, param: str, supported: tuple[str, ...]) -> dict[str, Any]:
    part = _object(value, param)
    kind = _part_type(part, param, supported)
    if kind == "input_text":
        _check_keys(part, frozenset({"type", "text"}), param)
        return _input_text(_string(part, "text", param, max_length=MAX_INPUT_TEXT_CHARS))
    if kind == "input_image":
        return _parse_input_image(part, param)
    if kind == "input_file":
        return _parse_input_file(part, param)
    if kind == "output_text":
        _check_keys(part, frozenset({"type", "text", "annotations", "logprobs"}), param)
        text = _string(part, "text", param, max_length=MAX_INPUT_TEXT_CHARS)
        annotations = _parse_annotations(part.get("annotations"), f"{param}.annotations")
        logprobs = part.get("logprobs")
        if logprobs is not None and not isinstance(logprobs, list):
            raise _wrong_type(f"{param}.logprobs", "an array", logprobs)
        stored = _output_text(text, annotations)
        stored["logprobs"] = logprobs or []
        return stored
    _check_keys(part, frozenset({"type", "refusal"}), param)
    return {"type": "refusal", "refusal": _string(part, "refusal", param)}


def _parse_input_image(part: Mapping[str, Any], param: str) -> dict[str, Any]:
    _check_keys(part, frozenset({"type", "image_url", "file_id", "detail"}), param)
    if "detail" not in part or part["detail"] is None:
        raise _missing(f"{param}.detail")
    detail = part["detail"]
    if detail not in IMAGE_DETAILS:
        raise _bad_value(f"{param}.detail", detail, IMAGE_DETAILS)
    image_url = _optional_string(part, "image_url", param)
    file_id = _optional_string(part, "file_id", param)
    if image_url is None and file_id is None:
        raise _missing(f"{param}.image_url")
    if image_url is not None and file_id is not None:
        raise invalid_request(
            f"Invalid '{param}': expected exactly one of 'image_url' or 'file_id', but got both.",
            param=param,
            code="invalid_value",
        )
    return {"type": "input_image", "detail": detail, "file_id": file_id, "image_url": image_url}


def _parse_input_file(part: Mapping[str, Any], param: str) -> dict[str, Any]:
    fields = ("file_id", "file_url", "file_data", "filename", "detail")
    _check_keys(part, frozenset({"type", *fields}), param)
    stored: dict[str, Any] = {"type": "input_file"}
    for key in fields:
        value = _optional_string(part, key, param)
        if value is not None:
            stored[key] = value
    if not any(key in stored for key in ("file_id", "file_url", "file_data")):
        raise _missing(f"{param}.file_id")
    return stored


def _parse_annotations(value: object, param: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _wrong_type(param, "an array", value)
    annotations: list[dict[str, Any]] = []
    for index, raw in enumerate(value):
        path = f"{param}[{index}]"
        annotation = _object(raw, path)
        kind = _part_type(annotation, path, tuple(ANNOTATION_FIELDS))
        fields = ANNOTATION_FIELDS[kind]
        _check_keys(annotation, frozenset({"type", *fields}), path)
        for key, expected in fields.items():
            if key not in annotation:
                raise _missing(f"{path}.{key}")
            field = annotation[key]
            if not isinstance(field, expected) or isinstance(field, bool):
                wanted = "an integer" if expected is int else "a string"
                raise _wrong_type(f"{path}.{key}", wanted, field)
        annotations.append(dict(annotation))
    return annotations


def _call_id(item: Mapping[str, Any], param: str) -> str:
    return _string(item, "call_id", param, max_length=MAX_CALL_ID_CHARS, min_length=1)


def _parse_output(item: Mapping[str, Any], param: str) -> str | list[dict[str, Any]]:
    if "output" not in item or item["output"] is None:
        raise _missing(f"{param}.output")
    output = item["output"]
    if isinstance(output, str):
        if len(output) > MAX_INPUT_TEXT_CHARS:
            raise _too_long(f"{param}.output", MAX_INPUT_TEXT_CHARS, len(output))
        return output
    if isinstance(output, list):
        return [
            _parse_part(part, f"{param}.output[{index}]", INPUT_PART_TYPES)
            for index, part in enumerate(output)
        ]
    raise _wrong_type(f"{param}.output", "one of a string or array of objects", output)


def _parse_function_call(item: Mapping[str, Any], param: str) -> StoredItem:
    _check_keys(item, frozenset({"type", "call_id", "name", "arguments", "namespace"}), param)
    stored: StoredItem = {
        "type": "function_call",
        "status": "completed",
        "arguments": _string(item, "arguments", param),
        "call_id": _call_id(item, param),
        "name": _string(item, "name", param, max_length=MAX_TOOL_NAME_CHARS, min_length=1),
    }
    namespace = _optional_string(item, "namespace", param)
    if namespace is not None:
        stored["namespace"] = namespace
    return stored


def _parse_function_call_output(item: Mapping[str, Any], param: str) -> StoredItem:
    _check_keys(item, frozenset({"type", "call_id", "output"}), param)
    return {
        "type": "function_call_output",
        "status": "completed",
        "call_id": _call_id(item, param),
        "output": _parse_output(item, param),
    }


def _parse_custom_tool_call(item: Mapping[str, Any], param: str) -> StoredItem:
    _check_keys(item, frozenset({"type", "call_id", "name", "input", "namespace"}), param)
    stored: StoredItem = {
        "type": "custom_tool_call",
        "status": "completed",
        "call_id": _call_id(item, param),
        "input": _string(item, "input", param),
        "name": _string(item, "name", param, max_length=MAX_TOOL_NAME_CHARS, min_length=1),
    }
    namespace = _optional_string(item, "namespace", param)
    if namespace is not None:
        stored["namespace"] = namespace
    return stored


def _parse_custom_tool_call_output(item: Mapping[str, Any], param: str) -> StoredItem:
    _check_keys(item, frozenset({"type", "call_id", "output"}), param)
    return {
        "type": "custom_tool_call_output",
        "status": "completed",
        "call_id": _call_id(item, param),
        "output": _parse_output(item, param),
    }


_ITEM_PARSERS: dict[str, Callable[[Mapping[str, Any], str], StoredItem]] = {
    "message": _parse_message,
    "function_call": _parse_function_call,
    "function_call_output": _parse_function_call_output,
    "custom_tool_call": _parse_custom_tool_call,
    "custom_tool_call_output": _parse_custom_tool_call_output,
}

ID_PREFIXES = {
    "message": "msg",
    "function_call": "fc",
    "function_call_output": "fc",
    "custom_tool_call": "ctc",
    "custom_tool_call_output": "ctco",
}
"""Prefixes of server-minted item ids, as the real API uses them (recordings show `fc_` for
both `function_call` and `function_call_output`)."""
