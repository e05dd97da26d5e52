"""A thread's messages and run steps as entries: text, images, files and annotations; tool calls
and their outputs, code interpreter and file search as hosted tool steps."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from adapters.model import (
    Annotation,
    Entry,
    FilePart,
    HostedToolStep,
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

JsonObject = Mapping[str, Any]


class AssistantsFormatError(ValueError):
    """A thread's data does not have the shape of the Assistants API's objects."""


def _time(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


# --- messages ------------------------------------------------------------------------------


_MESSAGE_KEYS = frozenset(
    {
        "id",
        "object",
        "created_at",
        "thread_id",
        "role",
        "content",
        "assistant_id",
        "run_id",
        "attachments",
        "metadata",
        "status",
        "incomplete_details",
        "completed_at",
        "incomplete_at",
        "file_ids",
    }
)


def _message(
    message: JsonObject, index: int, filenames: Mapping[str, str], notes: list[SourceNote]
) -> Message:
    message_id = message.get("id")
    role = message.get("role")
    if not isinstance(role, str):
        raise AssistantsFormatError(f"message {message_id} has no role")
    content = message.get("content")
    if isinstance(content, str):
        # Some tools saved the create-message request shape, where content may be a string.
        content = [{"type": "text", "text": {"value": content, "annotations": []}}]
    if not isinstance(content, list):
        raise AssistantsFormatError(f"message {message_id} has no content list")
    source_id = str(message_id) if message_id is not None else None
    parts: list[Part] = []
    for number, raw in enumerate(content):
        part = _part(raw, message_id, filenames, notes)
        if part is None:
            notes.append(
                SourceNote(
                    code="unknown_part_type",
                    message=f"message {message_id}: content part {number} of type "
                    f"{raw.get('type') if isinstance(raw, Mapping) else None!r} is not "
                    "understood; it was not migrated",
                    source_id=source_id,
                    value=note_value(raw),
                )
            )
        else:
            parts.append(part)
    unmapped = {k: v for k, v in message.items() if k not in _MESSAGE_KEYS}
    if message.get("metadata"):
        unmapped["metadata"] = message["metadata"]
    # A message that did not complete says so only here: the new item lands as completed.
    if message.get("status") not in (None, "completed"):
        unmapped["status"] = message["status"]
    for key in ("incomplete_details", "incomplete_at"):
        if message.get(key):
            unmapped[key] = message[key]
    if unmapped:
        notes.append(
            SourceNote(
                code="unmapped_field",
                message=f"message {message_id}: field(s) with no place in the Conversations "
                f"API kept in the report only: {', '.join(sorted(unmapped))}",
                source_id=source_id,
                count=len(unmapped),
                value=note_value(unmapped),
            )
        )
    attachment_tools: dict[str, list[str]] = {}
    for attachment in message.get("attachments") or []:
        file_id = attachment.get("file_id") if isinstance(attachment, Mapping) else None
        if not isinstance(file_id, str):
            raise AssistantsFormatError(f"message {message_id} has an attachment without file_id")
        tools = [
            str(t.get("type")) for t in attachment.get("tools") or [] if isinstance(t, Mapping)
        ]
        attachment_tools[file_id] = tools
    # Assistants v1 listed files on the message itself, for the `retrieval` tool.
    for file_id in message.get("file_ids") or []:
        attachment_tools.setdefault(str(file_id), [])
    parts.extend(
        FilePart(file_id=file_id, filename=filenames.get(file_id)) for file_id in attachment_tools
    )
    metadata: dict[str, Any] = {
        key: message[key]
        for key in ("assistant_id", "run_id", "status", "incomplete_details", "metadata")
        if message.get(key)
    }
    if attachment_tools:
        metadata["attachment_tools"] = attachment_tools
    return Message(
        role=role,
        parts=parts,
        source_id=str(message_id) if message_id is not None else None,
        position=f"messages[{index}]",
        created_at=_time(message.get("created_at")),
        metadata=metadata,
    )


def _part(
    part: Any, message_id: Any, filenames: Mapping[str, str], notes: list[SourceNote]
) -> Part | None:
    """The neutral part, or None for a part type this reader does not know."""
    if not isinstance(part, Mapping):
        raise AssistantsFormatError(
            f"message {message_id} has a content part that is not an object"
        )
    kind = part.get("type")
    if kind == "text":
        text = part.get("text")
        if isinstance(text, str):
            return TextPart(text=text)
        if not isinstance(text, Mapping) or not isinstance(text.get("value"), str):
            raise AssistantsFormatError(f"message {message_id} has a text part without a value")
        annotations = [
            found
            for a in text.get("annotations") or []
            if (found := _annotation(a, message_id, filenames, notes)) is not None
        ]
        return TextPart(text=text["value"], annotations=annotations)
    if kind == "image_file":
        image = part.get("image_file") or {}
        return ImagePart(file_id=image.get("file_id"), detail=image.get("detail"))
    if kind == "image_url":
        image = part.get("image_url") or {}
        return ImagePart(url=image.get("url"), detail=image.get("detail"))
    if kind == "refusal":
        return RefusalPart(refusal=str(part.get("refusal") or ""))
    return None


def _annotation(
    annotation: Any, message_id: Any, filenames: Mapping[str, str], notes: list[SourceNote]
) -> Annotation | None:
    kind = annotation.get("type") if isinstance(annotation, Mapping) else None
    if kind not in ("file_citation", "file_path", "url_citation"):
        notes.append(
            SourceNote(
                code="unknown_annotation",
                message=f"message {message_id}: annotation of type {kind!r} was not migrated",
                source_id=str(message_id),
                value=note_value(annotation),
            )
        )
        return None
    assert isinstance(annotation, Mapping)
    target = annotation.get(kind) or {}
    if kind == "url_citation":
        return Annotation(
            kind="url_citation",
            marker=annotation.get("text"),
            start_index=annotation.get("start_index"),
            end_index=annotation.get("end_index"),
            url=target.get("url"),
            title=target.get("title") or target.get("url"),
        )
    file_id = target.get("file_id")
    return Annotation(
        kind=kind,
        marker=annotation.get("text"),
        start_index=annotation.get("start_index"),
        end_index=annotation.get("end_index"),
        file_id=file_id,
        filename=filenames.get(file_id) if isinstance(file_id, str) else None,
        quote=target.get("quote") or None,
    )


# --- run steps -----------------------------------------------------------------------------


def _tool_entries(step: JsonObject, index: int, filenames: Mapping[str, str]) -> list[Entry]:
    """Entries for one `tool_calls` step: function calls, then their outputs, then hosted steps."""
    step_id = step.get("id")
    calls = (step.get("step_details") or {}).get("tool_calls")
    if not isinstance(calls, list):
        raise AssistantsFormatError(f"run step {step_id} has no tool_calls list")
    base = {
        key: step[key]
        for key in ("run_id", "assistant_id", "status", "last_error")
        if step.get(key)
    }
    base["step_id"] = step_id
    created_at = _time(step.get("created_at"))
    position = f"run_steps[{index}]"
    function_calls: list[Entry] = []
    outputs: list[Entry] = []
    hosted: list[Entry] = []
    for call in calls:
        if not isinstance(call, Mapping):
            raise AssistantsFormatError(f"run step {step_id} has a tool call that is not an object")
        call_id = call.get("id")
        kind = call.get("type")
        common: dict[str, Any] = {
            "source_id": str(call_id) if call_id is not None else None,
            "position": position,
            "created_at": created_at,
            "metadata": dict(base),
        }
        if kind == "function":
            function = call.get("function") or {}
            name = function.get("name")
            if not isinstance(name, str):
                raise AssistantsFormatError(
                    f"run step {step_id}: function call {call_id} has no name"
                )
            function_calls.append(
                ToolCall(
                    call_id=call_id,
                    name=name,
                    arguments=_as_text(function.get("arguments")),
                    **common,
                )
            )
            if function.get("output") is not None:
                outputs.append(
                    ToolResult(
                        call_id=call_id,
                        name=name,
                        output=_as_text(function.get("output")),
                        **common,
                    )
                )
        elif kind == "code_interpreter":
            hosted.append(_code_interpreter(call, common))
        elif kind == "file_search":
            hosted.append(_file_search(call, common, filenames))
        elif kind == "retrieval":
            hosted.append(HostedToolStep(tool="retrieval", **common))
        else:
            raise AssistantsFormatError(f"run step {step_id} has unknown tool call type {kind!r}")
    return [*function_calls, *outputs, *hosted]


def _code_interpreter(call: JsonObject, common: dict[str, Any]) -> HostedToolStep:
    details = call.get("code_interpreter") or {}
    outputs: list[str] = []
    file_ids: list[str] = []
    for output in details.get("outputs") or []:
        if output.get("type") == "logs":
            outputs.append(str(output.get("logs") or ""))
        elif output.get("type") == "image":
            file_id = (output.get("image") or {}).get("file_id")
            if file_id:
                file_ids.append(str(file_id))
    return HostedToolStep(
        tool="code_interpreter",
        input=details.get("input"),
        outputs=outputs,
        file_ids=file_ids,
        **common,
    )


def _file_search(
    call: JsonObject, common: dict[str, Any], filenames: Mapping[str, str]
) -> HostedToolStep:
    details = call.get("file_search") or {}
    outputs: list[str] = []
    file_ids: list[str] = []
    for result in details.get("results") or []:
        file_id = str(result.get("file_id") or "")
        name = result.get("file_name") or filenames.get(file_id) or file_id
        line = f"{name} (score {result.get('score')})" if "score" in result else str(name)
        texts = [str(c.get("text")) for c in result.get("content") or [] if c.get("type") == "text"]
        outputs.append("\n".join([line, *texts]))
        if file_id:
            file_ids.append(file_id)
    return HostedToolStep(tool="file_search", outputs=outputs, file_ids=file_ids, **common)


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
