"""The state store's layout: SQLAlchemy Core tables, the schema version and its upgrades, and
the database clock (`epoch_now`) that leases, heartbeats and pauses are read against.

Tables:

- `job`: one row; the job config (no secrets), source description, target, times, state,
  and while `resume` checks the source lazily, `checked_below`: workers claim only
  conversations whose `seq` is below it (the ones the check has compared with the source).
- `conversations`: one row per source record in source order (`seq`): status
  (`pending`, `in_progress`, `migrated`, `failed`, `skipped`), the new conversation id, planned
  and landed item counts, the plan itself (JSON) and its fingerprint, the last error, counters
  (calls, retries, reconciliations, possible orphans, empty or with items, landed items
  whose new id is not read yet, repairs); for a conversation an earlier job created and this
  one appends to, `base_items`, the items it already held; `ambiguous_at`, when the
  conversation's last write whose outcome is unknown was recorded (it is neither reconciled
  before the settle time has passed since, nor migrated before its audit); what the report
  shows of the plan, stored with it so that the report never reads plans back: `tokens`,
  `tokens_estimated`, and a Responses chain's `first_response_id` and `leaf_response_id`;
  `source_mark`, where the record starts in the source when the reader can start a read there
  (`JsonFilesSource.mark`: a JSON Lines file's line, byte offset and a digest of the bytes
  before it), so that `resume` reads on from the first conversation not migrated.
- `findings`: the plan's findings, one row each (`number` in the plan's order), written in the
  transaction that stores the plan: the report streams them from here.
- `items`: one row per landed item: source conversation id, position, source item id, new id
  (NULL while unread: a create that carried the item answers without item ids, and the next
  listing of the conversation, `migrate verify`'s at the latest, fills it in). On SQLite the
  rows are kept in key order (`WITHOUT ROWID`), with no separate index of the key.
- `intents`: one row per remote write, written before it is sent; its outcome after (an
  audit's deletion of a surplus item names the item; an audit's append of planned items
  missing at the end is an `append_missing`, so that what it lands counts as repairs).
- `workers`: one row per process that replayed the job: host, pid, start, last heartbeat,
  lease, whether it plans the source; the rate limit's share and the job's elapsed time come
  from it.
- `report_progress`: one row: how far the report files in the job directory are written
  (`migrate.jobs.report_files`): every conversation below `below` is in them, the files ending
  at the byte sizes in `files` (JSON), and a signature of those rows to tell when one changed.
- `pace`: one row; the time until which every worker holds off after a 429.
- `ledger`: what landed per (target, source conversation) across every job the store has
  held: the new conversation id, how many items landed and their chained fingerprint, the job
  that wrote them (`migrate.state.ledger`).
- `schema_version`: the version of this layout; `UPGRADES` moves older stores forward.

"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Callable
from typing import Any, Literal

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator

from migrate.state.plan_facts import PlanFacts, fact_columns, finding_rows

SCHEMA_VERSION = 11

Status = Literal["pending", "in_progress", "migrated", "failed", "skipped"]
FINAL_STATUSES: tuple[Status, ...] = ("migrated", "failed", "skipped")
IntentKind = Literal[
    "create", "append", "append_missing", "delete", "delete_item", "update_metadata"
]
IntentOutcome = Literal["applied", "not_applied", "rejected", "ambiguous", "reconciled"]

_LongText = Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")


class CompressedText(TypeDecorator[str]):
    """Text stored zlib-compressed (base64, behind a `z1:` prefix); plain text reads as is.

    Plans are most of a job's state (JSON of every item); compressed they take a fraction of
    the space. Rows written before compression existed hold plain JSON and still read.
    """

    impl = _LongText
    cache_ok = True
    PREFIX = "z1:"

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        packed = base64.b64encode(zlib.compress(value.encode("utf-8"), 6)).decode("ascii")
        return self.PREFIX + packed

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None or not value.startswith(self.PREFIX):
            return value
        return zlib.decompress(base64.b64decode(value[len(self.PREFIX) :])).decode("utf-8")


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
    Column("created_at", Double, nullable=False),
    Column("started_at", Double),
    Column("finished_at", Double),
    Column("state", String(16), nullable=False),
    Column("config", _LongText, nullable=False),
    Column("source", Text, nullable=False),
    Column("target", Text, nullable=False),
    Column("planning_complete", Boolean, nullable=False, default=False),
    Column("elapsed", Double, nullable=False, default=0.0),
    Column("checked_below", Integer),
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
    Column("plan", CompressedText()),
    Column("findings", Integer, nullable=False, default=0),
    Column("calls", Integer, nullable=False, default=0),
    Column("retries", Integer, nullable=False, default=0),
    Column("reconciliations", Integer, nullable=False, default=0),
    Column("possible_orphans", Integer, nullable=False, default=0),
    Column("orphans_with_items", Integer, nullable=False, default=0),
    Column("unread_items", Integer, nullable=False, default=0),
    Column("error_code", String(64)),
    Column("error_message", Text),
    Column("error_hint", Text),
    Column("retryable", Boolean, nullable=False, default=False),
    Column("claimed_by", String(64)),
    Column("claimed_at", Double),
    Column("deleted_at", Double),
    Column("updated_at", Double, nullable=False),
    Column("lease_until", Double),
    Column("base_items", Integer),
    Column("ambiguous_at", Double),
    Column("repairs", Integer, nullable=False, default=0),
    Column("tokens", Integer),
    Column("tokens_estimated", Boolean, nullable=False, default=False),
    Column("first_response_id", String(512)),
    Column("leaf_response_id", String(512)),
    Column("source_mark", String(128)),
    Index("ix_conversations_status", "status"),
    Index("ix_conversations_source_id", "source_id"),
    # Claims walk the pending rows in source order without sorting the whole table.
    Index("ix_conversations_status_seq", "status", "seq"),
    # Heartbeats renew one worker's claims: without this, each renewal scans every pending row.
    Index("ix_conversations_claimed_by_status", "claimed_by", "status"),
)

items = Table(
    "items",
    metadata,
    Column("seq", Integer, ForeignKey("conversations.seq"), primary_key=True),
    Column("position", Integer, primary_key=True, autoincrement=False),
    Column("source_conversation_id", String(512)),
    Column("source_item_id", String(512)),
    Column("item_id", String(128)),
    sqlite_with_rowid=False,
)

findings = Table(
    "findings",
    metadata,
    Column("seq", Integer, ForeignKey("conversations.seq"), primary_key=True),
    Column("number", Integer, primary_key=True, autoincrement=False),
    Column("code", String(64), nullable=False),
    Column("count", Integer, nullable=False),
    Column("finding", _LongText, nullable=False),
    Index("ix_findings_code", "code", "seq"),
)

intents = Table(
    "intents",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("seq", Integer, ForeignKey("conversations.seq"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("start", Integer, nullable=False),
    Column("count", Integer, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("outcome", String(16)),
    Column("resolved_at", Double),
    Column("item_id", String(128)),
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

report_progress = Table(
    "report_progress",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("below", Integer, nullable=False),
    Column("files", Text, nullable=False),
    Column("signature", Text, nullable=False),
)

ledger = Table(
    "ledger",
    metadata,
    Column("target", String(160), primary_key=True),
    Column("source_id", String(512), primary_key=True),
    Column("conversation_id", String(128), nullable=False),
    Column("items", Integer, nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("complete", Boolean, nullable=False),
    Column("job_id", String(64), nullable=False),
    Column("updated_at", Double, nullable=False),
    Index("ix_ledger_conversation_id", "conversation_id"),
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


def _upgrade_to_claim_index(conn: Connection) -> None:
    """Version 2 -> 3: the index heartbeats renew one worker's claims through."""
    for index in conversations.indexes:
        if index.name == "ix_conversations_claimed_by_status":
            index.create(conn)


