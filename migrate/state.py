"""The job's state store: what was planned, what was sent, what landed, one transaction per change.

SQLAlchemy Core tables defined in code; a SQLite file (`<job dir>/state.db`, WAL) by default,
any SQLAlchemy URL otherwise. Several worker processes (on one machine or several) can share
one job in PostgreSQL: `claim_work` takes a few conversations at a time with
`SELECT ... FOR UPDATE SKIP LOCKED` and a lease that expires unless renewed (`renew`), so a
dead worker's conversations go back to the others. Leases, heartbeats and the shared 429 pause
are read against the database's clock (`epoch_now`), never the workers' own clocks.

Tables:

- `job`: one row; the job config (no secrets), source description, target, times, state.
- `conversations`: one row per source record in source order (`seq`): status
  (`pending`, `in_progress`, `migrated`, `failed`, `skipped`), the new conversation id, planned
  and landed item counts, the plan itself (JSON) and its fingerprint, the last error, counters
  (calls, retries, reconciliations, possible orphans).
- `items`: one row per landed item: source conversation id, position, source item id, new id.
- `intents`: one row per remote write, written before it is sent; its outcome after.
- `workers`: one row per process that replayed the job: host, pid, start, last heartbeat,
  lease, whether it plans the source; the rate limit's share and the job's elapsed time come
  from it.
- `pace`: one row; the time until which every worker holds off after a 429.
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
    Double,
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
    func,
    insert,
    inspect,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from migrate.errors import JobError
from migrate.findings import ErrorRecord
from migrate.plan import ConversationPlan
from migrate.sqlite import configure_sqlite

SCHEMA_VERSION = 2

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
    Column("lease_until", Double),
    Index("ix_conversations_status", "status"),
    Index("ix_conversations_source_id", "source_id"),
    # Claims walk the pending rows in source order without sorting the whole table.
    Index("ix_conversations_status_seq", "status", "seq"),
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

workers = Table(
    "workers",
    metadata,
    Column("worker_id", String(64), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("plans", Boolean, nullable=False, default=False),
    Column("lease", Double, nullable=False),
    Column("started_at", Double, nullable=False),
    Column("seen_at", Double, nullable=False),
    Column("stopped_at", Double),
)

pace = Table(
    "pace",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("paused_until", Double, nullable=False),
)


class epoch_now(FunctionElement[float]):
    """The database server's current time in seconds since the epoch."""

    type = Double()
    inherit_cache = True


@compiles(epoch_now)
def _epoch_now_default(element: epoch_now, compiler: SQLCompiler, **kw: Any) -> str:
    return "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)"


@compiles(epoch_now, "sqlite")
def _epoch_now_sqlite(element: epoch_now, compiler: SQLCompiler, **kw: Any) -> str:
    return "((julianday('now') - 2440587.5) * 86400.0)"


@compiles(epoch_now, "mysql")
@compiles(epoch_now, "mariadb")
def _epoch_now_mysql(element: epoch_now, compiler: SQLCompiler, **kw: Any) -> str:
    return "(UNIX_TIMESTAMP(SYSDATE(6)) + 0.0)"


def _upgrade_to_workers(conn: Connection) -> None:
    """Version 1 -> 2: leases on claims, the workers and pace tables, the claim index."""
    column_type = Double().compile(dialect=conn.dialect)
    conn.exec_driver_sql(f"ALTER TABLE conversations ADD COLUMN lease_until {column_type}")
    for index in conversations.indexes:
        if index.name == "ix_conversations_status_seq":
            index.create(conn)
    workers.create(conn)
    pace.create(conn)
    conn.execute(insert(pace).values(id=1, paused_until=0.0))


Upgrade = Callable[[Connection], None]
UPGRADES: dict[int, Upgrade] = {1: _upgrade_to_workers}
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


class Claim(BaseModel):
    """A conversation a worker now holds, with its status at the moment of the claim."""

    model_config = ConfigDict(extra="forbid")

    seq: int
    status: Status
    plan: ConversationPlan


class WorkerRow(BaseModel):
    """One `workers` row (times in the database's clock)."""

    model_config = ConfigDict(extra="forbid")

    worker_id: str
    host: str
    pid: int
    plans: bool
    lease: float
    started_at: float
    seen_at: float
    stopped_at: float | None


