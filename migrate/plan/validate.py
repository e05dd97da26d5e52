"""Our own rules for exactly the item subset we send, checked before anything leaves.

The official spec is looser than the API (its schemas accept unknown keys) and in one place
stricter (it rejects the assistant `output_text` message the API accepts), so the planner and
the replayer check every item against these rules instead. Each function returns a list of
readable problems, empty when the input is fine. They run on every item of every conversation,
so they stay plain dictionary lookups.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from typing import Any

from migrate.limits import (
    MAX_CALL_ID_CHARS,
    MAX_FILE_DATA_CHARS,
    MAX_IMAGE_URL_CHARS,
    MAX_INPUT_TEXT_CHARS,
    MAX_ITEMS_PER_CALL,
    MAX_METADATA_KEY_CHARS,
    MAX_METADATA_PAIRS,
    MAX_METADATA_VALUE_CHARS,
    MAX_OUTPUT_CHARS,
    MAX_TOOL_NAME_CHARS,
)

INPUT_ROLES = frozenset({"user", "system", "developer"})
IMAGE_DETAILS = frozenset({"auto", "low", "high"})
CALL_TYPES = frozenset({"function_call", "custom_tool_call"})
OUTPUT_TYPES = frozenset({"function_call_output", "custom_tool_call_output"})

_ITEM_KEYS: dict[str, frozenset[str]] = {
    "message": frozenset({"type", "role", "content"}),
    "function_call": frozenset({"type", "call_id", "name", "arguments"}),
    "function_call_output": frozenset({"type", "call_id", "output"}),
    "custom_tool_call": frozenset({"type", "call_id", "name", "input"}),
    "custom_tool_call_output": frozenset({"type", "call_id", "output"}),
}
PROVIDER_TYPES = frozenset(
    {
        "reasoning",
        "compaction",
        "item_reference",
        "file_search_call",
        "web_search_call",
        "code_interpreter_call",
        "image_generation_call",
        "computer_call",
        "computer_call_output",
        "local_shell_call",
        "local_shell_call_output",
        "shell_call",
        "shell_call_output",
        "apply_patch_call",
        "apply_patch_call_output",
        "tool_search_call",
        "tool_search_output",
        "additional_tools",
        "program",
        "program_output",
        "mcp_list_tools",
        "mcp_call",
        "mcp_approval_request",
        "mcp_approval_response",
    }
)
"""Items sent only as kept provider items (policy `provider_items` / `reasoning` = keep): they
name an item the target project made, so they must carry its id; their shape is the API's."""
_PART_KEYS: dict[str, frozenset[str]] = {
    "input_text": frozenset({"type", "text"}),
    "input_image": frozenset({"type", "image_url", "file_id", "detail"}),
    "input_file": frozenset({"type", "file_id", "file_data", "filename", "file_url"}),
    "output_text": frozenset({"type", "text", "annotations"}),
    "refusal": frozenset({"type", "refusal"}),
}
_INPUT_PARTS = frozenset({"input_text", "input_image", "input_file"})
_OUTPUT_PARTS = frozenset({"output_text", "refusal"})
_ANNOTATION_FIELDS: dict[str, dict[str, type]] = {
    "file_citation": {"file_id": str, "filename": str, "index": int},
    "file_path": {"file_id": str, "index": int},
    "url_citation": {"url": str, "title": str, "start_index": int, "end_index": int},
    "container_file_citation": {
        "container_id": str,
        "file_id": str,
        "filename": str,
        "start_index": int,
        "end_index": int,
    },
}


def _is_mapping(value: object) -> bool:
    # a dict first: the ABC check costs more, and nearly every value is a dict
    return type(value) is dict or isinstance(value, Mapping)


def item_problems(item: Mapping[str, Any]) -> list[str]:
    """Why `item` must not be sent (shape only; call pairing is `batch_problems`' job)."""
    if not _is_mapping(item):
        return [f"an item must be an object, not {type(item).__name__}"]
    kind = item.get("type")
    if kind in PROVIDER_TYPES:
        item_id = item.get("id")
        if isinstance(item_id, str) and item_id:
            return []
        if kind == "reasoning" and item.get("encrypted_content"):
            return []
        return [f"a kept {kind} item needs the id the source project gave it"]
    if not isinstance(kind, str) or kind not in _ITEM_KEYS:
        return [f"item type {kind!r} is not one we send; allowed: {sorted(_ITEM_KEYS)}"]
    problems = _unknown_keys(item, _ITEM_KEYS[kind], kind)
    if kind == "message":
        problems += _message_problems(item)
    elif kind in CALL_TYPES:
        problems += _call_id_problems(item, kind)
        name = item.get("name")
        if not isinstance(name, str) or not 1 <= len(name) <= MAX_TOOL_NAME_CHARS:
            problems.append(f"{kind}.name must be a string of 1..{MAX_TOOL_NAME_CHARS} characters")
        payload = "arguments" if kind == "function_call" else "input"
        if not isinstance(item.get(payload), str):
            problems.append(f"{kind}.{payload} must be a string")
    else:
        problems += _call_id_problems(item, kind)
        output = item.get("output")
        if isinstance(output, list):
            problems += _output_part_problems(output, kind)
        elif not isinstance(output, str):
            problems.append(f"{kind}.output must be a string or an array of content parts")
        elif len(output) > MAX_OUTPUT_CHARS:
            problems.append(
                f"{kind}.output has {len(output):,} characters (max {MAX_OUTPUT_CHARS:,})"
            )
    return problems


