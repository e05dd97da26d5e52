"""Statements compiled once per engine and run on the driver's own cursor.

The replay protocol writes a few small statements per API call. Built as SQLAlchemy Core
statements each time, most of their cost is building the statement and its cache key, not
the database; here each is built and compiled once (for the engine's dialect, with named
bind parameters) and then executed with the DBAPI cursor of the connection SQLAlchemy holds,
inside the transaction `engine.begin()` opened. So transactions, `BEGIN IMMEDIATE` on SQLite
and the connection pool stay SQLAlchemy's; only statement construction is skipped.

Only statements without expanding parameters (`IN` lists) and with plain values (no type
that processes its bind values) belong here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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
    """The prepared statements of one engine, compiled on first use, by key."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._prepared: dict[Any, Prepared] = {}

    def get(self, key: Any, build: Callable[[], ClauseElement]) -> Prepared:
        prepared = self._prepared.get(key)
        if prepared is None:
            prepared = self._prepared[key] = Prepared(build(), self.engine)
        return prepared


def _cursor(conn: Connection) -> Any:
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    return dbapi.cursor()
