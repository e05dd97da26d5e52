"""Responses API items (input and output items, as listed or stored) to neutral entries.

One rule per item type of the API's item union (`ItemResource` / `InputItem` in the spec):

- `message` (or an item with a `role` and no `type`): every input part (`input_text`,
  `input_image`, `input_file`, `input_audio`) and output part (`output_text` with its
  annotations, `refusal`), and the `text`, `summary_text`, `reasoning_text` and
  `computer_screenshot` parts a conversation item may hold. Lossless, except: `logprobs`
  (`logprobs_dropped`), `phase` (`phase_dropped`), an image the API listed without its URL
  (`image_not_returned`, then the `unresolved_image` policy), a file listed with only its
  name (`file_data_not_returned`, sent as a text reference), and fields the API has no place
  for or a `status` other than `completed` (`unmapped_field`, with their values).
- `function_call` / `function_call_output` and `custom_tool_call` / `custom_tool_call_output`:
  lossless (a `namespace` is dropped as `namespace_dropped`; output parts other than text
  become text references, `tool_output_part_as_text`).
- `reasoning`: a `Reasoning` entry (summary and reasoning text), handled by the `reasoning`
  policy; the item itself travels along for `reasoning = "keep"`.
- Hosted and provider-run tools (`web_search_call`, `file_search_call`,
  `code_interpreter_call`, `image_generation_call`, `computer_call` and its output,
  `local_shell_call` and its output, `shell_call`, `apply_patch_call` and their outputs,
  `tool_search_call` / `_output`, `additional_tools`, `program` / `program_output`,
  `mcp_list_tools`, `mcp_call`, `mcp_approval_request` / `_response`): a `HostedToolStep`
  whose text holds every field but `id`, `created_by` and a `completed` status (queries,
  sources, code, results); the item travels along for `provider_items = "keep"`. Inline
  images in them (an image generation `result`, `data:` URLs) are left out of the text
  (`inline_image_not_sent`), as no text can show them.
- `compaction`: a `ProviderItem` (kept by `provider_items = "keep"`, else a finding).
- `item_reference`: replaced by the item it names when that item is in the same history;
  otherwise a `ProviderItem`.
- `compaction_trigger`: a request to compact, not history: dropped (`compaction_trigger_dropped`).
- Any other type: its fields as text (`unknown_item_as_text`).

Entries keep no ids and no `status`: each item's id becomes the entry's `source_id`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from adapters.chat_messages import arguments_text
from adapters.model import (
    Annotation,
    AudioPart,
    Entry,
    FilePart,
    HostedToolStep,
    ImagePart,
    Message,
    Part,
    ProviderItem,
    Reasoning,
    RefusalPart,
    SourceNote,
    TextPart,
    ToolCall,
    ToolResult,
    note_value,
)

HOSTED_TYPES: dict[str, tuple[str, ...]] = {
    "web_search_call": (),
    "file_search_call": ("results",),
    "code_interpreter_call": ("outputs",),
    "image_generation_call": ("result",),
    "computer_call": (),
    "computer_call_output": ("output",),
    "local_shell_call": (),
    "local_shell_call_output": ("output",),
    "shell_call": (),
    "shell_call_output": ("output",),
    "apply_patch_call": (),
    "apply_patch_call_output": ("output",),
    "tool_search_call": (),
    "tool_search_output": ("tools",),
    "additional_tools": ("tools",),
    "program": (),
    "program_output": ("result",),
    "mcp_list_tools": ("tools", "error"),
    "mcp_call": ("output", "error"),
    "mcp_approval_request": (),
    "mcp_approval_response": (),
}
"""Hosted-tool item types and, for each, the fields shown as its output (the rest is input)."""

CALL_TYPES = {"function_call": "function", "custom_tool_call": "custom"}
OUTPUT_TYPES = {"function_call_output": "function", "custom_tool_call_output": "custom"}
ITEM_TYPES = frozenset(
    {
        "message",
        "reasoning",
        "compaction",
        "compaction_trigger",
        "item_reference",
        *CALL_TYPES,
        *OUTPUT_TYPES,
        *HOSTED_TYPES,
    }
)
"""Every item type of the Responses item union."""

_UNSHOWN_FIELDS = frozenset({"id", "type", "status", "created_by"})
_TEXT_PARTS = frozenset({"input_text", "output_text", "text", "summary_text", "reasoning_text"})
_MESSAGE_KEYS = frozenset({"type", "id", "role", "content", "status", "phase"})


class ItemError(Exception):
    """An item that cannot be read at all (not an object, no type and no role)."""


@dataclass
class DecodedHistory:
    """The entries of one history and the notes on the way."""

    entries: list[Entry] = field(default_factory=list)
    notes: list[SourceNote] = field(default_factory=list)


def decode_items(items: Sequence[Any], *, first_position: int = 0) -> DecodedHistory:
    """Turn a Responses history (items in order) into neutral entries.

    Raises:
        ItemError: An item is not an object, or has neither `type` nor `role`.
    """
    by_id = {
        str(item["id"]): item
        for item in items
        if isinstance(item, dict) and item.get("type") != "item_reference" and item.get("id")
    }
    decoder = _Decoder(by_id)
    for index, item in enumerate(items, start=first_position):
        decoder.item(item, f"item {index}")
    return decoder.out


class _Decoder:
    def __init__(self, by_id: dict[str, Any]) -> None:
        self.by_id = by_id
        self.out = DecodedHistory()

    def note(self, code: str, message: str, source_id: str | None) -> None:
        self.out.notes.append(SourceNote(code=code, message=message, source_id=source_id))

    def item(self, item: Any, position: str, *, resolving: frozenset[str] = frozenset()) -> None:
        if not isinstance(item, dict):
            raise ItemError(f"{position} is {type(item).__name__}, not an object")
        kind = item.get("type")
        if kind is None and "role" in item:
            kind = "message"
        if not isinstance(kind, str):
            raise ItemError(f"{position} has neither a type nor a role")
        source_id = str(item["id"]) if item.get("id") else None
        where = f"{position} ({source_id})" if source_id else position
        entries = self.out.entries
        if kind == "message":
            entries.append(self.message(item, position, source_id, where))
        elif kind in CALL_TYPES:
            self.dropped_namespace(item, source_id, where)
            payload = "arguments" if kind == "function_call" else "input"
            entries.append(
                ToolCall(
                    source_id=source_id,
                    position=position,
                    call_id=_optional_str(item.get("call_id")),
                    name=str(item.get("name") or ""),
                    arguments=arguments_text(item.get(payload)),
                    tool_type="custom" if kind == "custom_tool_call" else "function",
                )
            )
        elif kind in OUTPUT_TYPES:
            self.dropped_namespace(item, source_id, where)
            entries.append(
                ToolResult(
                    source_id=source_id,
                    position=position,
                    call_id=_optional_str(item.get("call_id")),
                    output=self.tool_output(item.get("output"), source_id, where),
                    name=_optional_str(item.get("name")),
                    tool_type="custom" if kind == "custom_tool_call_output" else "function",
                )
            )
        elif kind == "reasoning":
            entries.append(_reasoning(item, position, source_id))
        elif kind in HOSTED_TYPES:
            entries.append(self.hosted(item, kind, position, source_id, where))
        elif kind == "compaction":
            entries.append(ProviderItem(source_id=source_id, position=position, item=item))
        elif kind == "compaction_trigger":
            self.note("compaction_trigger_dropped", f"{where}: compaction_trigger dropped", None)
        elif kind == "item_reference":
            self.reference(item, position, resolving)
        else:
            self.note(
                "unknown_item_as_text",
                f"{where}: item type {kind!r} is not in the Responses item union; sent as text",
                source_id,
            )
            entries.append(self.hosted(item, kind, position, source_id, where, keep=False))

    # --- messages ------------------------------------------------------------------------------

    def message(
        self, item: dict[str, Any], position: str, source_id: str | None, where: str
    ) -> Message:
        role = str(item.get("role") or "user")
        if item.get("phase") is not None:
            self.note(
                "phase_dropped", f"{where}: message phase {item['phase']!r} dropped", source_id
            )
        extra = {key: value for key, value in item.items() if key not in _MESSAGE_KEYS}
        if item.get("status") not in (None, "completed"):
            extra["status"] = item["status"]
        shown = {key: value for key, value in extra.items() if value not in (None, "", [], {})}
        if shown:
            self.out.notes.append(
                SourceNote(
                    code="unmapped_field",
                    message=f"{where}: message field(s) with no place in the Conversations API "
                    f"kept in the report only: {', '.join(sorted(shown))}",
                    source_id=source_id,
                    count=len(shown),
                    value=note_value(shown),
                )
            )
        content = item.get("content")
        parts: list[Part] = []
        if isinstance(content, str):
            parts.append(TextPart(text=content))
        elif isinstance(content, list):
            for index, part in enumerate(content):
                parts += self.part(part, f"{where} content[{index}]", source_id)
        elif content is not None:
            raise ItemError(f"{where}: content is neither a string nor a list of parts")
        return Message(
            source_id=source_id, position=position, role=role, parts=parts, metadata=extra
        )

    def part(self, part: Any, where: str, source_id: str | None) -> list[Part]:
        if isinstance(part, str):
            return [TextPart(text=part)]
        if not isinstance(part, dict):
            raise ItemError(f"{where} is {type(part).__name__}, not a content part")
        kind = part.get("type")
        if kind in _TEXT_PARTS:
            logprobs = part.get("logprobs")
            if logprobs:
                self.note(
                    "logprobs_dropped",
                    f"{where}: {len(logprobs)} token logprobs dropped",
                    source_id,
                )
            return [
                TextPart(
                    text=str(part.get("text") or ""),
                    annotations=self.annotations(part.get("annotations") or [], where, source_id),
                )
            ]
        if kind == "refusal":
            return [RefusalPart(refusal=str(part.get("refusal") or ""))]
        if kind in ("input_image", "computer_screenshot"):
            url, file_id = _optional_str(part.get("image_url")), _optional_str(part.get("file_id"))
            if url is None and file_id is None:
                self.note(
                    "image_not_returned",
                    f"{where}: {kind} has no URL or file id (the API lists an image by URL only "
                    "with include=message.input_image.image_url, and never returns inline data)",
                    source_id,
                )
                return [ImagePart(reference=f"{kind} without URL", detail=part.get("detail"))]
            return [ImagePart(url=url, file_id=file_id, detail=part.get("detail"))]
        if kind == "input_file":
            file = FilePart(
                file_id=_optional_str(part.get("file_id")),
                file_data=_optional_str(part.get("file_data")),
                file_url=_optional_str(part.get("file_url")),
                filename=_optional_str(part.get("filename")),
            )
            if file.file_id or file.file_data or file.file_url:
                return [file]
            name = file.filename or "unnamed file"
            self.note(
                "file_data_not_returned",
                f"{where}: input_file {name!r} has no file id, data or URL (the API does not "
                "return inline file_data); sent as a text reference",
                source_id,
            )
            return [TextPart(text=f"[file: {name}]")]
        if kind == "input_audio":
            audio = part.get("input_audio") or {}
            return [AudioPart(data=audio.get("data"), format=audio.get("format"))]
        raise ItemError(f"{where}: content part type {kind!r} is not one the API defines")

    def annotations(self, values: list[Any], where: str, source_id: str | None) -> list[Annotation]:
        out: list[Annotation] = []
        for value in values:
            kind = value.get("type") if isinstance(value, dict) else None
            if kind not in (
                "file_citation",
                "file_path",
                "url_citation",
                "container_file_citation",
            ):
                self.note("annotation_dropped", f"{where}: annotation {value!r} dropped", source_id)
                continue
            assert isinstance(value, dict)
            known = {name: value[name] for name in Annotation.model_fields if name in value}
            known.pop("kind", None)
            out.append(Annotation(kind=kind, **known))
        return out

    # --- tools -----------------------------------------------------------------------------

    def dropped_namespace(self, item: dict[str, Any], source_id: str | None, where: str) -> None:
        if item.get("namespace"):
            self.note(
                "namespace_dropped",
                f"{where}: tool namespace {item['namespace']!r} dropped",
                source_id,
            )

    def tool_output(self, output: Any, source_id: str | None, where: str) -> str:
        if output is None or isinstance(output, str):
            return output or ""
        if not isinstance(output, list):
            return arguments_text(output)
        texts: list[str] = []
        for index, part in enumerate(output):
            if isinstance(part, dict) and part.get("type") in _TEXT_PARTS:
                texts.append(str(part.get("text") or ""))
                continue
            described = _described(part)
            self.note(
                "tool_output_part_as_text",
                f"{where} output[{index}]: {described} sent as text",
                source_id,
            )
            texts.append(f"[{described}]")
        return "\n\n".join(texts)

    def hosted(
        self,
        item: dict[str, Any],
        kind: str,
        position: str,
        source_id: str | None,
        where: str,
        *,
        keep: bool = True,
    ) -> HostedToolStep:
        output_fields = HOSTED_TYPES.get(kind, ())
        inputs: list[str] = []
        outputs: list[str] = []
        for name, value in item.items():
            unfinished = name == "status" and value not in (None, "completed")
            if (name in _UNSHOWN_FIELDS or value is None) and not unfinished:
                continue
            shown = self.without_inline_images(value, f"{where} {name}", source_id)
            line = f"{name}: {arguments_text(shown)}"
            (outputs if name in output_fields else inputs).append(line)
        return HostedToolStep(
            source_id=source_id,
            position=position,
            tool=kind,
            input="\n".join(inputs) or None,
            outputs=outputs,
            item=item if keep else None,
        )

    def without_inline_images(self, value: Any, where: str, source_id: str | None) -> Any:
        """`value` with base64 images (image generation results, data URLs) replaced."""
        if isinstance(value, str):
            if value.startswith("data:") or (where.endswith(" result") and len(value) > 1000):
                self.note(
                    "inline_image_not_sent",
                    f"{where}: inline image data ({len(value):,} characters) left out of the "
                    "text; kept only with provider_items=keep",
                    source_id,
                )
                return f"<inline image, {len(value):,} characters>"
            return value
        if isinstance(value, list):
            return [self.without_inline_images(v, where, source_id) for v in value]
        if isinstance(value, dict):
            return {k: self.without_inline_images(v, where, source_id) for k, v in value.items()}
        return value

    def reference(self, item: dict[str, Any], position: str, resolving: frozenset[str]) -> None:
        target_id = str(item.get("id") or "")
        target = self.by_id.get(target_id)
        if target is None or target_id in resolving:
            self.out.entries.append(
                ProviderItem(source_id=target_id or None, position=position, item=item)
            )
            return
        self.item(target, f"{position} (item_reference)", resolving=resolving | {target_id})


def _reasoning(item: dict[str, Any], position: str, source_id: str | None) -> Reasoning:
    texts = [
        str(part.get("text") or "")
        for key in ("summary", "content")
        for part in item.get(key) or []
        if isinstance(part, dict) and part.get("text")
    ]
    text = "\n\n".join(texts) or None
    return Reasoning(
        source_id=source_id,
        position=position,
        text=text,
        encrypted=bool(item.get("encrypted_content")) and text is None,
        item=item,
    )


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _described(part: Any) -> str:
    if not isinstance(part, dict):
        return arguments_text(part)
    kind = part.get("type", "part")
    detail = (
        part.get("image_url") or part.get("file_id") or part.get("file_url") or part.get("filename")
    )
    if isinstance(detail, str) and detail.startswith("data:"):
        detail = f"inline data, {len(detail):,} characters"
    return f"{kind}: {detail}" if detail else str(kind)