_OUTPUT_PART_TYPES = frozenset({"input_text", "input_image", "input_file"})


def _output_part_problems(output: list[Any], kind: str) -> list[str]:
    problems: list[str] = []
    if not output:
        problems.append(f"{kind}.output must not be an empty array")
    total = 0
    for index, part in enumerate(output):
        part_type = part.get("type") if isinstance(part, Mapping) else None
        if part_type not in _OUTPUT_PART_TYPES:
            problems.append(f"{kind}.output[{index}] must be an input_text, image or file part")
        elif part_type == "input_text":
            total += len(part.get("text") or "")
    if total > MAX_OUTPUT_CHARS:
        problems.append(
            f"{kind}.output has {total:,} characters of text (max {MAX_OUTPUT_CHARS:,})"
        )
    return problems


def batch_problems(items: Sequence[Mapping[str, Any]], seen_call_ids: set[str]) -> list[str]:
    """Problems of one `items.create` call; adds the batch's call ids to `seen_call_ids`.

    `seen_call_ids` holds the call ids of the conversation's earlier batches: an output must
    answer a call sent before it, and no call id may be used twice.
    """
    problems: list[str] = []
    if not items:
        problems.append("a batch must hold at least one item")
    if len(items) > MAX_ITEMS_PER_CALL:
        problems.append(f"a batch holds {len(items)} items (max {MAX_ITEMS_PER_CALL})")
    for index, item in enumerate(items):
        found = item_problems(item)
        if found:
            problems += [f"item {index}: {problem}" for problem in found]
        if not _is_mapping(item):
            continue
        call_id = item.get("call_id")
        if not isinstance(call_id, str):
            continue
        kind = item.get("type")
        if kind in CALL_TYPES:
            if call_id in seen_call_ids:
                problems.append(f"item {index}: call_id {call_id!r} is used by an earlier call")
            seen_call_ids.add(call_id)
        elif kind in OUTPUT_TYPES and call_id not in seen_call_ids:
            problems.append(
                f"item {index}: {kind} answers call_id {call_id!r} with no earlier call"
            )
    return problems


def metadata_problems(metadata: Mapping[str, Any]) -> list[str]:
    """Why `metadata` does not fit the API's 16 pairs, keys <= 64, string values <= 512."""
    if not isinstance(metadata, Mapping):
        return [f"metadata must be an object, not {type(metadata).__name__}"]
    problems: list[str] = []
    if len(metadata) > MAX_METADATA_PAIRS:
        problems.append(f"metadata has {len(metadata)} pairs (max {MAX_METADATA_PAIRS})")
    for key, value in metadata.items():
        if not isinstance(key, str) or not 1 <= len(key) <= MAX_METADATA_KEY_CHARS:
            problems.append(f"metadata key {key!r} must be 1..{MAX_METADATA_KEY_CHARS} characters")
        if not isinstance(value, str):
            problems.append(f"metadata value of {key!r} must be a string")
        elif len(value) > MAX_METADATA_VALUE_CHARS:
            problems.append(
                f"metadata value of {key!r} has {len(value)} characters "
                f"(max {MAX_METADATA_VALUE_CHARS})"
            )
    return problems


def _unknown_keys(obj: Mapping[str, Any], allowed: Set[str], what: str) -> list[str]:
    if obj.keys() <= allowed:
        return []
    extra = sorted(str(key) for key in obj.keys() - allowed)
    return [f"{what} has keys the API does not define: {', '.join(extra)}"]


def _call_id_problems(item: Mapping[str, Any], kind: str) -> list[str]:
    call_id = item.get("call_id")
    if isinstance(call_id, str) and 1 <= len(call_id) <= MAX_CALL_ID_CHARS:
        return []
    return [f"{kind}.call_id must be a string of 1..{MAX_CALL_ID_CHARS} characters"]


