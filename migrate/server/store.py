"""SQLite persistence of the local server's conversations and items (SQLAlchemy Core).

One write transaction per request (`BEGIN IMMEDIATE`, so concurrent writers queue on the lock
instead of failing on upgrade); WAL so that readers (`migrate inspect`, list calls) never block
the writer. Items keep insertion order through a per-conversation sequence number. Deleting a
conversation marks it deleted and keeps its items, as the real API does.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict
from sqlalchemy.engine import Connection, Engine

from migrate.errors import ConfigError, MigrateError
from migrate.server.ids import mint_id
from migrate.server.validation import ID_PREFIXES, StoredItem
from migrate.sqlite import configure_sqlite

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1

_meta = sa.MetaData()

conversations_table = sa.Table(
    "conversations",
    _meta,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("created_at", sa.Integer, nullable=False),
    sa.Column("metadata_json", sa.Text, nullable=False),
    sa.Column("deleted_at", sa.Integer, nullable=True),
)

items_table = sa.Table(
    "items",
    _meta,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("conversation_id", sa.String(64), sa.ForeignKey("conversations.id"), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("body_json", sa.Text, nullable=False),
    sa.UniqueConstraint("conversation_id", "seq", name="uq_items_conversation_seq"),
)


class StoreError(ConfigError):
    """The database file cannot be used as a local server store."""


class ConversationRecord(BaseModel):
    """A stored conversation."""

    model_config = ConfigDict(frozen=True)

    id: str
    created_at: int
    metadata: dict[str, str]
    deleted: bool = False

    def api_object(self) -> dict[str, Any]:
        """The conversation as the API returns it."""
        return {
            "id": self.id,
            "object": "conversation",
            "created_at": self.created_at,
            "metadata": self.metadata,
        }


class ConversationSummary(BaseModel):
    """One line of `migrate inspect`: a conversation and how many items it holds."""

    model_config = ConfigDict(frozen=True)

    id: str
    created_at: int
    metadata: dict[str, str]
    deleted: bool
    item_count: int


class ItemPage(BaseModel):
    """One page of a conversation's items, still JSON-encoded as stored."""

    model_config = ConfigDict(frozen=True)

    items_json: list[str]
    first_id: str | None
    last_id: str | None
    has_more: bool


class NewItem(NamedTuple):
    """An item just stored: its minted id and its JSON as the API returns it."""

    id: str
    body_json: str


class ItemNotFoundError(MigrateError):
    """An item id that is not in the conversation."""

    def __init__(self, item_id: str) -> None:
        super().__init__(item_id)
        self.item_id = item_id


