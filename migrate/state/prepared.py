"""Statements compiled once per engine and run on the driver's own cursor.

The replay protocol writes a few small statements per API call. Built as SQLAlchemy Core
statements each time, most of their cost is building the statement and its cache key, not
the database; here each is built and compiled once (for the engine's dialect, with named
bind parameters) and then executed with the DBAPI cursor of the connection SQLAlchemy holds,
inside a SQLAlchemy transaction (`BEGIN IMMEDIATE` on SQLite). The journal's transactions run
on a connection each thread holds open (`PreparedStatements.transaction`), checked out of the
pool once rather than twice per API call.

Only statements without expanding parameters (`IN` lists) and with plain values (no type
that processes its bind values) belong here.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from migrate.state.unwritable import raise_if_unwritable


class Prepared:
    """One statement compiled for one dialect; runs with a mapping of its bind values."""

    def __init__(self, statement: ClauseElement, engine: Engine) -> None:
        compiled = statement.compile(dialect=engine.dialect)
        assert isinstance(compiled, SQLCompiler)
        self.sql = compiled.string
        self.defaults = dict(compiled.params)
        self.order: tuple[str, ...] | None = (
            tuple(compiled.positiontup or ()) if compiled.positional else None
        )

    def parameters(self, values: Mapping[str, Any]) -> Any:
        merged = {**self.defaults, **values}
        if self.order is None:
            return merged
        return tuple(merged[name] for name in self.order)

    def execute(self, conn: Connection, values: Mapping[str, Any]) -> Any:
        """Run once on `conn`'s driver cursor; returns the cursor (rowcount, fetchone)."""
        cursor = _cursor(conn)
        try:
            cursor.execute(self.sql, self.parameters(values))
        except Exception as exc:
            raise_if_unwritable(conn.engine, exc)
            raise
        return cursor

    def execute_many(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        cursor = _cursor(conn)
        try:
            cursor.executemany(self.sql, [self.parameters(row) for row in rows])
        except Exception as exc:
            raise_if_unwritable(conn.engine, exc)
            raise
        cursor.close()


class PreparedStatements:
    """The prepared statements of one engine, compiled on first use, by key, and the
    connections their transactions run on."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._prepared: dict[Any, Prepared] = {}
        self._local = threading.local()
        self._held: list[Connection] = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A transaction on this thread's own connection, held open between transactions:
        the replay protocol runs one or two per API call, and a checkout from the pool and its
        return each time would cost more than the statements."""
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.invalidated:
            conn = self._local.conn = self.engine.connect()
            with self._lock:
                self._held.append(conn)
        with conn.begin():
            yield conn

    def close(self) -> None:
        """Give the held connections back (before the engine is disposed of)."""
        with self._lock:
            held, self._held = self._held, []
        for conn in held:
            conn.close()

    def get(self, key: Any, build: Callable[[], ClauseElement]) -> Prepared:
        prepared = self._prepared.get(key)
        if prepared is None:
            prepared = self._prepared[key] = Prepared(build(), self.engine)
        return prepared


def _cursor(conn: Connection) -> Any:
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    return dbapi.cursor()
