"""The transform's tool calls: call ids, pairing each output with its call, orphan outputs,
calls never answered, and the send order of a group of parallel calls."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from adapters.model import Message, Part, RefusalPart, TextPart, ToolCall
from migrate.transform.content import _Content
from migrate.transform.parts import describe_part
from migrate.transform.walk import _ADDED, _RECORDED, PlannedItem, _Call, _Group

MAX_CALL_ID_CHARS = 64


def synthesized_call_id(conversation_id: str, entry_index: int) -> str:
    """The deterministic call id given to a call whose own id cannot be sent."""
    digest = hashlib.sha256(f"{conversation_id}\x00{entry_index}".encode()).hexdigest()
    return f"call_{digest[:24]}"


class _ToolCalls(_Content):
    """Keeps the open calls and groups, so that every output lands after its call."""

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