def _encode(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class ConversationStore:
    """Conversations and items in one SQLite file; thread-safe, one transaction per call."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._prepare()

    @classmethod
    def from_path(cls, path: Path | str) -> ConversationStore:
        """Open (or create) the store in the SQLite file at `path`."""
        target = Path(path)
        if target.parent and not target.parent.exists():
            raise StoreError(f"cannot open server database {target}: directory does not exist")
        engine = sa.create_engine(
            f"sqlite:///{target}",
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=8,
            max_overflow=8,
        )
        configure_sqlite(engine, immediate_only_for_writes=True)
        return cls(engine)

    def close(self) -> None:
        """Release every connection."""
        self._engine.dispose()

    def _prepare(self) -> None:
        try:
            with self._write() as conn:
                version = conn.exec_driver_sql("PRAGMA user_version").scalar_one()
                tables = set(sa.inspect(conn).get_table_names())
                if version == 0 and tables - {"conversations", "items"}:
                    raise StoreError(
                        f"{self._engine.url.database} holds other tables "
                        f"({', '.join(sorted(tables))}); give the server its own database file"
                    )
                if version not in (0, SCHEMA_VERSION):
                    raise StoreError(
                        f"{self._engine.url.database} has server schema version {version}, "
                        f"this version of migrate reads version {SCHEMA_VERSION}"
                    )
                _meta.create_all(conn)
                conn.exec_driver_sql(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sa.exc.DatabaseError as exc:
            raise StoreError(
                f"cannot open server database {self._engine.url.database}: {exc}"
            ) from exc

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._engine.connect() as conn:
            conn.execution_options(write=True)
            with conn.begin():
                yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._engine.connect() as conn, conn.begin():
            yield conn

    # -- conversations ------------------------------------------------------------------

    def create_conversation(
        self, metadata: dict[str, str], items: Sequence[StoredItem]
    ) -> tuple[ConversationRecord, list[NewItem]]:
        """Create a conversation with its first items, atomically."""
        record = ConversationRecord(
            id=mint_id("conv"), created_at=int(time.time()), metadata=metadata
        )
        with self._write() as conn:
            conn.execute(
                conversations_table.insert().values(
                    id=record.id, created_at=record.created_at, metadata_json=_encode(metadata)
                )
            )
            created = self._insert_items(conn, record.id, 0, items)
        return record, created

    def get_conversation(self, conversation_id: str) -> ConversationRecord | None:
        """The live conversation with this id, if any."""
        with self._read() as conn:
            return self._live_conversation(conn, conversation_id)

    def update_metadata(
        self, conversation_id: str, metadata: dict[str, str]
    ) -> ConversationRecord | None:
        """Replace a conversation's metadata; None if there is no such conversation."""
        with self._write() as conn:
            record = self._live_conversation(conn, conversation_id)
            if record is None:
                return None
            conn.execute(
                conversations_table.update()
                .where(conversations_table.c.id == conversation_id)
                .values(metadata_json=_encode(metadata))
            )
        return record.model_copy(update={"metadata": metadata})

    def delete_conversation(self, conversation_id: str) -> bool:
        """Mark a conversation deleted (its items stay in the file); False if unknown."""
        with self._write() as conn:
            result = conn.execute(
                conversations_table.update()
                .where(
                    conversations_table.c.id == conversation_id,
                    conversations_table.c.deleted_at.is_(None),
                )
                .values(deleted_at=int(time.time()))
            )
            return result.rowcount == 1

    def summaries(self, *, include_deleted: bool = True) -> list[ConversationSummary]:
        """Every conversation with its item count, oldest first."""
        counts = (
            sa.select(items_table.c.conversation_id, sa.func.count().label("n"))
            .group_by(items_table.c.conversation_id)
            .subquery()
        )
        query = (
            sa.select(
                conversations_table.c.id,
                conversations_table.c.created_at,
                conversations_table.c.metadata_json,
                conversations_table.c.deleted_at,
                sa.func.coalesce(counts.c.n, 0),
            )
            .outerjoin(counts, counts.c.conversation_id == conversations_table.c.id)
            # rowid is insertion order (the server never VACUUMs); created_at has 1 s resolution.
            .order_by(sa.literal_column("conversations.rowid"))
        )
        if not include_deleted:
            query = query.where(conversations_table.c.deleted_at.is_(None))
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [
            ConversationSummary(
                id=row[0],
                created_at=row[1],
                metadata=json.loads(row[2]),
                deleted=row[3] is not None,
                item_count=row[4],
            )
            for row in rows
        ]

    def list_conversations(
        self, *, limit: int, order: str, after: str | None
    ) -> tuple[list[ConversationRecord], bool] | None:
        """One page of live conversations in creation `order` after `after`, and `has_more`;
        None if `after` is not a live conversation."""
        table = conversations_table
        rowid: sa.ColumnElement[int] = sa.literal_column("conversations.rowid")
        ascending = order == "asc"
        query = sa.select(table.c.id, table.c.created_at, table.c.metadata_json).where(
            table.c.deleted_at.is_(None)
        )
        with self._read() as conn:
            if after is not None:
                after_row = conn.execute(
                    sa.select(rowid).where(table.c.id == after, table.c.deleted_at.is_(None))
                ).scalar_one_or_none()
                if after_row is None:
                    return None
                query = query.where(rowid > after_row if ascending else rowid < after_row)
            # rowid is insertion order; created_at has 1 s resolution.
            query = query.order_by(rowid.asc() if ascending else rowid.desc()).limit(limit + 1)
            rows = conn.execute(query).all()
        records = [
            ConversationRecord(id=row[0], created_at=row[1], metadata=json.loads(row[2]))
            for row in rows[:limit]
        ]
        return records, len(rows) > limit

    def find_conversation(self, conversation_id: str) -> ConversationRecord | None:
        """A conversation by id, deleted or not (for inspection)."""
        query = sa.select(conversations_table).where(conversations_table.c.id == conversation_id)
        with self._read() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        return ConversationRecord(
            id=row.id,
            created_at=row.created_at,
            metadata=json.loads(row.metadata_json),
            deleted=row.deleted_at is not None,
        )

    # -- items --------------------------------------------------------------------------

    def add_items(self, conversation_id: str, items: Sequence[StoredItem]) -> list[NewItem] | None:
        """Append items, all or none; None if there is no such conversation."""
        with self._write() as conn:
            if self._live_conversation(conn, conversation_id) is None:
                return None
            last = conn.execute(
                sa.select(sa.func.max(items_table.c.seq)).where(
                    items_table.c.conversation_id == conversation_id
                )
            ).scalar_one()
            return self._insert_items(conn, conversation_id, (last or 0), items)

    def list_items(
        self, conversation_id: str, *, limit: int, order: str, after: str | None
    ) -> ItemPage | None:
        """One page of items in `order` after the item `after`; None if no such conversation.

        Raises:
            ItemNotFoundError: `after` is not an item of this conversation.
        """
        columns = (items_table.c.id, items_table.c.body_json)
        query = sa.select(*columns).where(items_table.c.conversation_id == conversation_id)
        ascending = order == "asc"
        with self._read() as conn:
            if self._live_conversation(conn, conversation_id) is None:
                return None
            if after is not None:
                after_seq = conn.execute(
                    sa.select(items_table.c.seq).where(
                        items_table.c.id == after,
                        items_table.c.conversation_id == conversation_id,
                    )
                ).scalar_one_or_none()
                if after_seq is None:
                    raise ItemNotFoundError(after)
                cursor = (
                    items_table.c.seq > after_seq if ascending else items_table.c.seq < after_seq
                )
                query = query.where(cursor)
            query = query.order_by(
                items_table.c.seq.asc() if ascending else items_table.c.seq.desc()
            ).limit(limit + 1)
            rows = conn.execute(query).all()
        page = rows[:limit]
        return ItemPage(
            items_json=[row[1] for row in page],
            first_id=page[0][0] if page else None,
            last_id=page[-1][0] if page else None,
            has_more=len(rows) > limit,
        )

    def all_items(self, conversation_id: str) -> list[dict[str, Any]]:
        """Every item of a conversation (deleted or not) in insertion order."""
        query = (
            sa.select(items_table.c.body_json)
            .where(items_table.c.conversation_id == conversation_id)
            .order_by(items_table.c.seq)
        )
        with self._read() as conn:
            return [json.loads(body) for body in conn.execute(query).scalars()]

    def get_item(self, conversation_id: str, item_id: str) -> str | None:
        """The stored JSON of one item of a live conversation.

        Raises:
            LookupError: the conversation does not exist (the item check comes second).
        """
        with self._read() as conn:
            if self._live_conversation(conn, conversation_id) is None:
                raise LookupError(conversation_id)
            return conn.execute(
                sa.select(items_table.c.body_json).where(
                    items_table.c.id == item_id,
                    items_table.c.conversation_id == conversation_id,
                )
            ).scalar_one_or_none()

    def delete_item(self, conversation_id: str, item_id: str) -> ConversationRecord | None:
        """Delete one item; returns the conversation, None if the conversation is unknown.

        Raises:
            ItemNotFoundError: the conversation has no such item.
        """
        with self._write() as conn:
            record = self._live_conversation(conn, conversation_id)
            if record is None:
                return None
            result = conn.execute(
                items_table.delete().where(
                    items_table.c.id == item_id,
                    items_table.c.conversation_id == conversation_id,
                )
            )
            if result.rowcount != 1:
                raise ItemNotFoundError(item_id)
        return record

    # -- internals ----------------------------------------------------------------------

    @staticmethod
    def _live_conversation(conn: Connection, conversation_id: str) -> ConversationRecord | None:
        row = conn.execute(
            sa.select(conversations_table.c.created_at, conversations_table.c.metadata_json).where(
                conversations_table.c.id == conversation_id,
                conversations_table.c.deleted_at.is_(None),
            )
        ).first()
        if row is None:
            return None
        return ConversationRecord(
            id=conversation_id, created_at=row[0], metadata=json.loads(row[1])
        )

    @staticmethod
    def _insert_items(
        conn: Connection, conversation_id: str, last_seq: int, items: Sequence[StoredItem]
    ) -> list[NewItem]:
        if not items:
            return []
        suffix = conversation_id[-16:]
        created: list[NewItem] = []
        rows: list[dict[str, Any]] = []
        for offset, item in enumerate(items, start=1):
            item_id = mint_id(ID_PREFIXES[item["type"]], suffix=suffix)
            body_json = _encode({"id": item_id, **item})
            created.append(NewItem(item_id, body_json))
            rows.append(
                {
                    "id": item_id,
                    "conversation_id": conversation_id,
                    "seq": last_seq + offset,
                    "type": item["type"],
                    "body_json": body_json,
                }
            )
        conn.execute(items_table.insert(), rows)
        return created