def _upgrade_to_ledger(conn: Connection) -> None:
    """Version 3 -> 4: the ledger, and the items an appended conversation already held."""
    conn.exec_driver_sql("ALTER TABLE conversations ADD COLUMN base_items INTEGER")
    ledger.create(conn)


def _upgrade_to_unread_items(conn: Connection) -> None:
    """Version 4 -> 5: item ids may be unread (NULL), and orphans that may hold items."""
    for column in ("orphans_with_items", "unread_items"):
        conn.exec_driver_sql(
            f"ALTER TABLE conversations ADD COLUMN {column} INTEGER NOT NULL DEFAULT 0"
        )
    dialect = conn.dialect.name
    if dialect == "postgresql":
        conn.exec_driver_sql("ALTER TABLE items ALTER COLUMN item_id DROP NOT NULL")
    elif dialect in ("mysql", "mariadb"):
        conn.exec_driver_sql("ALTER TABLE items MODIFY item_id VARCHAR(128) NULL")
    else:
        # SQLite cannot drop a NOT NULL: the table is rebuilt with the same rows.
        conn.exec_driver_sql("ALTER TABLE items RENAME TO items_v4")
        items.create(conn)
        conn.exec_driver_sql(
            "INSERT INTO items (seq, position, source_conversation_id, source_item_id, item_id) "
            "SELECT seq, position, source_conversation_id, source_item_id, item_id FROM items_v4"
        )
        conn.exec_driver_sql("DROP TABLE items_v4")


