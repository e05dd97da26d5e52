"""The job's state store: what was planned, what was sent, what landed, one transaction per change.

SQLAlchemy Core tables defined in code; a SQLite file (`<job dir>/state.db`, WAL) by default,
any SQLAlchemy URL otherwise. With PostgreSQL several worker processes can share one job:
`claim_conversations` takes work with `SELECT ... FOR UPDATE SKIP LOCKED`.

Tables:

- `job`: one row; the job config (no secrets), source description, target, times, state.
- `conversations`: one row per source record in source order (`seq`): status
  (`pending`, `in_progress`, `migrated`, `failed`, `skipped`), the new conversation id, planned
  and landed item counts, the plan itself (JSON) and its fingerprint, the last error, counters
  (calls, retries, reconciliations, possible orphans).
- `items`: one row per landed item: source conversation id, position, source item id, new id.
- `intents`: one row per remote write, written before it is sent; its outcome after.
- `schema_version`: the version of this layout; `UPGRADES` moves older stores forward.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    case,
    create_engine,
    event,
    func,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from migrate.errors import JobError
from migrate.findings import ErrorRecord
from migrate.plan import ConversationPlan

SCHEMA_VERSION = 1

Status = Literal["pending", "in_progress", "migrated", "failed", "skipped"]
FINAL_STATUSES: tuple[Status, ...] = ("migrated", "failed", "skipped")
IntentKind = Literal["create", "append", "delete"]
IntentOutcome = Literal["applied", "not_applied", "rejected", "ambiguous", "reconciled"]

_LongText = Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")

metadata = MetaData()

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, nullable=False),
)

job_table = Table(
    "job",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("job_id", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("state", String(16), nullable=False),
    Column("config", _LongText, nullable=False),
    Column("source", Text, nullable=False),
    Column("target", Text, nullable=False),
    Column("planning_complete", Boolean, nullable=False, default=False),
    Column("elapsed", Float, nullable=False, default=0.0),
)

conversations = Table(
    "conversations",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("source_id", String(512)),
    Column("source_kind", String(64)),
    Column("location", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("conversation_id", String(128)),
    Column("planned_items", Integer, nullable=False, default=0),
    Column("landed_items", Integer, nullable=False, default=0),
    Column("planned_calls", Integer, nullable=False, default=0),
    Column("fingerprint", String(128)),
    Column("plan", _LongText),
    Column("findings", Integer, nullable=False, default=0),
    Column("calls", Integer, nullable=False, default=0),
    Column("retries", Integer, nullable=False, default=0),
    Column("reconciliations", Integer, nullable=False, default=0),
    Column("possible_orphans", Integer, nullable=False, default=0),
    Column("error_code", String(64)),
    Column("error_message", Text),
    Column("error_hint", Text),
    Column("retryable", Boolean, nullable=False, default=False),
    Column("claimed_by", String(64)),
    Column("claimed_at", Float),
    Column("deleted_at", Float),
    Column("updated_at", Float, nullable=False),
    Index("ix_conversations_status", "status"),
    Index("ix_conversations_source_id", "source_id"),
)

items = Table(
    "items",
    metadata,
    Column("seq", Integer, ForeignKey("conversations.seq"), primary_key=True),
    Column("position", Integer, primary_key=True, autoincrement=False),
    Column("source_conversation_id", String(512)),
    Column("source_item_id", String(512)),
    Column("item_id", String(128), nullable=False),
)

intents = Table(
    "intents",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("seq", Integer, ForeignKey("conversations.seq"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("start", Integer, nullable=False),
    Column("count", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("outcome", String(16)),
    Column("resolved_at", Float),
    Index("ix_intents_open", "seq", "outcome"),
)

Upgrade = Callable[[Connection], None]
UPGRADES: dict[int, Upgrade] = {}
"""`UPGRADES[n]` moves a store at version `n` to version `n + 1`, inside one transaction."""


class JobRecord(BaseModel):
    """The `job` row."""

    model_config = ConfigDict(extra="forbid")

    job_id: str
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    state: Literal["created", "running", "interrupted", "finished", "rolled_back"] = "created"
    config: dict[str, Any]
    source: str
    target: dict[str, Any]
    planning_complete: bool = False
    elapsed: float = 0.0


class ConversationRow(BaseModel):
    """One `conversations` row, without the plan."""

    model_config = ConfigDict(extra="forbid")

    seq: int
    source_id: str | None
    source_kind: str | None
    location: str
    status: Status
    conversation_id: str | None
    planned_items: int
    landed_items: int
    planned_calls: int
    fingerprint: str | None
    findings: int
    calls: int
    retries: int
    reconciliations: int
    possible_orphans: int
    error_code: str | None
    error_message: str | None
    error_hint: str | None
    retryable: bool
    deleted_at: float | None


class OpenIntent(BaseModel):
    """A remote write whose outcome was never recorded (the process died or the call hung)."""

    model_config = ConfigDict(extra="forbid")

    id: int
    kind: IntentKind
    start: int
    count: int


class Totals(BaseModel):
    """Counts over the whole job."""

    model_config = ConfigDict(extra="forbid")

    total: int = 0
    pending: int = 0
    in_progress: int = 0
    migrated: int = 0
    failed: int = 0
    skipped: int = 0
    items_planned: int = 0
    items_landed: int = 0
    calls: int = 0
    retries: int = 0
    reconciliations: int = 0
    possible_orphans: int = 0
    findings: int = 0
    deleted: int = 0


class StateStore:
    """The state of one job in a SQL database; every method that changes it commits once."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def from_url(cls, url: str, *, create: bool = False) -> StateStore:
        """Open the store at `url`; `create` makes the tables (and upgrades an older layout)."""
        try:
            parsed = make_url(url)
        except SQLAlchemyError as exc:
            raise JobError(f"invalid state store URL: {exc}") from exc
        engine = create_engine(parsed, future=True)
        if engine.dialect.name == "sqlite":
            _configure_sqlite(engine)
        store = cls(engine)
        try:
            store._prepare(create=create)
        except SQLAlchemyError as exc:
            engine.dispose()
            raise JobError(
                f"cannot open the state store {parsed.render_as_string(hide_password=True)}: "
                f"{exc.__class__.__name__}: {exc}"
            ) from exc
        return store

    def close(self) -> None:
        self.engine.dispose()

    def _prepare(self, *, create: bool) -> None:
        with self.engine.begin() as conn:
            present = inspect(conn).has_table("schema_version")
            if not present:
                if not create:
                    raise JobError("the state store holds no job (no schema_version table)")
                metadata.create_all(conn)
                conn.execute(insert(schema_version).values(version=SCHEMA_VERSION))
                return
            version = conn.execute(select(schema_version.c.version)).scalar_one()
            if version > SCHEMA_VERSION:
                raise JobError(
                    f"the state store has schema version {version}, newer than this "
                    f"program's {SCHEMA_VERSION}",
                    hint="upgrade chat-migrate",
                )
            while version < SCHEMA_VERSION:
                UPGRADES[version](conn)
                version += 1
                conn.execute(update(schema_version).values(version=version))

    def schema_version(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(schema_version.c.version)).scalar_one())

    # --- job ---------------------------------------------------------------------------------

    def create_job(self, record: JobRecord) -> None:
        with self.engine.begin() as conn:
            if conn.execute(select(func.count()).select_from(job_table)).scalar_one():
                raise JobError("the state store already holds a job", hint="use a new --state")
            conn.execute(insert(job_table).values(id=1, **_job_values(record)))

    def job(self) -> JobRecord:
        with self.engine.connect() as conn:
            row = conn.execute(select(job_table).where(job_table.c.id == 1)).mappings().first()
        if row is None:
            raise JobError("the state store holds no job")
        values = dict(row)
        values.pop("id")
        values["config"] = json.loads(values["config"])
        values["target"] = json.loads(values["target"])
        return JobRecord.model_validate(values)

    def update_job(self, **fields: Any) -> None:
        values = {
            key: json.dumps(value) if key in ("config", "target") else value
            for key, value in fields.items()
        }
        with self.engine.begin() as conn:
            conn.execute(update(job_table).where(job_table.c.id == 1).values(**values))

    # --- planning ----------------------------------------------------------------------------

    def planned_count(self) -> int:
        """How many source records (conversations or failures) the store knows about."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(conversations)).scalar_one())

    def add_outcomes(self, outcomes: Sequence[tuple[int, ConversationPlan | ErrorRecord]]) -> None:
        """Record newly planned conversations (pending, skipped or failed), in one transaction."""
        if not outcomes:
            return
        now = time.time()
        rows = [_outcome_values(seq, outcome, now) for seq, outcome in outcomes]
        with self.engine.begin() as conn:
            conn.execute(insert(conversations), rows)

    def replace_outcome(self, seq: int, outcome: ConversationPlan | ErrorRecord) -> None:
        """Replace the plan of a conversation nothing was sent for yet (the source changed)."""
        values = _outcome_values(seq, outcome, time.time())
        for counter in ("seq", "calls", "retries", "reconciliations", "possible_orphans"):
            values.pop(counter)
        values.update(conversation_id=None, landed_items=0, retryable=False)
        with self.engine.begin() as conn:
            conn.execute(update(conversations).where(conversations.c.seq == seq).values(**values))

    def reset_for_retry(self, seq: int) -> None:
        """Put a conversation that failed for a transient reason back in line."""
        with self.engine.begin() as conn:
            conn.execute(
                update(conversations)
                .where(conversations.c.seq == seq)
                .values(
                    status=case(
                        (conversations.c.conversation_id.is_(None), "pending"),
                        else_="in_progress",
                    ),
                    error_code=None,
                    error_message=None,
                    error_hint=None,
                    retryable=False,
                    updated_at=time.time(),
                )
            )

    # --- reading -----------------------------------------------------------------------------

    def conversation(self, seq: int) -> ConversationRow:
        with self.engine.connect() as conn:
            row = conn.execute(_row_select().where(conversations.c.seq == seq)).mappings().one()
        return ConversationRow.model_validate(dict(row))

    def plan(self, seq: int) -> ConversationPlan:
        with self.engine.connect() as conn:
            text = conn.execute(
                select(conversations.c.plan).where(conversations.c.seq == seq)
            ).scalar_one()
        if text is None:
            raise JobError(f"conversation #{seq} has no stored plan")
        return ConversationPlan.model_validate_json(text)

    def iter_conversations(
        self,
        *,
        statuses: Sequence[Status] | None = None,
        with_plans: bool = False,
        page: int = 500,
    ) -> Iterator[tuple[ConversationRow, ConversationPlan | None]]:
        """Every conversation in source order (optionally by status), read page by page."""
        after = -1
        while True:
            query = _row_select(with_plan=with_plans).where(conversations.c.seq > after)
            if statuses is not None:
                query = query.where(conversations.c.status.in_(statuses))
            query = query.order_by(conversations.c.seq).limit(page)
            with self.engine.connect() as conn:
                rows = [dict(row) for row in conn.execute(query).mappings()]
            if not rows:
                return
            for values in rows:
                text = values.pop("plan", None)
                plan = ConversationPlan.model_validate_json(text) if text else None
                yield ConversationRow.model_validate(values), plan
            after = rows[-1]["seq"]

    def item_ids(self, seq: int) -> dict[int, str]:
        """New item ids already recorded for a conversation, by position."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(items.c.position, items.c.item_id).where(items.c.seq == seq)
            ).all()
        return {int(position): str(item_id) for position, item_id in rows}

    def iter_items(self, *, page: int = 5000) -> Iterator[dict[str, Any]]:
        """Every landed item in source order."""
        after: tuple[int, int] = (-1, -1)
        columns = [
            items.c.seq,
            conversations.c.conversation_id,
            items.c.source_conversation_id,
            items.c.source_item_id,
            items.c.position,
            items.c.item_id,
        ]
        while True:
            seq, position = after
            query = (
                select(*columns)
                .join_from(items, conversations, items.c.seq == conversations.c.seq)
                .where((items.c.seq > seq) | ((items.c.seq == seq) & (items.c.position > position)))
                .order_by(items.c.seq, items.c.position)
                .limit(page)
            )
            with self.engine.connect() as conn:
                rows = [dict(row) for row in conn.execute(query).mappings()]
            if not rows:
                return
            yield from rows
            after = (rows[-1]["seq"], rows[-1]["position"])

    def created_count(self) -> int:
        """Conversations this job created on the target and has not deleted."""
        c = conversations.c
        query = select(func.count()).where(c.conversation_id.is_not(None), c.deleted_at.is_(None))
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def open_intents(self, seq: int) -> list[OpenIntent]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(intents.c.id, intents.c.kind, intents.c.start, intents.c.count)
                .where(intents.c.seq == seq, intents.c.outcome.is_(None))
                .order_by(intents.c.id)
            ).mappings()
            return [OpenIntent.model_validate(dict(row)) for row in rows]

    def totals(self) -> Totals:
        c = conversations.c
        query = select(
            func.count(),
            *(func.coalesce(func.sum(case((c.status == s, 1), else_=0)), 0) for s in _STATUSES),
            func.coalesce(func.sum(c.planned_items), 0),
            func.coalesce(func.sum(c.landed_items), 0),
            func.coalesce(func.sum(c.calls), 0),
            func.coalesce(func.sum(c.retries), 0),
            func.coalesce(func.sum(c.reconciliations), 0),
            func.coalesce(func.sum(c.possible_orphans), 0),
            func.coalesce(func.sum(c.findings), 0),
            func.coalesce(func.sum(case((c.deleted_at.is_not(None), 1), else_=0)), 0),
        )
        with self.engine.connect() as conn:
            values = [int(v) for v in conn.execute(query).one()]
        names = ["total", *_STATUSES, "items_planned", "items_landed", "calls", "retries"]
        names += ["reconciliations", "possible_orphans", "findings", "deleted"]
        return Totals(**dict(zip(names, values, strict=True)))

    # --- work distribution -------------------------------------------------------------------

    def claim_conversations(
        self, worker: str, *, limit: int, statuses: Sequence[Status] = ("in_progress", "pending")
    ) -> list[int]:
        """Take up to `limit` unclaimed conversations for `worker`, in-flight ones first.

        On PostgreSQL rows another worker is claiming are skipped (`FOR UPDATE SKIP LOCKED`),
        so several processes can share one job.
        """
        c = conversations.c
        order = case((c.status == "in_progress", 0), else_=1)
        query = (
            select(c.seq)
            .where(c.status.in_(statuses), c.claimed_by.is_(None))
            .order_by(order, c.seq)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        with self.engine.begin() as conn:
            seqs = [int(s) for s in conn.execute(query).scalars()]
            if seqs:
                conn.execute(
                    update(conversations)
                    .where(c.seq.in_(seqs))
                    .values(claimed_by=worker, claimed_at=time.time())
                )
        return seqs

    def release_claims(self, worker: str | None = None) -> None:
        """Forget claims (of one worker, or all of them: the job's processes are gone)."""
        query = update(conversations).values(claimed_by=None, claimed_at=None)
        if worker is not None:
            query = query.where(conversations.c.claimed_by == worker)
        else:
            query = query.where(conversations.c.claimed_by.is_not(None))
        with self.engine.begin() as conn:
            conn.execute(query)

    # --- the replay protocol -----------------------------------------------------------------

    def record_intent(self, seq: int, kind: IntentKind, *, start: int, count: int) -> int:
        """Write down a remote write before sending it; returns the intent id."""
        now = time.time()
        with self.engine.begin() as conn:
            result = conn.execute(
                insert(intents).values(seq=seq, kind=kind, start=start, count=count, created_at=now)
            )
            if kind != "delete":
                conn.execute(
                    update(conversations)
                    .where(conversations.c.seq == seq, conversations.c.status == "pending")
                    .values(status="in_progress", updated_at=now)
                )
            key = result.inserted_primary_key
            assert key is not None
            return int(key[0])

    def record_created(self, seq: int, intent_id: int, conversation_id: str) -> None:
        """The conversation exists: its id and the outcome in one transaction."""
        now = time.time()
        with self.engine.begin() as conn:
            _resolve(conn, intent_id, "applied", now)
            conn.execute(
                update(conversations)
                .where(conversations.c.seq == seq)
                .values(
                    conversation_id=conversation_id,
                    calls=conversations.c.calls + 1,
                    updated_at=now,
                )
            )

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
        with self.engine.begin() as conn:
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
            values: dict[str, Any] = {
                "landed_items": conversations.c.landed_items + len(landed),
                "calls": conversations.c.calls + calls,
                "updated_at": now,
            }
            if reconciled:
                values["reconciliations"] = conversations.c.reconciliations + 1
            if migrated:
                values["status"] = "migrated"
            conn.execute(update(conversations).where(conversations.c.seq == seq).values(**values))

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
            conn.execute(update(conversations).where(conversations.c.seq == seq).values(**values))

    def record_reads(self, seq: int, *, calls: int, reconciled: bool) -> None:
        """Listing calls made to reconcile a conversation."""
        values: dict[str, Any] = {"calls": conversations.c.calls + calls}
        if reconciled:
            values["reconciliations"] = conversations.c.reconciliations + 1
        with self.engine.begin() as conn:
            conn.execute(update(conversations).where(conversations.c.seq == seq).values(**values))

    def record_orphans(self, seq: int, intent_ids: Sequence[int], count: int) -> None:
        """Create calls whose outcome is unknown: each may have left an empty conversation."""
        now = time.time()
        with self.engine.begin() as conn:
            for intent_id in intent_ids:
                _resolve(conn, intent_id, "ambiguous", now)
            conn.execute(
                update(conversations)
                .where(conversations.c.seq == seq)
                .values(possible_orphans=conversations.c.possible_orphans + count)
            )

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
            if intent_id is not None:
                _resolve(conn, intent_id, "rejected", now)
            conn.execute(
                update(conversations)
                .where(conversations.c.seq == seq)
                .values(
                    status="failed",
                    error_code=code,
                    error_message=message,
                    error_hint=hint,
                    retryable=retryable,
                    calls=conversations.c.calls + calls,
                    updated_at=now,
                )
            )

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


_STATUSES: tuple[Status, ...] = ("pending", "in_progress", "migrated", "failed", "skipped")

_ROW_COLUMNS = [
    column
    for column in conversations.c
    if column.name not in ("plan", "claimed_by", "claimed_at", "updated_at")
]


def _row_select(*, with_plan: bool = False) -> Any:
    columns = [*_ROW_COLUMNS, conversations.c.plan] if with_plan else _ROW_COLUMNS
    return select(*columns)


def _resolve(conn: Connection, intent_id: int, outcome: IntentOutcome, now: float) -> None:
    conn.execute(
        update(intents).where(intents.c.id == intent_id).values(outcome=outcome, resolved_at=now)
    )


def _job_values(record: JobRecord) -> dict[str, Any]:
    values = record.model_dump()
    values["config"] = json.dumps(values["config"])
    values["target"] = json.dumps(values["target"])
    return values


def _outcome_values(
    seq: int, outcome: ConversationPlan | ErrorRecord, now: float
) -> dict[str, Any]:
    base: dict[str, Any] = {
        "seq": seq,
        "landed_items": 0,
        "calls": 0,
        "retries": 0,
        "reconciliations": 0,
        "possible_orphans": 0,
        "retryable": False,
        "updated_at": now,
    }
    if isinstance(outcome, ErrorRecord):
        return base | {
            "source_id": outcome.conversation_id,
            "source_kind": None,
            "location": outcome.location,
            "status": "failed",
            "planned_items": 0,
            "planned_calls": 0,
            "fingerprint": None,
            "plan": None,
            "findings": 0,
            "error_code": outcome.code,
            "error_message": outcome.message,
            "error_hint": outcome.hint,
        }
    return base | {
        "source_id": outcome.source_id,
        "source_kind": outcome.source_kind,
        "location": outcome.location,
        "status": "pending" if outcome.items else "skipped",
        "planned_items": len(outcome.items),
        "planned_calls": 1 + len(outcome.batch_sizes) if outcome.items else 0,
        "fingerprint": outcome.fingerprint,
        "plan": outcome.model_dump_json(),
        "findings": sum(f.count for f in outcome.findings),
        "error_code": None,
        "error_message": None,
        "error_hint": None,
    }


def _configure_sqlite(engine: Engine) -> None:
    """WAL, a busy timeout, and `BEGIN IMMEDIATE` so concurrent writers queue instead of failing."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
