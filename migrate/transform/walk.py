"""The transform's walk state: the items emitted so far, the tool calls and their groups, and
the findings and errors reported with the current entry's place in the conversation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict

from adapters.model import Entry, SourceConversation, note_value
from migrate.errors import ConversationError
from migrate.transform.findings import Finding
from migrate.transform.parts import output_text
from migrate.transform.policy import Policy


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


@dataclass(slots=True, eq=False)
class _Call:
    """One tool call of the walk; calls are told apart by identity (each has its own id)."""

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


@dataclass(slots=True)
class _Group:
    """Consecutive calls and the outputs that directly follow them."""

    calls: list[tuple[_Call, PlannedItem]] = field(default_factory=list)
    outputs: list[tuple[int, PlannedItem]] = field(default_factory=list)


class _Walk:
    """What the walk holds and how it reports; the base of the transform's walk."""

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

    def _assistant_content(self, text: str) -> str | list[dict[str, Any]]:
        if self.policy.assistant_content == "string":
            return text
        return [output_text(text)]
