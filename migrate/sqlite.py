"""SQLite settings shared by the engine's own databases (state store, local server)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

WRITE_BEGIN = "BEGIN IMMEDIATE"
"""How a writing transaction begins: with the write lock, so that writers queue, not fail."""


def configure_sqlite(engine: Engine, *, immediate_only_for_writes: bool = False) -> None:
    """WAL, a busy timeout, foreign keys, and `BEGIN IMMEDIATE` so writers queue, not fail.

    With `immediate_only_for_writes`, only connections run with the execution option
    `write=True` take the write lock at `BEGIN`; readers start a plain deferred transaction.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event, not pysqlite, decide how transactions start.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # First: switching to WAL waits for the other processes' locks like any statement.
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = not immediate_only_for_writes or conn.get_execution_options().get("write")
        # Straight to the driver: this runs before every transaction, and SQLAlchemy's own
        # execution path (events, result objects) would cost more than the statement.
        conn.connection.dbapi_connection.execute(  # type: ignore[union-attr]
            WRITE_BEGIN if immediate else "BEGIN"
        )
