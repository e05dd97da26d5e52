"""The job's state store: what was planned, what was sent, what landed, one transaction per change.

SQLAlchemy Core tables defined in code; a SQLite file (`<job dir>/state.db`, WAL) by default,
any SQLAlchemy URL otherwise. Several worker processes (on one machine or several) can share
one job in PostgreSQL: `claim_work` takes a few conversations at a time with
`SELECT ... FOR UPDATE SKIP LOCKED` and a lease that expires unless renewed (`renew`), so a
dead worker's conversations go back to the others. Leases, heartbeats and the shared 429 pause
are read against the database's clock (`epoch_now`), never the workers' own clocks.

The tables are in `migrate.state.schema`; claims and leases in `migrate.state.leases`; the
intent/outcome journal in `migrate.state.journal`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy import (
    Engine,
    bindparam,
    case,
    create_engine,
    delete,
    func,
    insert,
    inspect,
    or_,
    select,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql import ClauseElement

from migrate.errors import JobError, state_write_error
from migrate.plan.model import ConversationPlan
from migrate.sqlite import configure_sqlite
from migrate.state import schema
from migrate.state.base import RecentPlans
from migrate.state.journal import Journal
from migrate.state.leases import Leases
from migrate.state.ledger import retire_job
from migrate.state.outcomes import outcome_values
from migrate.state.plan_facts import finding_rows
from migrate.state.records import ConversationRow, JobRecord, NoJobError, OpenIntent, Totals
from migrate.state.report_reads import ReportReads
from migrate.state.schema import (
    Status,
    conversations,
    epoch_now,
    findings,
    intents,
    items,
    job_table,
    metadata,
    pace,
    schema_version,
)
from migrate.state.unwritable import database_cause, map_write_errors
from migrate.transform.findings import ErrorRecord

PlanView = TypeVar("PlanView", bound=BaseModel)
"""What `iter_plans_as` parses each stored plan into: `ConversationPlan` or a few of its fields."""


class StateStore(Journal, Leases, ReportReads):
    """The state of one job in a SQL database; every method that changes it commits once."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.recent_plans = RecentPlans()
        self.owner: str | None = None
        """The worker this store writes for: the replay protocol's updates then apply only
        while the worker still holds the conversation (else `ClaimLostError`)."""

    @classmethod
    def from_url(cls, url: str, *, create: bool = False) -> StateStore:
        """Open the store at `url`; `create` makes the tables (and upgrades an older layout)."""
        try:
            parsed = make_url(url)
        except SQLAlchemyError as exc:
            raise JobError(f"invalid state store URL: {exc}") from exc
        engine = create_engine(parsed, future=True)
        where = parsed.render_as_string(hide_password=True)
        if engine.dialect.name == "sqlite":
            configure_sqlite(engine)
            # `file:PATH?mode=ro` (a URI) names the same file as PATH
            where = (parsed.database or where).removeprefix("file:").split("?")[0]
        map_write_errors(engine, where)
        store = cls(engine)
        try:
            store._prepare(create=create)
        except JobError:
            engine.dispose()
            raise
        except SQLAlchemyError as exc:
            engine.dispose()
            original = getattr(exc, "orig", None) or exc
            cause = database_cause(original)
            if cause is not None:
                raise state_write_error(cause, where, str(original)) from exc
            raise JobError(
                f"cannot open the state store {where}: {exc.__class__.__name__}: {exc}"
            ) from exc
        return store

    def close(self) -> None:
        if self._statements is not None:
            self._statements.close()
        self.engine.dispose()

    def _prepare(self, *, create: bool) -> None:
        with self.engine.begin() as conn:
            present = inspect(conn).has_table("schema_version")
            if not present:
                if not create:
                    raise NoJobError("the state store holds no job (no schema_version table)")
                metadata.create_all(conn)
                conn.execute(insert(schema_version).values(version=schema.SCHEMA_VERSION))
                conn.execute(insert(pace).values(id=1, paused_until=0.0))
                return
            version = conn.execute(select(schema_version.c.version)).scalar_one()
            if version > schema.SCHEMA_VERSION:
                raise JobError(
                    f"the state store has schema version {version}, newer than this "
                    f"program's {schema.SCHEMA_VERSION}",
                    hint="upgrade chat-migrate",
                )
            while version < schema.SCHEMA_VERSION:
                schema.UPGRADES[version](conn)
                version += 1
                conn.execute(update(schema_version).values(version=version))

    def schema_version(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(schema_version.c.version)).scalar_one())

    # --- job ---------------------------------------------------------------------------------

    def create_job(self, record: JobRecord, *, retire: str | None = None) -> None:
        """Record a new job, in one transaction; with `retire` (the finished job's target
        identity), the finished job moves into the ledger in that same transaction."""
        with self.engine.begin() as conn:
            if retire is not None:
                retire_job(conn, retire)
            if conn.execute(select(func.count()).select_from(job_table)).scalar_one():
                raise JobError("the state store already holds a job", hint="use a new --state")
            conn.execute(insert(job_table).values(id=1, **_job_values(record)))

    def job(self) -> JobRecord:
        with self.engine.connect() as conn:
            row = conn.execute(select(job_table).where(job_table.c.id == 1)).mappings().first()
        if row is None:
            raise NoJobError("the state store holds no job")
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

    def add_outcomes(
        self,
        outcomes: Sequence[tuple[int, ConversationPlan | ErrorRecord]],
        marks: Mapping[int, str] | None = None,
    ) -> None:
        """Record newly planned conversations (pending, skipped or failed), in one transaction,
        with where each starts in the source (`marks` by `seq`, when the source can tell)."""
        if not outcomes:
            return
        now = time.time()
        marks = marks or {}
        rows = [
            outcome_values(seq, outcome, now) | {"source_mark": marks.get(seq)}
            for seq, outcome in outcomes
        ]
        found = [
            row
            for seq, outcome in outcomes
            if isinstance(outcome, ConversationPlan)
            for row in finding_rows(seq, outcome.findings)
        ]
        with self.engine.begin() as conn:
            conn.execute(insert(conversations), rows)
            if found:
                conn.execute(insert(findings), found)
        for seq, outcome in outcomes:
            if isinstance(outcome, ConversationPlan) and outcome.items:
                self.recent_plans.remember(seq, outcome)

    def replace_outcome(
        self, seq: int, outcome: ConversationPlan | ErrorRecord, mark: str | None = None
    ) -> None:
        """Replace the plan of a conversation nothing was sent for yet (the source changed),
        and where it starts in the source (None: not known)."""
        values = outcome_values(seq, outcome, time.time()) | {"source_mark": mark}
        counters = ("seq", "calls", "retries", "reconciliations", "possible_orphans", "repairs")
        for counter in (*counters, "orphans_with_items", "unread_items"):
            values.pop(counter)
        values.update(landed_items=0, retryable=False)
        found = finding_rows(seq, outcome.findings) if isinstance(outcome, ConversationPlan) else []
        with self.engine.begin() as conn:
            conn.execute(update(conversations).where(conversations.c.seq == seq).values(**values))
            conn.execute(delete(findings).where(findings.c.seq == seq))
            if found:
                conn.execute(insert(findings), found)
        self.recent_plans.pop(seq, None)

    def fail_unclaimed(self, seq: int, error: ErrorRecord, *, retryable: bool) -> None:
        """Fail a conversation no worker holds (the source check found it changed or gone)."""
        c = conversations.c
        with self.engine.begin() as conn:
            conn.execute(
                update(conversations)
                .where(c.seq == seq, c.claimed_by.is_(None))
                .values(
                    status="failed",
                    error_code=error.code,
                    error_message=error.message,
                    error_hint=error.hint,
                    retryable=retryable,
                    updated_at=time.time(),
                )
            )

    def first_seq_with(self, source_id: str, *, at_least: int) -> int | None:
        """The first conversation from `seq` `at_least` on with this source id (an index look)."""
        c = conversations.c
        query = select(func.min(c.seq)).where(c.source_id == source_id, c.seq >= at_least)
        with self.engine.connect() as conn:
            found = conn.execute(query).scalar()
        return None if found is None else int(found)

    def first_location_before(self, source_id: str, before: int) -> str | None:
        """Where the first conversation below `seq` `before` with this source id was read
        (an index look), or None if there is none."""
        c = conversations.c
        query = (
            select(c.location)
            .where(c.source_id == source_id, c.seq < before)
            .order_by(c.seq)
            .limit(1)
        )
        with self.engine.connect() as conn:
            found = conn.execute(query).scalar()
        return None if found is None else str(found)

    def source_ids_below(self, below: int) -> Iterator[str]:
        """The source ids of the conversations below `seq` `below` (read from the source id
        index alone, in one pass)."""
        c = conversations.c
        query = select(c.source_id, c.seq).where(c.source_id.is_not(None))
        with self.engine.connect() as conn:
            for source_id, seq in conn.execute(query):
                if seq < below:
                    yield str(source_id)

    def read_start(self) -> tuple[int, str | None] | None:
        """Where a resume's read of the source can start: the first conversation not migrated
        (else the last one) and its source mark (None: not known); None for no conversations.

        Every conversation before it is migrated."""
        c = conversations.c
        unfinished = or_(c.status != "migrated", c.conversation_id.is_(None))
        with self.engine.connect() as conn:
            seq = conn.execute(select(func.min(c.seq)).where(unfinished)).scalar()
            if seq is None:
                seq = conn.execute(select(func.max(c.seq))).scalar()
            if seq is None:
                return None
            mark = conn.execute(select(c.source_mark).where(c.seq == seq)).scalar()
        return int(seq), None if mark is None else str(mark)

    def reset_for_retry(self, seq: int) -> None:
        """Put a failed conversation back in line (free: the worker that failed it is gone)."""
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
                    claimed_by=None,
                    claimed_at=None,
                    lease_until=None,
                    updated_at=time.time(),
                )
            )

    # --- reading -----------------------------------------------------------------------------

    def conversation(self, seq: int) -> ConversationRow:
        with self.engine.connect() as conn:
            row = conn.execute(_row_select().where(conversations.c.seq == seq)).mappings().one()
        return ConversationRow.model_validate(dict(row))

    def plan(self, seq: int) -> ConversationPlan | None:
        """The stored plan of one conversation (None for an error or a skipped record)."""
        with self.engine.connect() as conn:
            text = conn.execute(
                select(conversations.c.plan).where(conversations.c.seq == seq)
            ).scalar_one()
        return ConversationPlan.model_validate_json(text) if text else None

    def iter_conversations(
        self,
        *,
        statuses: Sequence[Status] | None = None,
        with_plans: bool = False,
        start: int = 0,
        stop: int | None = None,
        page: int = 500,
    ) -> Iterator[tuple[ConversationRow, ConversationPlan | None]]:
        """Every conversation in source order (optionally by status, `start <= seq < stop`),
        read page by page."""
        model = ConversationPlan if with_plans else None
        return self.iter_plans_as(model, statuses=statuses, start=start, stop=stop, page=page)

    def iter_plans_as(
        self,
        model: type[PlanView] | None,
        *,
        statuses: Sequence[Status] | None = None,
        start: int = 0,
        stop: int | None = None,
        page: int = 500,
        unreadable_as_none: bool = False,
    ) -> Iterator[tuple[ConversationRow, PlanView | None]]:
        """`iter_conversations` with each plan parsed as `model` (None: plans not read; with
        `unreadable_as_none`, also a plan that does not parse as `model`).

        A model of a few plan fields (ignoring the rest) reads plans several times faster
        than `ConversationPlan`, which builds every item."""
        after = start - 1
        while True:
            query = _row_select(with_plan=model is not None).where(conversations.c.seq > after)
            if stop is not None:
                query = query.where(conversations.c.seq < stop)
            if statuses is not None:
                query = query.where(conversations.c.status.in_(statuses))
            query = query.order_by(conversations.c.seq).limit(page)
            with self.engine.connect() as conn:
                rows = [dict(row) for row in conn.execute(query).mappings()]
            if not rows:
                return
            for values in rows:
                text = values.pop("plan", None)
                plan = None
                if text and model is not None:
                    try:
                        plan = model.model_validate_json(text)
                    except ValidationError:
                        if not unreadable_as_none:
                            raise
                yield ConversationRow.model_validate(values), plan
            after = rows[-1]["seq"]

    def item_ids(self, seq: int) -> dict[int, str]:
        """New item ids already recorded for a conversation, by position (unread ones left out)."""
        return {
            position: item_id
            for position, item_id in self.item_rows(seq).items()
            if item_id is not None
        }

    def item_rows(self, seq: int) -> dict[int, str | None]:
        """Every landed position of a conversation and its new item id (None: not read yet)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(items.c.position, items.c.item_id).where(items.c.seq == seq)
            ).all()
        return {
            int(position): None if item_id is None else str(item_id) for position, item_id in rows
        }

    def iter_items(
        self, *, start: int = 0, stop: int | None = None, page: int = 5000
    ) -> Iterator[dict[str, Any]]:
        """Every landed item in source order (of the conversations `start <= seq < stop`)."""
        statement = self.statements.get(("iter_items", stop is not None), _items_page(stop))
        values: dict[str, Any] = {"b_seq": start, "b_position": -1, "b_page": page}
        if stop is not None:
            values["b_stop"] = stop
        while True:
            with self.statements.reading() as cursor:
                rows = statement.execute(cursor, values).fetchall()
            if not rows:
                return
            for row in rows:
                yield dict(zip(_ITEM_COLUMNS, row, strict=True))
            values["b_seq"], values["b_position"] = rows[-1][0], rows[-1][4]

    def created_count(self) -> int:
        """Conversations this job created on the target and has not deleted."""
        c = conversations.c
        query = select(func.count()).where(
            c.conversation_id.is_not(None), c.deleted_at.is_(None), c.base_items.is_(None)
        )
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def open_intents(self, seq: int) -> list[OpenIntent]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    intents.c.id,
                    intents.c.kind,
                    intents.c.start,
                    intents.c.count,
                    intents.c.created_at,
                    intents.c.item_id,
                )
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
            func.coalesce(func.sum(c.possible_orphans), 0) + _OPEN_CREATES_ALL,
            func.coalesce(func.sum(c.orphans_with_items), 0),
            func.coalesce(func.sum(c.findings), 0),
            func.coalesce(func.sum(case((c.deleted_at.is_not(None), 1), else_=0)), 0),
            func.coalesce(func.sum(c.unread_items), 0),
            func.coalesce(func.sum(c.repairs), 0),
        )
        with self.engine.connect() as conn:
            values = [int(v) for v in conn.execute(query).one()]
        names = ["total", *_STATUSES, "items_planned", "items_landed", "calls", "retries"]
        names += ["reconciliations", "possible_orphans", "orphans_with_items", "findings"]
        names += ["deleted", "unread_item_ids", "repairs"]
        return Totals(**dict(zip(names, values, strict=True)))

    # --- work distribution -------------------------------------------------------------------

    def db_now(self) -> float:
        """The database server's clock (seconds since the epoch)."""
        with self.engine.connect() as conn:
            return float(conn.execute(select(epoch_now())).scalar_one())