def _upgrade_to_lazy_check(conn: Connection) -> None:
    """Version 5 -> 6: the claim bound of `resume`'s lazy source check."""
    conn.exec_driver_sql("ALTER TABLE job ADD COLUMN checked_below INTEGER")


def _upgrade_to_audit(conn: Connection) -> None:
    """Version 6 -> 7: when a write's outcome was last unknown (set from the intents for
    conversations in progress), the audit's repairs, and the item an audit's deletion names."""
    column_type = Double().compile(dialect=conn.dialect)
    conn.exec_driver_sql(f"ALTER TABLE conversations ADD COLUMN ambiguous_at {column_type}")
    conn.exec_driver_sql("ALTER TABLE conversations ADD COLUMN repairs INTEGER NOT NULL DEFAULT 0")
    conn.exec_driver_sql("ALTER TABLE intents ADD COLUMN item_id VARCHAR(128)")
    # A conversation an older version left in progress after an append in doubt is audited.
    conn.exec_driver_sql(
        "UPDATE conversations SET ambiguous_at = (SELECT MAX(i.created_at) FROM intents i "
        "WHERE i.seq = conversations.seq AND i.kind = 'append' "
        "AND (i.outcome = 'ambiguous' OR i.outcome IS NULL)) WHERE status = 'in_progress'"
    )


def _upgrade_to_double_timestamps(conn: Connection) -> None:
    """Version 7 -> 8: MariaDB/MySQL columns made FLOAT, which is single precision there (a
    timestamp off by up to a minute), become DOUBLE; elsewhere FLOAT was double already."""
    if conn.dialect.name not in ("mysql", "mariadb"):
        return
    rows = conn.exec_driver_sql(
        "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = DATABASE() AND DATA_TYPE = 'float'"
    ).all()
    single = {(str(table), str(column)) for table, column in rows}
    for table in metadata.sorted_tables:
        changes = [
            f"MODIFY {column.name} DOUBLE{'' if column.nullable else ' NOT NULL'}"
            for column in table.columns
            if isinstance(column.type, Double) and (table.name, column.name) in single
        ]
        if changes:
            conn.exec_driver_sql(f"ALTER TABLE {table.name} {', '.join(changes)}")