class ClaimLostError(JobError):
    """This worker no longer holds the conversation: its lease ran out and it may be another's."""


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
        if engine.dialect.name == "sqlite":
            configure_sqlite(engine)
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
                conn.execute(insert(pace).values(id=1, paused_until=0.0))
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

    def db_now(self) -> float:
        """The database server's clock (seconds since the epoch)."""
        with self.engine.connect() as conn:
            return float(conn.execute(select(epoch_now())).scalar_one())

    def claim_work(self, worker: str, *, limit: int, lease: float | None) -> list[Claim]:
        """Take up to `limit` conversations for `worker`, in-flight ones first, with their plans.

        A conversation is free when nobody claimed it or its lease ran out; rows another
        worker is claiming at this moment are skipped (`FOR UPDATE SKIP LOCKED`). The claim
        lasts `lease` seconds unless renewed (None: until released).
        """
        claimed: list[Claim] = []
        with self.engine.begin() as conn:
            for status in ("in_progress", "pending"):
                wanted = limit - len(claimed)
                if wanted <= 0:
                    break
                rows = conn.execute(_claimable(status, wanted, with_plan=True)).all()
                claimed += [
                    Claim(
                        seq=int(seq), status=status, plan=ConversationPlan.model_validate_json(plan)
                    )
                    for seq, plan in rows
                ]
            _take(conn, worker, [claim.seq for claim in claimed], lease)
        return claimed

    def claim_conversations(
        self,
        worker: str,
        *,
        limit: int,
        statuses: Sequence[Status] = ("in_progress", "pending"),
        lease: float | None = None,
    ) -> list[int]:
        """Take up to `limit` free conversations for `worker`, in-flight ones first (no plans).

        On PostgreSQL rows another worker is claiming are skipped (`FOR UPDATE SKIP LOCKED`),
        so several processes can share one job.
        """
        seqs: list[int] = []
        with self.engine.begin() as conn:
            for status in ("in_progress", "pending"):
                if status not in statuses or len(seqs) >= limit:
                    continue
                rows = conn.execute(_claimable(status, limit - len(seqs), with_plan=False))
                seqs += [int(seq) for seq in rows.scalars()]
            _take(conn, worker, seqs, lease)
        return seqs

    def release_claims(self, worker: str | None = None) -> None:
        """Forget claims (of one worker, or all of them: the job's processes are gone).

        Finished conversations keep `claimed_by`: it names the worker that finished them.
        """
        query = _release()
        if worker is not None:
            query = query.where(conversations.c.claimed_by == worker)
        else:
            query = query.where(conversations.c.claimed_by.is_not(None))
        with self.engine.begin() as conn:
            conn.execute(query)

    def register_worker(
        self, worker_id: str, *, host: str, pid: int, plans: bool, lease: float
    ) -> None:
        """Add a worker to the job (its first heartbeat)."""
        now = epoch_now()
        values = {"host": host, "pid": pid, "plans": plans, "lease": lease}
        with self.engine.begin() as conn:
            conn.execute(
                insert(workers).values(worker_id=worker_id, started_at=now, seen_at=now, **values)
            )

    def renew(self, worker: str, *, lease: float) -> None:
        """Heartbeat: the worker is alive and its claims last `lease` seconds from now."""
        c = conversations.c
        with self.engine.begin() as conn:
            conn.execute(
                update(workers).where(workers.c.worker_id == worker).values(seen_at=epoch_now())
            )
            conn.execute(
                update(conversations)
                .where(c.claimed_by == worker, c.status.in_(("pending", "in_progress")))
                .values(lease_until=epoch_now() + lease)
            )

    def stop_worker(self, worker: str, *, release: bool = True) -> None:
        """The worker is leaving: last heartbeat, and (unless it crashed) its claims released."""
        with self.engine.begin() as conn:
            now = epoch_now()
            conn.execute(
                update(workers)
                .where(workers.c.worker_id == worker)
                .values(seen_at=now, stopped_at=now)
            )
            if release:
                conn.execute(_release().where(conversations.c.claimed_by == worker))

    def forget_workers(self, worker_ids: Sequence[str]) -> None:
        """Workers known to be gone: mark them stopped and free their claims at once."""
        if not worker_ids:
            return
        with self.engine.begin() as conn:
            conn.execute(
                update(workers)
                .where(workers.c.worker_id.in_(worker_ids), workers.c.stopped_at.is_(None))
                .values(stopped_at=workers.c.seen_at)
            )
            conn.execute(_release().where(conversations.c.claimed_by.in_(worker_ids)))

    def worker_rows(self) -> tuple[list[WorkerRow], float]:
        """Every worker that ever joined the job, and the database's clock."""
        with self.engine.connect() as conn:
            now = float(conn.execute(select(epoch_now())).scalar_one())
            rows = conn.execute(select(workers).order_by(workers.c.started_at)).mappings().all()
        return [WorkerRow.model_validate(dict(row)) for row in rows], now

    def live_workers(self) -> tuple[int, bool]:
        """Workers whose heartbeat is within their lease, and whether one of them plans."""
        w = workers.c
        alive = (w.stopped_at.is_(None)) & (w.seen_at + w.lease > epoch_now())
        query = select(func.count(), func.coalesce(func.sum(case((w.plans, 1), else_=0)), 0)).where(
            alive
        )
        with self.engine.connect() as conn:
            count, planners = conn.execute(query).one()
        return int(count), int(planners) > 0

    def pause_left(self) -> float:
        """Seconds every worker still holds off after a 429 (0 when none)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(pace.c.paused_until - epoch_now()).where(pace.c.id == 1)
            ).first()
        return max(0.0, float(row[0])) if row is not None else 0.0

    def publish_pause(self, seconds: float) -> None:
        """A worker met a 429: all hold off for `seconds` (a longer pause already set stays)."""
        until = epoch_now() + seconds
        current = pace.c.paused_until
        with self.engine.begin() as conn:
            conn.execute(
                update(pace)
                .where(pace.c.id == 1)
                .values(paused_until=case((current > until, current), else_=until))
            )

    def unfinished_count(self) -> int:
        """Conversations still pending or in progress (whoever holds them)."""
        c = conversations.c
        query = select(func.count()).where(c.status.in_(("pending", "in_progress")))
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def known_count(self) -> int:
        """Source records planned so far (an index lookup, not a count)."""
        with self.engine.connect() as conn:
            top = conn.execute(select(func.max(conversations.c.seq))).scalar_one()
        return 0 if top is None else int(top) + 1

    def worker_time(self) -> float:
        """Seconds during which at least one worker was alive (union of their lifetimes)."""
        with self.engine.connect() as conn:
            spans = conn.execute(
                select(workers.c.started_at, workers.c.seen_at).order_by(workers.c.started_at)
            ).all()
        total = 0.0
        open_start, open_end = None, None
        for start, end in spans:
            if open_end is None or start > open_end:
                if open_start is not None and open_end is not None:
                    total += open_end - open_start
                open_start, open_end = start, end
            else:
                open_end = max(open_end, end)
        if open_start is not None and open_end is not None:
            total += open_end - open_start
        return total

    # --- the replay protocol -----------------------------------------------------------------

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

    def _update(self, conn: Connection, seq: int, **values: Any) -> None:
        """Update one conversation the replay protocol works on, if this worker still holds it."""
        query = update(conversations).where(conversations.c.seq == seq)
        if self.owner is not None:
            query = query.where(conversations.c.claimed_by == self.owner)
        if conn.execute(query.values(**values)).rowcount == 0 and self.owner is not None:
            raise ClaimLostError(
                f"conversation #{seq} is no longer held by worker {self.owner}",
                hint="its lease ran out (the state store was unreachable or too slow); another "
                "worker takes it over and reconciles it",
            )


_STATUSES: tuple[Status, ...] = ("pending", "in_progress", "migrated", "failed", "skipped")

_ROW_COLUMNS = [
    column
    for column in conversations.c
    if column.name not in ("plan", "claimed_by", "claimed_at", "updated_at", "lease_until")
]


def _row_select(*, with_plan: bool = False) -> Any:
    columns = [*_ROW_COLUMNS, conversations.c.plan] if with_plan else _ROW_COLUMNS
    return select(*columns)


def _claimable(status: Status, limit: int, *, with_plan: bool) -> Any:
    """Free conversations of one status in source order, skipping rows being claimed."""
    c = conversations.c
    columns = [c.seq, c.plan] if with_plan else [c.seq]
    return (
        select(*columns)
        .where(c.status == status, or_(c.claimed_by.is_(None), c.lease_until < epoch_now()))
        .order_by(c.seq)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )


def _release() -> Any:
    """Free the claims on unfinished conversations (add the `where`)."""
    return (
        update(conversations)
        .where(conversations.c.status.in_(("pending", "in_progress")))
        .values(claimed_by=None, claimed_at=None, lease_until=None)
    )


def _take(conn: Connection, worker: str, seqs: Sequence[int], lease: float | None) -> None:
    if not seqs:
        return
    conn.execute(
        update(conversations)
        .where(conversations.c.seq.in_(seqs))
        .values(
            claimed_by=worker,
            claimed_at=epoch_now(),
            lease_until=None if lease is None else epoch_now() + lease,
        )
    )


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