_STATUSES: tuple[Status, ...] = ("pending", "in_progress", "migrated", "failed", "skipped")


_OPEN_CREATES = (
    select(func.count())
    .where(
        intents.c.seq == conversations.c.seq,
        intents.c.outcome.is_(None),
        intents.c.kind == "create",
    )
    .correlate(conversations)
    .scalar_subquery()
)
"""A conversation's create calls whose outcome was never recorded (the process died): each
may have made a conversation whose id the job never learnt, so each is a possible orphan."""

_OPEN_CREATES_ALL = (
    select(func.count())
    .select_from(intents)
    .where(intents.c.outcome.is_(None), intents.c.kind == "create")
    .scalar_subquery()
)

_ROW_COLUMNS = [
    (column + _OPEN_CREATES).label(column.name) if column.name == "possible_orphans" else column
    for column in conversations.c
    if column.name
    not in ("plan", "claimed_by", "claimed_at", "updated_at", "lease_until", "source_mark")
]


_ITEM_COLUMNS = (
    "seq",
    "conversation_id",
    "source_conversation_id",
    "source_item_id",
    "position",
    "item_id",
)
"""What `iter_items` yields of each item (`seq` and `position` first and fifth: the page's end)."""


def _items_page(stop: int | None) -> Callable[[], ClauseElement]:
    """A page of `iter_items`: the items after (`b_seq`, `b_position`), `b_page` of them (and
    below `b_stop` if there is a `stop`)."""

    def build() -> ClauseElement:
        i = items.c
        # `seq >= b_seq` first: a bound on the key's first column, so that each page starts
        # where the last one ended in the primary key (the OR alone reads the key from its
        # start on every page on SQLite).
        after = (i.seq >= bindparam("b_seq")) & (
            (i.seq > bindparam("b_seq")) | (i.position > bindparam("b_position"))
        )
        query = (
            select(
                i.seq,
                conversations.c.conversation_id,
                i.source_conversation_id,
                i.source_item_id,
                i.position,
                i.item_id,
            )
            .join_from(items, conversations, i.seq == conversations.c.seq)
            .where(after)
            .order_by(i.seq, i.position)
            .limit(bindparam("b_page"))
        )
        return query if stop is None else query.where(i.seq < bindparam("b_stop"))

    return build


def _row_select(*, with_plan: bool = False) -> Any:
    columns = [*_ROW_COLUMNS, conversations.c.plan] if with_plan else _ROW_COLUMNS
    return select(*columns)


def _job_values(record: JobRecord) -> dict[str, Any]:
    values = record.model_dump()
    values["config"] = json.dumps(values["config"])
    values["target"] = json.dumps(values["target"])
    return values
