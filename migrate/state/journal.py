"""The intent/outcome journal: each remote write is recorded before it is sent and resolved
right after, each in one transaction; the conversation's counters move with it."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping, Sequence
from itertools import chain
from typing import Any

from sqlalchemy import (
    Connection,
    Update,
    bindparam,
    case,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.sql import ClauseElement

from migrate.state.base import StoreBase
from migrate.state.schema import IntentKind, IntentOutcome, conversations, intents, items

ITEM_ROWS = 20
"""Item rows per `INSERT` (the API's most items per call): one statement per call, not one
per item (each row's round through the driver costs more than the database's work)."""
PSYCOPG_ITEM_ROWS = 16
"""psycopg parses the placeholders of a statement with more than 50 bind values again on every
call: 16 rows (3 values each, 2 shared) a statement there."""


class Journal(StoreBase):
    """The replay protocol's writes: an intent before each remote write, its outcome after."""

    def record_intent(
        self, seq: int, kind: IntentKind, *, start: int, count: int, item_id: str | None = None
    ) -> int:
        """Write down a remote write before sending it; returns the intent id.

        `item_id` names the item a `delete_item` (an audit's repair) deletes. Only a write
        that lands items moves a pending conversation to in progress: a rollback's or an
        audit's deletion leaves the status as it is (`verify --repair` of a migrated one)."""
        now = time.time()
        with self.statements.transaction() as cursor:
            if kind not in ("delete", "delete_item"):
                self._hot_update(cursor, "intent", seq, {"b_now": now}, _started_values)
            return self._insert_intent(cursor, seq, kind, start, count, item_id, now)

    def _insert_intent(
        self,
        cursor: Any,
        seq: int,
        kind: IntentKind,
        start: int,
        count: int,
        item_id: str | None,
        now: float,
    ) -> int:
        statement = self.statements.get("intent", self._intent_insert)
        statement.execute(
            cursor,
            {
                "b_seq": seq,
                "b_kind": kind,
                "b_start": start,
                "b_count": count,
                "b_now": now,
                "b_item": item_id,
            },
        )
        if self.engine.dialect.name != "postgresql":
            return int(cursor.lastrowid)
        (returned,) = cursor.fetchall()
        return int(returned[0])

    def record_created(
        self,
        seq: int,
        intent_id: int,
        conversation_id: str,
        *,
        next_intent: tuple[IntentKind, int, int] | None = None,
    ) -> int | None:
        """The conversation exists: its id and the outcome in one transaction, with the intent
        of its first append if `next_intent` (kind, start, count) is given (its id returned)."""
        now = time.time()
        with self.statements.transaction() as cursor:
            self._hot_update(
                cursor, "created", seq, {"b_now": now, "b_cid": conversation_id}, _created_values
            )
            self._hot_resolve(cursor, intent_id, "applied", now)
            if next_intent is None:
                return None
            kind, start, count = next_intent
            return self._insert_intent(cursor, seq, kind, start, count, None, now)

    def record_created_with_items(
        self,
        seq: int,
        intent_id: int,
        conversation_id: str,
        *,
        unread: Sequence[tuple[int, str | None]],
        source_conversation_id: str | None,
        migrated: bool,
    ) -> None:
        """A create that carried its first items succeeded: the id, the outcome and the items.

        The answer holds the conversation only, so `unread` (`(position, source item id)`)
        are recorded without their new ids; the next listing fills them in (`fill_item_ids`).
        """
        now = time.time()
        with self.statements.transaction() as cursor:
            self._hot_update(
                cursor,
                ("created_with_items", migrated),
                seq,
                {"b_now": now, "b_cid": conversation_id, "b_landed": len(unread)},
                lambda: _created_with_items_values(migrated=migrated),
            )
            self._hot_resolve(cursor, intent_id, "applied", now)
            self._insert_items(
                cursor,
                seq,
                source_conversation_id,
                [(position, source, None) for position, source in unread],
            )

    def fill_item_ids(self, seq: int, found: Mapping[int, str]) -> None:
        """New ids of items recorded unread (`found`: position -> id), read by a listing."""
        if not found:
            return
        with self.statements.transaction() as cursor:
            self._fill(cursor, seq, found)

    def _fill(self, cursor: Any, seq: int, found: Mapping[int, str]) -> None:
        statement = self.statements.get("fill", _fill_update)
        filled = 0
        for position, item_id in found.items():
            values = {"b_seq": seq, "b_position": position, "b_item_id": item_id}
            filled += statement.execute(cursor, values).rowcount
        if filled:
            self._hot_update(cursor, "filled", seq, {"b_filled": filled}, _filled_values)

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
        repairs: int = 0,
        next_intent: tuple[IntentKind, int, int] | None = None,
    ) -> int | None:
        """Items landed (`(position, source item id, new item id)`): rows, counts, outcome.

        `migrated` ends the conversation (and its audit); `repairs` counts items an audit
        appended. A reconciliation's listing also reads the ids of items recorded unread:
        those positions are filled in, not landed again. `next_intent` (kind, start, count)
        writes down the conversation's next append in the same transaction, since nothing is
        sent between the two; its id is returned.
        """
        now = time.time()
        with self.statements.transaction() as cursor:
            if reconciled and landed:
                unread_select = self.statements.get("unread", _unread_select)
                unread = {
                    int(position)
                    for (position,) in unread_select.execute(cursor, {"b_seq": seq}).fetchall()
                }
                if unread:
                    self._fill(cursor, seq, {p: item_id for p, _, item_id in landed if p in unread})
                    landed = [entry for entry in landed if entry[0] not in unread]
            self._hot_update(
                cursor,
                ("appended", reconciled, migrated),
                seq,
                {"b_now": now, "b_landed": len(landed), "b_calls": calls, "b_repairs": repairs},
                lambda: _appended_values(reconciled=reconciled, migrated=migrated),
            )
            if intent_id is not None:
                self._hot_resolve(cursor, intent_id, outcome, now)
            self._insert_items(cursor, seq, source_conversation_id, landed)
            if next_intent is None:
                return None
            kind, start, count = next_intent
            return self._insert_intent(cursor, seq, kind, start, count, None, now)

    def _insert_items(
        self,
        cursor: Any,
        seq: int,
        source_conversation_id: str | None,
        landed: Sequence[tuple[int, str | None, str | None]],
    ) -> None:
        """The rows of landed items (`(position, source item id, new item id)`), a few
        statements of many rows each."""
        step = PSYCOPG_ITEM_ROWS if self.engine.dialect.driver == "psycopg" else ITEM_ROWS
        for first in range(0, len(landed), step):
            rows = landed[first : first + step]
            size = len(rows)
            statement = self.statements.get(
                ("items", size), functools.partial(_items_insert, size), order=_item_order(size)
            )
            if statement.positional:
                ordered: list[Any] = []
                for position, source_item_id, item_id in rows:
                    ordered += (seq, position, source_conversation_id, source_item_id, item_id)
                statement.execute_in_order(cursor, ordered)
                continue
            values = dict(zip(_item_row_names(size), chain.from_iterable(rows), strict=True))
            values["b_seq"] = seq
            values["b_source_conversation_id"] = source_conversation_id
            statement.execute(cursor, values)

    # --- the hot statements, prepared once (`migrate.state.prepared`) -------------------------

    def _hot_update(
        self,
        cursor: Any,
        key: object,
        seq: int,
        values: dict[str, Any],
        set_values: Callable[[], dict[str, Any]],
    ) -> None:
        """`_update` of one conversation through a prepared statement (same ownership guard)."""
        owner = self.owner

        def build() -> ClauseElement:
            query: Update = update(conversations).where(conversations.c.seq == bindparam("b_seq"))
            if owner is not None:
                query = query.where(conversations.c.claimed_by == bindparam("b_owner"))
            return query.values(**set_values())

        statement = self.statements.get(("update", key, owner is not None), build)
        values["b_seq"] = seq
        if owner is not None:
            values["b_owner"] = owner
        if statement.execute(cursor, values).rowcount == 0 and owner is not None:
            raise self._claim_lost(seq)

    def _hot_resolve(self, cursor: Any, intent_id: int, outcome: str, now: float) -> None:
        statement = self.statements.get("resolve", _resolve_update)
        statement.execute(cursor, {"b_id": intent_id, "b_outcome": outcome, "b_now": now})

    def _intent_insert(self) -> ClauseElement:
        query = insert(intents).values(
            seq=bindparam("b_seq"),
            kind=bindparam("b_kind"),
            start=bindparam("b_start"),
            count=bindparam("b_count"),
            created_at=bindparam("b_now"),
            item_id=bindparam("b_item"),
        )
        # The id: RETURNING on PostgreSQL, whose driver has no `lastrowid` of a sequence;
        # elsewhere the driver's `lastrowid`, without a row to fetch.
        return query.returning(intents.c.id) if self.engine.dialect.name == "postgresql" else query

    def record_attempt_failed(
        self,
        seq: int,
        intent_id: int | None,
        outcome: IntentOutcome,
        *,
        orphan: bool = False,
        with_items: bool = False,
    ) -> None:
        """A call failed and will be retried: its outcome, one more call and one more retry.

        `orphan`: an ambiguous create that may have made a conversation we cannot find
        (`with_items`: one holding the items the create carried).
        """
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
                counter = "orphans_with_items" if with_items else "possible_orphans"
                values[counter] = conversations.c[counter] + 1
            self._update(conn, seq, **values)

    def record_ambiguous_append(self, seq: int, intent_id: int) -> float:
        """An append's outcome is unknown: one more call and retry, and the conversation waits
        for it to settle. Returns when its intent was recorded (what the settle counts from)."""
        now = time.time()
        with self.engine.begin() as conn:
            created = conn.execute(
                select(intents.c.created_at).where(intents.c.id == intent_id)
            ).scalar_one()
            _resolve(conn, intent_id, "ambiguous", now)
            self._update(
                conn,
                seq,
                calls=conversations.c.calls + 1,
                retries=conversations.c.retries + 1,
                ambiguous_at=_latest(float(created)),
                updated_at=now,
            )
        return float(created)

    def repair_start(self, seq: int) -> int | None:
        """The first position an audit of the conversation appended (None: it appended
        nothing): what lands from there on, however it is found, is a repair."""
        with self.engine.connect() as conn:
            start = conn.execute(
                select(func.min(intents.c.start)).where(
                    intents.c.seq == seq, intents.c.kind == "append_missing"
                )
            ).scalar()
        return None if start is None else int(start)

    def record_in_doubt(self, seq: int, since: float) -> None:
        """Writes of a stopped process whose outcome is unknown were found (take-over, resume):
        the conversation waits for them to settle, and is audited."""
        with self.engine.begin() as conn:
            self._update(conn, seq, ambiguous_at=_latest(since))

    def park(self, seq: int) -> None:
        """Let go of a conversation that waits (a write in doubt settling, or its audit): any
        worker takes it again once it is due (`Leases.claim_work`)."""
        with self.engine.begin() as conn:
            self._update(
                conn,
                seq,
                claimed_by=None,
                claimed_at=None,
                lease_until=None,
                updated_at=time.time(),
            )

    def record_metadata_updated(self, seq: int, intent_id: int) -> None:
        """A conversation's metadata update was applied: its outcome and one more call."""
        now = time.time()
        with self.engine.begin() as conn:
            _resolve(conn, intent_id, "applied", now)
            self._update(conn, seq, calls=conversations.c.calls + 1, updated_at=now)

    def metadata_updated(self, seq: int) -> bool:
        """Whether this job's update of the conversation's metadata was applied."""
        query = (
            select(intents.c.id)
            .where(
                intents.c.seq == seq,
                intents.c.kind == "update_metadata",
                intents.c.outcome == "applied",
            )
            .limit(1)
        )
        with self.engine.connect() as conn:
            return conn.execute(query).first() is not None

    def metadata_updates(self) -> int:
        """Conversations whose metadata this job updated."""
        query = select(func.count(func.distinct(intents.c.seq))).where(
            intents.c.kind == "update_metadata", intents.c.outcome == "applied"
        )
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def record_item_deleted(self, seq: int, intent_id: int, *, applied: bool = True) -> None:
        """An audit's deletion of a surplus item: its outcome, and one more repair if applied
        (`applied=False`: found not done when a stopped process's deletion was looked at)."""
        now = time.time()
        with self.engine.begin() as conn:
            _resolve(conn, intent_id, "applied" if applied else "not_applied", now)
            if applied:
                self._update(
                    conn,
                    seq,
                    calls=conversations.c.calls + 1,
                    repairs=conversations.c.repairs + 1,
                    updated_at=now,
                )

    def record_reads(self, seq: int, *, calls: int, reconciled: bool) -> None:
        """Listing calls made to reconcile a conversation."""
        values: dict[str, Any] = {"calls": conversations.c.calls + calls}
        if reconciled:
            values["reconciliations"] = conversations.c.reconciliations + 1
        with self.engine.begin() as conn:
            self._update(conn, seq, **values)

    def record_orphans(
        self, seq: int, intent_ids: Sequence[int], count: int, *, with_items: bool = False
    ) -> None:
        """Create calls whose outcome is unknown: each may have left a conversation we cannot
        find, empty (or, `with_items`, holding the items the create carried)."""
        now = time.time()
        counter = "orphans_with_items" if with_items else "possible_orphans"
        with self.engine.begin() as conn:
            self._update(conn, seq, **{counter: conversations.c[counter] + count})
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


