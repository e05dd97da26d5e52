"""The pure transform: one neutral `SourceConversation` becomes the API items a run would send.

No I/O, no clock, no randomness: the same conversation and policy always give the same items
and findings. Every lossy or repairing step is a `Finding`; content the policy says to fail on,
or content that cannot be sent at all, raises `ConversationError` naming the conversation, its
location and the source entry.

Decisions the design leaves open, stated here:

- A tool output that matches no call (`orphan_tool_output`, policy `text`) becomes an
  **assistant** message `[tool output: name call_id]` followed by the output. The output was part
  of the assistant's tool turn; a user or developer message would put the words in someone
  else's mouth (or give them instruction priority).
- A message with a tool role (`tool`, `function`, `observation`, `ipython`) is a tool output
  without a call id: it pairs with the oldest unanswered call of the current tool group, else
  the oldest unanswered call, else it is an orphan.
- Calls stay open until the end of the conversation, so a late output still pairs with its call
  (it lands at its source position, never before its call). Calls never answered are handled
  by `policy.tool_call_without_output`; the default adds an empty output right after the call
  group.
- In a group of parallel calls, the outputs that follow the group keep their source order;
  empty outputs added for unanswered calls come after them, in the calls' order.
- With `assistant_content="string"`, the texts of one assistant message are joined with a blank
  line, annotations cannot be sent (`annotation_dropped`) and a refusal part becomes text.
- `refusal="part"` sends a `refusal` part without a server id: the spec only defines it inside
  a full `OutputMessage` and the live API's answer is unverified, so it is opt-in.
- Finding codes beyond the design's table: `name_dropped`, `hidden_message_dropped`,
  `unknown_role`, `audio_as_text` / `audio_dropped`, `unresolved_image_as_text` /
  `unresolved_image_dropped`, `image_detail_replaced`, `refusal_dropped`,
  `assistant_image_dropped`, `hosted_tool_dropped`, `reasoning_as_text`,
  `citation_markers_stripped`, `tool_output_paired_by_order` (an output without call id paired
  with the oldest open call) and `tool_part_as_text`; `metadata_truncated` and
  `duplicate_source_id` come from planning.
- Adapter notes keep their own codes and become findings as they are: `unknown_part_type`,
  `unknown_annotation`, `unmapped_field`, `tool_output_as_json`, `lone_surrogate_replaced`,
  `partial_message_list`, `thread_order_assumed`, `export_page_incomplete`,
  `run_step_message_missing`, `unknown_content_type`, `invalid_tool_call`, `image_missing`,
  `image_without_token`, `branch_not_migrated`, ... (each reader's module docstring lists its
  own). A finding that drops a value carries it in `Finding.value` (and so in
  `findings.jsonl`), cut at `adapters.model.NOTE_VALUE_CHARS` characters of JSON.
- Annotations reach `output_text` parts as the API's annotations (`url_citation`,
  `file_citation`, `file_path`, `container_file_citation`); one the API cannot take (a required
  field missing) is an `annotation_dropped` finding with its value.
- Responses items: with `provider_items="keep"`, hosted-tool items and `ProviderItem`s are sent
  as the source holds them (id and status included, as the Agents SDK writes them); otherwise a
  `ProviderItem` is dropped as `compaction_dropped` or `item_reference_unresolved`, its whole
  item in the finding. With `reasoning="keep"`, a reasoning item
  with an id or encrypted content is sent as it is, less any plain-text `content` beside
  encrypted content (`reasoning_content_dropped`: the API refuses the two together).
- Error codes when a policy says `fail`: `refusal`, `orphan_tool_output`,
  `tool_call_without_output`, `hosted_tool`, `reasoning`, `assistant_image`, `audio`,
  `unresolved_image`, `unknown_role`; `message_too_large` for a text over `max_text_chars`;
  `invalid_content` for a part that carries nothing sendable (an image without URL, file id or
  reference, a file without id, data or URL, file data without a filename).

The module is long because the walk is one thing: the rule for each entry depends on the state
of the walk (open tool calls, the current call group, what was emitted), so the walk stays in one
class; its pure helpers are in `annotations` and `parts`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict

from adapters.model import (
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
    SourceConversation,
    TextPart,
    ToolCall,
    ToolResult,
    note_value,
)
from migrate.errors import ConversationError
from migrate.transform.annotations import describe_annotation, map_annotation, strip_markers
from migrate.transform.findings import Finding
from migrate.transform.parts import describe_attachment, describe_part, output_text
from migrate.transform.policy import Policy

logger = logging.getLogger(__name__)


INPUT_ROLES = frozenset({"user", "system", "developer"})
TOOL_ROLES = frozenset({"tool", "function", "observation", "ipython"})
IMAGE_DETAILS = frozenset({"auto", "low", "high"})
MAX_CALL_ID_CHARS = 64
URL_PREFIXES = ("http://", "https://", "data:")


class PlannedItem(BaseModel):
    """One item exactly as it will be sent, with the source entry it came from."""

    model_config = ConfigDict(extra="forbid")

    item: dict[str, Any]
    source_id: str | None = None
    entry_index: int
    """Index of the source entry (in `SourceConversation.entries`) that produced this item."""
    source_created_at: float | None = None
    """That entry's timestamp (Unix seconds): items have none in the API, so the report's
    `items.csv` keeps it (set by `migrate.plan.planner`)."""


class TransformResult(BaseModel):
    """The items of one conversation in send order, and every finding on the way."""

    model_config = ConfigDict(extra="forbid")

    items: list[PlannedItem]
    findings: list[Finding]


def transform(conversation: SourceConversation, policy: Policy) -> TransformResult:
    """Turn one source conversation into API items (raises `ConversationError`)."""
    return _Transformer(conversation, policy).run()


def synthesized_call_id(conversation_id: str, entry_index: int) -> str:
    """The deterministic call id given to a call whose own id cannot be sent."""
    digest = hashlib.sha256(f"{conversation_id}\x00{entry_index}".encode()).hexdigest()
    return f"call_{digest[:24]}"


@dataclass
class _Call:
    call_id: str
    original_id: str | None
    tool_type: str
    name: str
    arguments: str
    entry_index: int
    source_id: str | None
    group: _Group
    position: int
    """Position in its group."""
    answered: bool = False


_RECORDED, _ADDED = 0, 1
"""Sort keys of a group's outputs: the source's own, then empty ones added for missing outputs."""


@dataclass
class _Group:
    """Consecutive calls and the outputs that directly follow them."""

    calls: list[tuple[_Call, PlannedItem]] = field(default_factory=list)
    outputs: list[tuple[int, PlannedItem]] = field(default_factory=list)


class _Transformer:
    def __init__(self, conversation: SourceConversation, policy: Policy) -> None:
        self.conversation = conversation
        self.policy = policy
        self.findings: list[Finding] = [
            Finding(
                code=note.code,
                conversation_id=conversation.id,
                message=note.message,
                source_id=note.source_id,
                count=note.count,
                value=note.value,
            )
            for note in conversation.notes
        ]
        self.stream: list[PlannedItem | _Group] = []
        self.calls: list[_Call] = []
        self.open_calls: list[_Call] = []
        self.used_call_ids: set[str] = set()
        self.index = 0
        self.entry: Entry | None = None

    # --- driver ------------------------------------------------------------------------------

    def run(self) -> TransformResult:
        for index, entry in enumerate(self.conversation.entries):
            self.index = index
            self.entry = entry
            match entry:
                case Message():
                    self._message(entry)
                case ToolCall():
                    self._tool_call(entry)
                case ToolResult():
                    self._tool_result(entry.call_id, entry.output, entry.name, entry.parts)
                case HostedToolStep():
                    self._hosted_tool(entry)
                case Reasoning():
                    self._reasoning(entry)
                case ProviderItem():
                    self._provider_item(entry)
        self._close_unanswered_calls()
        return TransformResult(items=self._flatten(), findings=self.findings)

    # --- context for findings and errors ---------------------------------------------------

    def _where(self) -> str:
        entry = self.entry
        label = f"entry {self.index}"
        if entry is not None and (entry.source_id or entry.position):
            label += f" ({entry.source_id or entry.position})"
        return label

    def _source_id(self) -> str | None:
        return self.entry.source_id if self.entry is not None else None

    def _find(self, code: str, message: str, count: int = 1, value: Any = None) -> None:
        self.findings.append(
            Finding(
                code=code,
                conversation_id=self.conversation.id,
                message=f"{self._where()}: {message}",
                source_id=self._source_id(),
                count=count,
                value=None if value is None else note_value(value),
            )
        )

    def _error(self, code: str, message: str, hint: str | None = None) -> ConversationError:
        conv = self.conversation
        return ConversationError(
            code,
            f"conversation {conv.id!r} at {conv.location}, {self._where()}: {message}",
            conversation_id=conv.id,
            location=conv.location,
            source_id=self._source_id(),
            hint=hint,
        )

    def _policy_fail(self, code: str, what: str, setting: str) -> ConversationError:
        return self._error(code, what, hint=f"set policy.{setting} to convert or drop it")

    def _checked(self, text: str, what: str) -> str:
        if len(text) > self.policy.max_text_chars:
            raise self._error(
                "message_too_large",
                f"{what} has {len(text):,} characters, over the limit of "
                f"{self.policy.max_text_chars:,}",
                hint="raise policy.max_text_chars or shorten the source",
            )
        return text

    def _emit(self, item: dict[str, Any]) -> None:
        self.stream.append(
            PlannedItem(item=item, source_id=self._source_id(), entry_index=self.index)
        )

    # --- messages ----------------------------------------------------------------------------

    def _message(self, message: Message) -> None:
        if message.hidden and self.policy.hidden_messages == "drop":
            self._find("hidden_message_dropped", f"hidden {message.role} message dropped")
            return
        role = message.role
        if role in TOOL_ROLES:
            self._tool_role_message(message)
            return
        if role not in INPUT_ROLES and role != "assistant":
            if self.policy.unknown_role == "fail":
                raise self._error(
                    "unknown_role",
                    f"role {role!r} has no equivalent in the Conversations API",
                    hint="set policy.unknown_role = 'user' to send it as user text",
                )
            self._find("unknown_role", f"role {role!r} sent as a user message")
            role = "user"
        if message.name:
            self._find("name_dropped", f"author name {message.name!r} has no API field")
        if role == "assistant":
            self._assistant_message(message.parts)
        else:
            self._input_message(role, message.parts)

    def _input_message(self, role: str, parts: Sequence[Part]) -> None:
        content = self._input_content(role, parts)
        if not content:
            self._find("empty_message", f"{role} message with nothing to send dropped")
            return
        self._emit({"type": "message", "role": role, "content": content})

    def _input_content(self, role: str, parts: Sequence[Part]) -> list[dict[str, Any]]:
        """Input content parts (`input_text`, `input_image`, `input_file`) for `parts`."""
        content: list[dict[str, Any]] = []
        for part in parts:
            match part:
                case TextPart():
                    text, _ = self._text_and_annotations(part, keep_annotations=False)
                    if text:
                        content.append({"type": "input_text", "text": text})
                case RefusalPart():
                    self._find("refusal_as_text", f"refusal in a {role} message sent as text")
                    content.append(
                        {"type": "input_text", "text": self._checked(part.refusal, "refusal")}
                    )
                case ImagePart():
                    image = self._input_image(part)
                    if image is not None:
                        content.append(image)
                case FilePart():
                    content.append(self._input_file(part))
                case AudioPart():
                    spoken = self._audio_text(part)
                    if spoken is not None:
                        content.append({"type": "input_text", "text": spoken})
        return content

    def _assistant_message(self, parts: Sequence[Part]) -> None:
        as_string = self.policy.assistant_content == "string"
        content: list[dict[str, Any]] = []
        for part in parts:
            match part:
                case TextPart():
                    text, annotations = self._text_and_annotations(
                        part, keep_annotations=not as_string
                    )
                    if text:
                        content.append(
                            {"type": "output_text", "text": text, "annotations": annotations}
                        )
                case RefusalPart():
                    refusal = self._refusal(part, as_string)
                    if refusal is not None:
                        content.append(refusal)
                case ImagePart() | FilePart():
                    reference = self._assistant_attachment(part)
                    if reference is not None:
                        content.append(output_text(reference))
                case AudioPart():
                    spoken = self._audio_text(part)
                    if spoken is not None:
                        content.append(output_text(spoken))
        if not content:
            self._find("empty_message", "assistant message with nothing to send dropped")
            return
        if as_string:
            joined = "\n\n".join(str(part.get("text", part.get("refusal", ""))) for part in content)
            self._emit(
                {
                    "type": "message",
                    "role": "assistant",
                    "content": self._checked(joined, "assistant text"),
                }
            )
        else:
            self._emit({"type": "message", "role": "assistant", "content": content})

    def _refusal(self, part: RefusalPart, as_string: bool) -> dict[str, Any] | None:
        refusal = self._checked(part.refusal, "refusal")
        match self.policy.refusal:
            case "fail":
                raise self._policy_fail("refusal", "assistant refusal", "refusal")
            case "drop":
                self._find("refusal_dropped", "assistant refusal dropped")
                return None
            case "part" if not as_string:
                return {"type": "refusal", "refusal": refusal}
            case _:
                self._find("refusal_as_text", "assistant refusal sent as assistant text")
                return output_text(refusal)

    # --- text and annotations -----------------------------------------------------------------

    def _text_and_annotations(
        self, part: TextPart, *, keep_annotations: bool
    ) -> tuple[str, list[dict[str, Any]]]:
        text = part.text
        annotations = part.annotations
        if annotations and self.policy.citation_markers == "strip":
            text, annotations, stripped = strip_markers(text, annotations)
            if stripped:
                self._find(
                    "citation_markers_stripped", f"{stripped} citation marker(s) removed", stripped
                )
        self._checked(text, "text")
        mapped: list[dict[str, Any]] = []
        for annotation in annotations:
            api_annotation, missing = map_annotation(annotation)
            if keep_annotations and api_annotation is not None:
                mapped.append(api_annotation)
                continue
            reason = f"missing {', '.join(missing)}" if missing else "this content cannot carry it"
            described = describe_annotation(annotation)
            self._find(
                "annotation_dropped",
                f"{annotation.kind} annotation dropped ({reason}): {described}",
                value=annotation.model_dump(exclude_none=True),
            )
        return text, mapped

    # --- images, files, audio ----------------------------------------------------------------

    def _input_image(self, part: ImagePart) -> dict[str, Any] | None:
        detail = part.detail
        if detail not in IMAGE_DETAILS:
            if detail is not None:
                self._find(
                    "image_detail_replaced",
                    f"image detail {detail!r} is not one of auto|low|high; "
                    f"sent as {self.policy.image_detail!r}",
                )
            detail = self.policy.image_detail
        if part.url and part.url.startswith(URL_PREFIXES):
            return {"type": "input_image", "image_url": part.url, "detail": detail}
        if part.file_id:
            return {"type": "input_image", "file_id": part.file_id, "detail": detail}
        reference = part.reference or part.url
        if not reference:
            raise self._error("invalid_content", "image part without URL, file id or reference")
        match self.policy.unresolved_image:
            case "fail":
                raise self._policy_fail(
                    "unresolved_image", f"image {reference!r} cannot be sent", "unresolved_image"
                )
            case "drop":
                self._find("unresolved_image_dropped", f"image {reference!r} dropped")
                return None
            case _:
                self._find(
                    "unresolved_image_as_text", f"image {reference!r} sent as a text placeholder"
                )
                return {"type": "input_text", "text": f"[image: {reference}]"}

    def _input_file(self, part: FilePart) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "input_file"}
        if part.file_id:
            out["file_id"] = part.file_id
        elif part.file_data:
            if not part.filename:
                raise self._error("invalid_content", "file data without a filename")
            out["file_data"] = part.file_data
        elif part.file_url:
            out["file_url"] = part.file_url
        else:
            raise self._error("invalid_content", "file part without file id, data or URL")
        if part.filename:
            out["filename"] = part.filename
        return out

    def _assistant_attachment(self, part: ImagePart | FilePart) -> str | None:
        reference = describe_attachment(part)
        match self.policy.assistant_image:
            case "fail":
                raise self._policy_fail(
                    "assistant_image", f"assistant {reference} cannot be sent", "assistant_image"
                )
            case "drop":
                self._find("assistant_image_dropped", f"assistant {reference} dropped")
                return None
            case _:
                self._find(
                    "assistant_image_as_text", f"assistant {reference} sent as a text reference"
                )
                return f"[{reference}]"

    def _audio_text(self, part: AudioPart) -> str | None:
        what = f"audio ({part.format or 'unknown format'}" + (
            f", {part.audio_id})" if part.audio_id else ")"
        )
        match self.policy.audio:
            case "fail":
                raise self._policy_fail("audio", f"{what} cannot be sent", "audio")
            case "drop":
                self._find("audio_dropped", f"{what} dropped")
                return None
            case _:
                if part.transcript:
                    self._find("audio_as_text", f"{what} sent as its transcript")
                    return self._checked(part.transcript, "audio transcript")
                self._find("audio_as_text", f"{what} without transcript sent as a placeholder")
                return f"[{what}]"

    # --- tool calls ---------------------------------------------------------------------------

    def _tool_call(self, call: ToolCall) -> None:
        call_id = call.call_id
        if not call_id or len(call_id) > MAX_CALL_ID_CHARS or call_id in self.used_call_ids:
            if not call_id:
                reason = "missing"
            elif len(call_id) > MAX_CALL_ID_CHARS:
                reason = f"longer than {MAX_CALL_ID_CHARS} characters"
            else:
                reason = f"duplicate of an earlier call ({call_id!r})"
            call_id = self._synthesize_call_id()
            self._find("call_id_synthesized", f"call id {reason}; sent as {call_id!r}")
        self.used_call_ids.add(call_id)
        arguments = self._checked(call.arguments, "tool call arguments")
        if call.tool_type == "custom":
            item = {
                "type": "custom_tool_call",
                "call_id": call_id,
                "name": call.name,
                "input": arguments,
            }
        else:
            item = {
                "type": "function_call",
                "call_id": call_id,
                "name": call.name,
                "arguments": arguments,
            }
        tail = self.stream[-1] if self.stream else None
        group = tail if isinstance(tail, _Group) and not tail.outputs else _Group()
        if group is not tail:
            self.stream.append(group)
        record = _Call(
            call_id=call_id,
            original_id=call.call_id or None,
            tool_type=call.tool_type,
            name=call.name,
            arguments=arguments,
            entry_index=self.index,
            source_id=call.source_id,
            group=group,
            position=len(group.calls),
        )
        group.calls.append(
            (record, PlannedItem(item=item, source_id=call.source_id, entry_index=self.index))
        )
        self.calls.append(record)
        self.open_calls.append(record)

    def _synthesize_call_id(self) -> str:
        call_id = synthesized_call_id(self.conversation.id, self.index)
        suffix = 0
        while call_id in self.used_call_ids:
            suffix += 1
            call_id = f"{synthesized_call_id(self.conversation.id, self.index)[:60]}_{suffix}"
        return call_id

    def _tool_role_message(self, message: Message) -> None:
        texts: list[str] = []
        for part in message.parts:
            if isinstance(part, TextPart):
                texts.append(part.text)
            elif isinstance(part, RefusalPart):
                texts.append(part.refusal)
            else:
                description = describe_part(part)
                self._find("tool_part_as_text", f"{description} in a tool output sent as text")
                texts.append(f"[{description}]")
        self._tool_result(None, "\n\n".join(texts), message.name)

    def _tool_result(
        self, call_id: str | None, output: str, name: str | None, parts: Sequence[Part] = ()
    ) -> None:
        output = self._checked(output, "tool output")
        call = self._pair(call_id)
        if call is None:
            for part in parts:
                if not isinstance(part, TextPart):
                    description = describe_part(part)
                    self._find("tool_part_as_text", f"{description} in a tool output sent as text")
            self._orphan(call_id, output, name)
            return
        sent: str | list[dict[str, Any]] = output
        if any(not isinstance(part, TextPart) for part in parts):
            # An output with images or files is sent as content parts, as the API allows.
            sent = self._input_content("tool", parts)
        call.answered = True
        self.open_calls.remove(call)
        kind = "custom_tool_call_output" if call.tool_type == "custom" else "function_call_output"
        item = PlannedItem(
            item={"type": kind, "call_id": call.call_id, "output": sent},
            source_id=self._source_id(),
            entry_index=self.index,
        )
        tail = self.stream[-1] if self.stream else None
        if isinstance(tail, _Group):
            tail.outputs.append((_RECORDED, item))
        else:
            self.stream.append(item)

    def _pair(self, call_id: str | None) -> _Call | None:
        open_calls = self.open_calls
        if call_id:
            for call in open_calls:
                if call_id in (call.original_id, call.call_id):
                    return call
            return None
        if not open_calls:
            return None
        tail = self.stream[-1] if self.stream else None
        in_tail = [call for call in open_calls if call.group is tail]
        call = (in_tail or open_calls)[0]
        self._find(
            "tool_output_paired_by_order",
            f"tool output without call id paired with the oldest unanswered call {call.call_id!r}",
        )
        return call

    def _orphan(self, call_id: str | None, output: str, name: str | None) -> None:
        label = " ".join(x for x in (name, call_id) if x)
        match self.policy.orphan_tool_output:
            case "fail":
                raise self._policy_fail(
                    "orphan_tool_output",
                    f"tool output {label!r} matches no earlier unanswered call",
                    "orphan_tool_output",
                )
            case "drop":
                self._find("orphan_tool_output", f"tool output {label!r} matches no call; dropped")
                return
            case _:
                self._find(
                    "orphan_tool_output", f"tool output {label!r} matches no call; sent as text"
                )
        header = f"[tool output: {label}]" if label else "[tool output]"
        item = PlannedItem(
            item={
                "type": "message",
                "role": "assistant",
                "content": self._assistant_content(f"{header}\n{output}"),
            },
            source_id=self._source_id(),
            entry_index=self.index,
        )
        tail = self.stream[-1] if self.stream else None
        if isinstance(tail, _Group):
            tail.outputs.append((_RECORDED, item))
        else:
            self.stream.append(item)

    def _close_unanswered_calls(self) -> None:
        mode = self.policy.tool_call_without_output
        for call in self.calls:
            if call.answered:
                continue
            self.index = call.entry_index
            self.entry = self.conversation.entries[call.entry_index]
            label = f"{call.name} {call.call_id}"
            if mode == "fail":
                raise self._policy_fail(
                    "tool_call_without_output",
                    f"tool call {label!r} has no output",
                    "tool_call_without_output",
                )
            group = call.group
            if mode == "empty_output":
                self._find(
                    "tool_call_without_output",
                    f"tool call {label!r} has no output; empty output added",
                )
                kind = (
                    "custom_tool_call_output"
                    if call.tool_type == "custom"
                    else "function_call_output"
                )
                item = {"type": kind, "call_id": call.call_id, "output": ""}
                group.outputs.append(
                    (
                        _ADDED,
                        PlannedItem(
                            item=item, source_id=call.source_id, entry_index=call.entry_index
                        ),
                    )
                )
                continue
            position = next(i for i, (c, _) in enumerate(group.calls) if c is call)
            if mode == "drop":
                self._find(
                    "tool_call_without_output", f"tool call {label!r} has no output; dropped"
                )
                del group.calls[position]
                continue
            self._find(
                "tool_call_without_output", f"tool call {label!r} has no output; sent as text"
            )
            text = f"[tool call: {call.name}]\n{call.arguments}\n(no output was recorded)"
            message: dict[str, Any] = {
                "type": "message",
                "role": "assistant",
                "content": self._assistant_content(text),
            }
            group.calls[position] = (
                call,
                PlannedItem(item=message, source_id=call.source_id, entry_index=call.entry_index),
            )

    def _flatten(self) -> list[PlannedItem]:
        items: list[PlannedItem] = []
        for element in self.stream:
            if isinstance(element, PlannedItem):
                items.append(element)
                continue
            items.extend(item for _, item in element.calls)
            # sorted() is stable: recorded outputs keep their source order, added ones follow
            items.extend(item for _, item in sorted(element.outputs, key=lambda pair: pair[0]))
        return items

    # --- hosted tools and reasoning -----------------------------------------------------------

    def _hosted_tool(self, step: HostedToolStep) -> None:
        if step.item is not None and self.policy.provider_items == "keep":
            self._emit(dict(step.item))
            return
        match self.policy.hosted_tool:
            case "fail":
                raise self._policy_fail(
                    "hosted_tool", f"{step.tool} step cannot be sent", "hosted_tool"
                )
            case "drop":
                self._find("hosted_tool_dropped", f"{step.tool} step dropped")
                return
            case _:
                self._find("hosted_tool_as_text", f"{step.tool} step sent as assistant text")
        lines = [f"[{step.tool}]"]
        if step.input:
            lines += ["Input:", step.input]
        if step.outputs:
            lines += ["Output:", *step.outputs]
        if step.file_ids:
            lines.append("Files: " + ", ".join(step.file_ids))
        text = self._checked("\n".join(lines), f"{step.tool} step")
        self._emit(
            {"type": "message", "role": "assistant", "content": self._assistant_content(text)}
        )

    def _reasoning(self, reasoning: Reasoning) -> None:
        if self.policy.reasoning == "keep":
            self._keep_reasoning(reasoning)
            return
        if self.policy.reasoning == "fail":
            raise self._policy_fail("reasoning", "reasoning cannot be sent", "reasoning")
        if self.policy.reasoning == "drop" or reasoning.encrypted or not reasoning.text:
            why = "encrypted " if reasoning.encrypted else ("empty " if not reasoning.text else "")
            self._find("reasoning_dropped", f"{why}reasoning dropped")
            return
        self._find("reasoning_as_text", "reasoning sent as assistant text")
        text = self._checked(f"[reasoning]\n{reasoning.text}", "reasoning")
        self._emit(
            {"type": "message", "role": "assistant", "content": self._assistant_content(text)}
        )

    def _keep_reasoning(self, reasoning: Reasoning) -> None:
        item = dict(reasoning.item or {})
        if not item.get("id") and not item.get("encrypted_content"):
            self._find("reasoning_dropped", "reasoning without id or encrypted content dropped")
            return
        if item.get("encrypted_content") and item.get("content"):
            # The API refuses plain-text content next to encrypted content.
            self._find(
                "reasoning_content_dropped",
                f"reasoning text dropped beside its encrypted content: {item['content']}",
            )
            item.pop("content")
        self._emit(item)

    def _provider_item(self, entry: ProviderItem) -> None:
        kind = str(entry.item.get("type") or "item_reference")
        if self.policy.provider_items == "keep":
            self._emit(dict(entry.item))
            return
        # A ProviderItem is a `compaction` or an `item_reference` the history cannot resolve.
        self._find(
            "item_reference_unresolved" if kind == "item_reference" else "compaction_dropped",
            f"{kind} item dropped (it can only be kept in the same project): "
            f"{json.dumps(entry.item, ensure_ascii=False, sort_keys=True)}",
        )

    def _assistant_content(self, text: str) -> str | list[dict[str, Any]]:
        if self.policy.assistant_content == "string":
            return text
        return [output_text(text)]
