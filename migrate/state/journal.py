"""The intent/outcome journal: each remote write is recorded before it is sent and resolved
right after, each in one transaction; the conversation's counters move with it."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    Connection,
    case,
    insert,
    update,
)

from migrate.state.base import StoreBase
from migrate.state.schema import IntentKind, IntentOutcome, conversations, intents, items


class Journal(StoreBase):
    """The replay protocol's writes: an intent before each remote write, its outcome after."""

    def record_intent(self, seq: int, kind: IntentKind, *, start: int, count: int) -> int:
        """Write down a remote write before sending it; returns the intent id."""
        now = time.time()
        with self.engine.begin() as conn:
            result = conn.execute(
                insert(intents).values(seq=seq, kind=kind, start=start, count=count, created_at=now)
            )
            if kind != "delete":
                status = conversations.c.status
                self._update(
                    conn,
                    seq,
                    status=case((status == "pending", "in_progress"), else_=status),
                    updated_at=now,
                )
            key = result.inserted_primary_key
            assert key is not None
            return int(key[0])

    def record_created(self, seq: int, intent_id: int, conversation_id: str) -> None:
        """The conversation exists: its id and the outcome in one transaction."""
        now = time.time()
        with self.engine.begin() as conn:
            self._update(
                conn,
                seq,
                conversation_id=conversation_id,
                calls=conversations.c.calls + 1,
                updated_at=now,
            )
            _resolve(conn, intent_id, "applied", now)

    def record_conversation_found(self, seq: int, conversation_id: str) -> None:
        """A create whose outcome was unknown was found on the target (which lists them)."""
        with self.engine.begin() as conn:
            self._update(conn, seq, conversation_id=conversation_id, updated_at=time.time())

    def record_appended(
        self,
        seq: int,
        intent_id: int | None,
        *,
        landed: Sequence[tuple[int, str | None, str]],
        source_conversation_id: str | None,
        migrated: bool,
        outcome: IntentOutcome = "applied",
        calls: int = 1,
        reconciled: bool = False,
    ) -> None:
        """Items landed (`(position, source item id, new item id)`): rows, counts, outcome."""
        now = time.time()
        values: dict[str, Any] = {
            "landed_items": conversations.c.landed_items + len(landed),
            "calls": conversations.c.calls + calls,
            "updated_at": now,
        }
        if reconciled:
            values["reconciliations"] = conversations.c.reconciliations + 1
        if migrated:
            values["status"] = "migrated"
        with self.engine.begin() as conn:
            self._update(conn, seq, **values)
            if intent_id is not None:
                _resolve(conn, intent_id, outcome, now)
            if landed:
                conn.execute(
                    insert(items),
                    [
                        {
                            "seq": seq,
                            "position": position,
                            "source_conversation_id": source_conversation_id,
                            "source_item_id": source_item_id,
                            "item_id": item_id,
                        }
                        for position, source_item_id, item_id in landed
                    ],
                )

    def record_attempt_failed(
        self, seq: int, intent_id: int | None, outcome: IntentOutcome, *, orphan: bool = False
    ) -> None:
        """A call failed and will be retried: its outcome, one more call and one more retry."""
        now = time.time()
        with self.engine.begin() as conn:
            if intent_id is not None:
                _resolve(conn, intent_id, outcome, now)
            values: dict[str, Any] = {
                "calls": conversations.c.calls + 1,
                "retries": conversations.c.retries + 1,
                "updated_at": now,
            }
            if orphan:
                values["possible_orphans"] = conversations.c.possible_orphans + 1
            self._update(conn, seq, **values)

    def record_reads(self, seq: int, *, calls: int, reconciled: bool) -> None:
        """Listing calls made to reconcile a conversation."""
        values: dict[str, Any] = {"calls": conversations.c.calls + calls}
        if reconciled:
            values["reconciliations"] = conversations.c.reconciliations + 1
        with self.engine.begin() as conn:
            self._update(conn, seq, **values)

    def record_orphans(self, seq: int, intent_ids: Sequence[int], count: int) -> None:
        """Create calls whose outcome is unknown: each may have left an empty conversation."""
        now = time.time()
        with self.engine.begin() as conn:
            self._update(conn, seq, possible_orphans=conversations.c.possible_orphans + count)
            for intent_id in intent_ids:
                _resolve(conn, intent_id, "ambiguous", now)

    def resolve_intents(self, intent_ids: Sequence[int], outcome: IntentOutcome) -> None:
        now = time.time()
        with self.engine.begin() as conn:
            for intent_id in intent_ids:
                _resolve(conn, intent_id, outcome, now)

    def record_failed(
        self,
        seq: int,
        *,
        code: str,
        message: str,
        hint: str | None,
        retryable: bool,
        intent_id: int | None = None,
        calls: int = 0,
    ) -> None:
        """The conversation cannot go on: status, error and the last call's outcome."""
        now = time.time()
        with self.engine.begin() as conn:
            self._update(
                conn,
                seq,
                status="failed",
                error_code=code,
                error_message=message,
                error_hint=hint,
                retryable=retryable,
                calls=conversations.c.calls + calls,
                updated_at=now,
            )
            if intent_id is not None:
                _resolve(conn, intent_id, "rejected", now)

    def record_deleted(self, seq: int, intent_id: int) -> None:
        """Rollback deleted this conversation's target copy."""
        now = time.time()
        with self.engine.begin() as conn:
            _resolve(conn, intent_id, "applied", now)
            conn.execute(
                update(conversations)
                .where(conversations.c.seq == seq)
                .values(deleted_at=now, calls=conversations.c.calls + 1, updated_at=now)
            )


def _resolve(conn: Connection, intent_id: int, outcome: IntentOutcome, now: float) -> None:
    conn.execute(
        update(intents).where(intents.c.id == intent_id).values(outcome=outcome, resolved_at=now)
    )