def _message_problems(item: Mapping[str, Any]) -> list[str]:
    role = item.get("role")
    content = item.get("content")
    if role == "assistant":
        allowed_parts = _OUTPUT_PARTS
    elif role in INPUT_ROLES:
        allowed_parts = _INPUT_PARTS
    else:
        return [f"message role {role!r} is not one of user, system, developer, assistant"]
    if isinstance(content, str):
        return [] if content else ["message content must not be an empty string"]
    if not isinstance(content, list) or not content:
        return ["message content must be a non-empty string or a non-empty list of parts"]
    problems: list[str] = []
    for index, part in enumerate(content):
        if not _is_mapping(part):
            problems.append(f"content[{index}] must be an object")
            continue
        kind = part.get("type")
        if kind not in allowed_parts:
            problems.append(
                f"content[{index}]: part type {kind!r} is not allowed in a {role} message; "
                f"allowed: {sorted(allowed_parts)}"
            )
            continue
        found = _part_problems(part, kind)
        if found:
            problems += [f"content[{index}]: {p}" for p in found]
    return problems


def _part_problems(part: Mapping[str, Any], kind: str) -> list[str]:
    problems = _unknown_keys(part, _PART_KEYS[kind], kind)
    if kind == "input_text":
        text = part.get("text")
        if not isinstance(text, str):
            problems.append("input_text.text must be a string")
        elif len(text) > MAX_INPUT_TEXT_CHARS:
            problems.append(
                f"input_text.text has {len(text):,} characters (max {MAX_INPUT_TEXT_CHARS:,})"
            )
    elif kind == "output_text":
        if not isinstance(part.get("text"), str):
            problems.append("output_text.text must be a string")
        annotations = part.get("annotations")
        if not isinstance(annotations, list):
            problems.append("output_text.annotations must be a list")
        else:
            for index, annotation in enumerate(annotations):
                problems += [f"annotations[{index}]: {p}" for p in _annotation_problems(annotation)]
    elif kind == "refusal":
        if not isinstance(part.get("refusal"), str):
            problems.append("refusal.refusal must be a string")
    elif kind == "input_image":
        problems += _image_problems(part)
    else:
        problems += _file_problems(part)
    return problems


def _image_problems(part: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    if part.get("detail") not in IMAGE_DETAILS:
        problems.append(
            f"input_image.detail must be one of auto, low, high (got {part.get('detail')!r})"
        )
    url, file_id = part.get("image_url"), part.get("file_id")
    if (url is None) == (file_id is None):
        problems.append("input_image needs exactly one of image_url and file_id")
    elif url is not None and (not isinstance(url, str) or not url):
        problems.append("input_image.image_url must be a non-empty string")
    elif isinstance(url, str) and len(url) > MAX_IMAGE_URL_CHARS:
        problems.append(
            f"input_image.image_url has {len(url):,} characters (max {MAX_IMAGE_URL_CHARS:,})"
        )
    elif file_id is not None and (not isinstance(file_id, str) or not file_id):
        problems.append("input_image.file_id must be a non-empty string")
    return problems


def _file_problems(part: Mapping[str, Any]) -> list[str]:
    sources = [key for key in ("file_id", "file_data", "file_url") if part.get(key) is not None]
    if len(sources) != 1:
        return ["input_file needs exactly one of file_id, file_data (with filename) and file_url"]
    value = part[sources[0]]
    problems: list[str] = []
    if not isinstance(value, str) or not value:
        problems.append(f"input_file.{sources[0]} must be a non-empty string")
    elif sources[0] == "file_data" and len(value) > MAX_FILE_DATA_CHARS:
        problems.append(
            f"input_file.file_data has {len(value):,} characters (max {MAX_FILE_DATA_CHARS:,})"
        )
    filename = part.get("filename")
    if sources[0] == "file_data" and filename is None:
        problems.append("input_file.file_data needs a filename")
    if filename is not None and (not isinstance(filename, str) or not filename):
        problems.append("input_file.filename must be a non-empty string")
    return problems


def _annotation_problems(annotation: Any) -> list[str]:
    if not isinstance(annotation, Mapping):
        return ["an annotation must be an object"]
    kind = annotation.get("type")
    if not isinstance(kind, str) or kind not in _ANNOTATION_FIELDS:
        return [f"annotation type {kind!r} is not one of {sorted(_ANNOTATION_FIELDS)}"]
    fields = _ANNOTATION_FIELDS[kind]
    problems = _unknown_keys(annotation, {"type", *fields}, kind)
    for name, expected in fields.items():
        value = annotation.get(name)
        # bool is an int subclass; the API wants a real integer index
        if not isinstance(value, expected) or isinstance(value, bool):
            problems.append(f"{kind}.{name} must be a {expected.__name__}")
        elif isinstance(value, int) and value < 0:
            problems.append(f"{kind}.{name} must not be negative")
        elif expected is str and not value:
            problems.append(f"{kind}.{name} must not be empty")
    return problems
