"""The plan of one conversation: the exact API calls a run would send for it."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from migrate.transform.findings import Finding
from migrate.transform.transformer import PlannedItem

CONVERSATIONS_PATH = "/conversations"
CONVERSATION_PATH = "/conversations/{conversation_id}"
ITEMS_PATH = "/conversations/{conversation_id}/items"


class PlannedRequest(BaseModel):
    """One HTTP call of a plan; `path` is relative to the target's base URL."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["POST"] = "POST"
    path: str
    body: dict[str, Any]


class AppendBase(BaseModel):
    """Where an append-only plan goes on: a conversation an earlier job of the ledger landed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    conversation_id: str
    position: int
    """Items the conversation already holds; the plan's first item lands after them."""
    fingerprint: str
    """The chained fingerprint of those items (`migrate.state.ledger.chain_fingerprints`)."""
    reconcile: bool = False
    """The job that landed them did not finish the conversation: list it before writing."""
    update_metadata: bool = False
    """Set the conversation's metadata to the plan's before the first append (once)."""


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
    tokens: int | None = None
    """Input tokens of `items` for the policy's model (`migrate.context`); None in old plans."""
    tokens_estimate: str | None = None
    """None when `tokens` is exact; else what the estimate rests on (images, files)."""
    append: AppendBase | None = None
    """Set by `migrate sync`: no create call; the items go after those already there."""

    def batches(self) -> list[list[PlannedItem]]:
        """The items grouped as they will be sent, one list per `items.create` call."""
        out: list[list[PlannedItem]] = []
        start = 0
        for size in self.batch_sizes:
            out.append(self.items[start : start + size])
            start += size
        return out

    def requests(self) -> list[PlannedRequest]:
        """The create call (metadata only; when appending, the metadata update if any)
        followed by one call per batch."""
        calls: list[PlannedRequest] = []
        if self.append is None:
            calls.append(PlannedRequest(path=CONVERSATIONS_PATH, body={"metadata": self.metadata}))
        elif self.append.update_metadata:
            path = CONVERSATION_PATH.format(conversation_id=self.append.conversation_id)
            calls.append(PlannedRequest(path=path, body={"metadata": self.metadata}))
        calls += [
            PlannedRequest(path=ITEMS_PATH, body={"items": [p.item for p in batch]})
            for batch in self.batches()
        ]
        return calls