def _started_values() -> dict[str, Any]:
    status = conversations.c.status
    return {
        "status": case((status == "pending", "in_progress"), else_=status),
        "updated_at": bindparam("b_now"),
    }


def _created_values() -> dict[str, Any]:
    return {
        "conversation_id": bindparam("b_cid"),
        "calls": conversations.c.calls + 1,
        "updated_at": bindparam("b_now"),
    }


def _created_with_items_values(*, migrated: bool) -> dict[str, Any]:
    c = conversations.c
    values: dict[str, Any] = {
        "conversation_id": bindparam("b_cid"),
        "calls": c.calls + 1,
        "landed_items": c.landed_items + bindparam("b_landed"),
        "unread_items": c.unread_items + bindparam("b_landed"),
        "updated_at": bindparam("b_now"),
    }
    if migrated:
        values["status"] = "migrated"
    return values


def _filled_values() -> dict[str, Any]:
    return {"unread_items": conversations.c.unread_items - bindparam("b_filled")}


def _appended_values(*, reconciled: bool, migrated: bool) -> dict[str, Any]:
    c = conversations.c
    values: dict[str, Any] = {
        "landed_items": c.landed_items + bindparam("b_landed"),
        "calls": c.calls + bindparam("b_calls"),
        "updated_at": bindparam("b_now"),
    }
    if reconciled:
        values["reconciliations"] = c.reconciliations + 1
    if migrated:
        values["status"] = "migrated"
        values["ambiguous_at"] = None
    values["repairs"] = c.repairs + bindparam("b_repairs")
    return values