BACKFILL_PAGE = 500


def _upgrade_to_findings(conn: Connection) -> None:
    """Version 8 -> 9: findings and the report's plan figures stored beside each plan, and
    the report's progress; filled in once from the stored plans."""
    add = "ALTER TABLE conversations ADD COLUMN"
    conn.exec_driver_sql(f"{add} tokens INTEGER")
    false = "false" if conn.dialect.name == "postgresql" else "0"
    boolean = Boolean().compile(dialect=conn.dialect)
    conn.exec_driver_sql(f"{add} tokens_estimated {boolean} NOT NULL DEFAULT {false}")
    for column in ("first_response_id", "leaf_response_id"):
        conn.exec_driver_sql(f"{add} {column} VARCHAR(512)")
    findings.create(conn)
    report_progress.create(conn)
    c = conversations.c
    facts = (
        update(conversations)
        .where(c.seq == bindparam("b_seq"))
        .values({name: bindparam(f"b_{name}") for name in fact_columns(None)})
    )
    after = -1
    while True:
        rows = conn.execute(
            select(c.seq, c.plan)
            .where(c.seq > after, c.plan.is_not(None))
            .order_by(c.seq)
            .limit(BACKFILL_PAGE)
        ).all()
        if not rows:
            return
        plans = [(int(seq), PlanFacts.model_validate_json(text)) for seq, text in rows]
        conn.execute(
            facts,
            [
                {"b_seq": seq, **{f"b_{k}": v for k, v in fact_columns(plan).items()}}
                for seq, plan in plans
            ],
        )
        found = [row for seq, plan in plans for row in finding_rows(seq, plan.findings)]
        if found:
            conn.execute(insert(findings), found)
        after = plans[-1][0]


def _upgrade_to_clustered_items(conn: Connection) -> None:
    """Version 9 -> 10: on SQLite the items table is kept in its key's order (`WITHOUT ROWID`):
    one B-tree instead of a table and an index of its key, a tenth less of the store and of
    each call's writes. Other databases keep the table as it is (InnoDB already keeps rows in
    key order)."""
    if conn.dialect.name != "sqlite":
        return
    conn.exec_driver_sql("ALTER TABLE items RENAME TO items_with_rowid")
    conn.exec_driver_sql(
        "CREATE TABLE items (seq INTEGER NOT NULL, position INTEGER NOT NULL, "
        "source_conversation_id VARCHAR(512), source_item_id VARCHAR(512), "
        "item_id VARCHAR(128), PRIMARY KEY (seq, position), "
        "FOREIGN KEY(seq) REFERENCES conversations (seq)) WITHOUT ROWID"
    )
    conn.exec_driver_sql(
        "INSERT INTO items (seq, position, source_conversation_id, source_item_id, item_id) "
        "SELECT seq, position, source_conversation_id, source_item_id, item_id "
        "FROM items_with_rowid"
    )
    conn.exec_driver_sql("DROP TABLE items_with_rowid")


def _upgrade_to_source_marks(conn: Connection) -> None:
    """Version 10 -> 11: where each record starts in the source (rows stored before have none:
    a resume of such a job reads its source from the beginning)."""
    conn.exec_driver_sql("ALTER TABLE conversations ADD COLUMN source_mark VARCHAR(128)")


Upgrade = Callable[[Connection], None]
UPGRADES: dict[int, Upgrade] = {
    1: _upgrade_to_workers,
    2: _upgrade_to_claim_index,
    3: _upgrade_to_ledger,
    4: _upgrade_to_unread_items,
    5: _upgrade_to_lazy_check,
    6: _upgrade_to_audit,
    7: _upgrade_to_double_timestamps,
    8: _upgrade_to_findings,
    9: _upgrade_to_clustered_items,
    10: _upgrade_to_source_marks,
}
"""`UPGRADES[n]` moves a store at version `n` to version `n + 1`, inside one transaction."""
