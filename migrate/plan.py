"""The planner: one source conversation becomes the exact API calls a run would send.

A plan is: create the conversation empty with its metadata, then append the items in batches
of at most `MAX_ITEMS_PER_CALL`. The plan carries a fingerprint so a resumed job can tell
whether the source changed under a conversation already in progress.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from adapters.model import SourceConversation
from migrate.findings import Finding
from migrate.policy import Policy

MAX_ITEMS_PER_CALL = 20
CONVERSATIONS_PATH = "/conversations"
ITEMS_PATH = "/conversations/{conversation_id}/items"


class PlannedItem(BaseModel):
    """One item exactly as it will be sent, with the source entry it came from."""

    model_config = ConfigDict(extra="forbid")

    item: dict[str, Any]
    source_id: str | None = None
    entry_index: int
    """Index of the source entry (in `SourceConversation.entries`) that produced this item."""


class PlannedRequest(BaseModel):
    """One HTTP call of a plan; `path` is relative to the target's base URL."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["POST"] = "POST"
    path: str
    body: dict[str, Any]


class ConversationPlan(BaseModel):
    """Everything a run needs to land one source conversation."""

    model_config = ConfigDict(extra="forbid")

    source_kind: str
    source_id: str
    location: str
    metadata: dict[str, str]
    items: list[PlannedItem]
    batch_sizes: list[int]
    """Sizes of the `items.create` calls, in order; they add up to `len(items)`."""
    fingerprint: str
    findings: list[Finding]

    def batches(self) -> list[list[PlannedItem]]:
        """The items grouped as they will be sent, one list per `items.create` call."""
        out: list[list[PlannedItem]] = []
        start = 0
        for size in self.batch_sizes:
            out.append(self.items[start : start + size])
            start += size
        return out

    def requests(self) -> list[PlannedRequest]:
        """The create call (metadata only) followed by one call per batch."""
        calls = [PlannedRequest(path=CONVERSATIONS_PATH, body={"metadata": self.metadata})]
        calls += [
            PlannedRequest(path=ITEMS_PATH, body={"items": [p.item for p in batch]})
            for batch in self.batches()
        ]
        return calls


def plan_conversation(conversation: SourceConversation, policy: Policy) -> ConversationPlan:
    """Transform, validate and batch one conversation (raises `ConversationError`)."""
    raise NotImplementedError("planner not written yet")
