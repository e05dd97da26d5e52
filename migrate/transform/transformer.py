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

The walk is one object: the rule for each entry depends on the state of the walk (open tool
calls, the current call group, what was emitted). Its parts are base classes of `_Transformer`,
one module each: the state and reporting (`walk`), content parts (`content`) and tool calls
(`toolcalls`); this module keeps the driver, messages, hosted tools and reasoning. Its pure
helpers are in `annotations` and `parts`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

from adapters.model import (
    AudioPart,
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
)
from migrate.transform.findings import Finding
from migrate.transform.parts import output_text
from migrate.transform.policy import Policy
from migrate.transform.toolcalls import _ToolCalls
from migrate.transform.walk import PlannedItem

__all__ = ["PlannedItem", "TransformResult", "transform"]

logger = logging.getLogger(__name__)


INPUT_ROLES = frozenset({"user", "system", "developer"})
TOOL_ROLES = frozenset({"tool", "function", "observation", "ipython"})


class TransformResult(BaseModel):
    """The items of one conversation in send order, and every finding on the way."""

    model_config = ConfigDict(extra="forbid")

    items: list[PlannedItem]
    findings: list[Finding]


def transform(conversation: SourceConversation, policy: Policy) -> TransformResult:
    """Turn one source conversation into API items (raises `ConversationError`)."""
    return _Transformer(conversation, policy).run()


class _Transformer(_ToolCalls):
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