def _resolve_update() -> ClauseElement:
    return (
        update(intents)
        .where(intents.c.id == bindparam("b_id"))
        .values(outcome=bindparam("b_outcome"), resolved_at=bindparam("b_now"))
    )


@functools.cache
def _item_row_names(size: int) -> tuple[str, ...]:
    """The bind names of `_items_insert(size)`'s rows, row by row in a landed entry's order."""
    return tuple(
        f"b_{column}_{row}"
        for row in range(size)
        for column in ("position", "source_item_id", "item_id")
    )


@functools.cache
def _item_order(size: int) -> tuple[str, ...]:
    """The bind names of `_items_insert(size)` in the order of its placeholders: each row's
    in the table's column order (how `_insert_items` lays out a positional driver's values)."""
    return tuple(
        name
        for row in range(size)
        for name in (
            "b_seq",
            f"b_position_{row}",
            "b_source_conversation_id",
            f"b_source_item_id_{row}",
            f"b_item_id_{row}",
        )
    )


def _items_insert(size: int) -> ClauseElement:
    """`size` item rows of one conversation in one statement (`_item_row_names`)."""
    names = _item_row_names(size)
    return insert(items).values(
        [
            {
                "seq": bindparam("b_seq"),
                "source_conversation_id": bindparam("b_source_conversation_id"),
                "position": bindparam(names[3 * row]),
                "source_item_id": bindparam(names[3 * row + 1]),
                "item_id": bindparam(names[3 * row + 2]),
            }
            for row in range(size)
        ]
    )


def _unread_select() -> ClauseElement:
    return select(items.c.position).where(
        items.c.seq == bindparam("b_seq"), items.c.item_id.is_(None)
    )


def _fill_update() -> ClauseElement:
    return (
        update(items)
        .where(
            items.c.seq == bindparam("b_seq"),
            items.c.position == bindparam("b_position"),
            items.c.item_id.is_(None),
        )
        .values(item_id=bindparam("b_item_id"))
    )


def _latest(at: float) -> Any:
    """`ambiguous_at` moved forward to `at` (never back)."""
    current = conversations.c.ambiguous_at
    return case((current.is_(None), at), (current < at, at), else_=current)


def _resolve(conn: Connection, intent_id: int, outcome: IntentOutcome, now: float) -> None:
    conn.execute(
        update(intents).where(intents.c.id == intent_id).values(outcome=outcome, resolved_at=now)
    )
