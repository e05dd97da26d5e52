"""Statements compiled once per engine and run on the driver's own cursor.

The replay protocol writes a few small statements per API call. Built as SQLAlchemy Core
statements each time, most of their cost is building the statement and its cache key, not
the database; here each is built and compiled once (for the engine's dialect) and then run
with the DBAPI cursor. The journal's transactions run on a connection each thread holds open
(`PreparedStatements.transaction`), checked out of the pool once rather than once per API
call, and begun and committed on the driver itself: SQLAlchemy's transaction and its events
would cost more than the statements.

Only statements whose values need no processing belong here (no type that processes its bind
values); a constant `IN` list is rendered as plain bind values.
"""

from __future__ import annotations

import contextlib
import operator
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from migrate.sqlite import WRITE_BEGIN
from migrate.state.unwritable import raise_if_unwritable


class Prepared:
    """One statement compiled for one dialect; runs with a mapping of its bind values."""

    def __init__(
        self, statement: ClauseElement, engine: Engine, order: Sequence[str] | None = None
    ) -> None:
        compiled = statement.compile(
            dialect=engine.dialect, compile_kwargs={"render_postcompile": True}
        )
        assert isinstance(compiled, SQLCompiler)
        self.sql = compiled.string
        self.defaults = dict(compiled.params)
        self.positional = compiled.positional
        """Whether the driver takes the bind values in order (`execute_in_order`)."""
        names = compiled.positiontup or ()
        if order is not None and self.positional and list(names) != list(order):
            raise ValueError(f"bind values in the order {names}, not {order}")
        self._in_order = in_order(names) if self.positional else None

    def parameters(self, values: Mapping[str, Any]) -> Any:
        merged = {**self.defaults, **values}
        return merged if self._in_order is None else self._in_order(merged)

    def execute(self, cursor: Any, values: Mapping[str, Any]) -> Any:
        """Run on a driver cursor (of `PreparedStatements.transaction` or `reading`);
        returns the cursor (rowcount, fetchall)."""
        cursor.execute(self.sql, self.parameters(values))
        return cursor

    def execute_in_order(self, cursor: Any, values: Sequence[Any]) -> Any:
        """`execute` with every bind value already in the statement's order (the `order` it was
        prepared with), on a positional driver: no mapping built for a statement of many values."""
        cursor.execute(self.sql, values)
        return cursor


def in_order(names: Sequence[str]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """The values of `names`, in that order, as a positional paramstyle takes them."""
    if not names:
        return lambda _values: ()
    if len(names) == 1:
        name = names[0]
        return lambda values: (values[name],)
    return operator.itemgetter(*names)


class _Held(NamedTuple):
    """A thread's own connection, its driver connection and the cursor its statements run on."""

    conn: Connection
    dbapi: Any
    cursor: Any


class PreparedStatements:
    """The prepared statements of one engine, compiled on first use, by key, and the
    connections their transactions run on."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._prepared: dict[Any, Prepared] = {}
        self._local = threading.local()
        self._held: list[Connection] = []
        self._lock = threading.Lock()
        # Every transaction here writes: on SQLite it takes the write lock as it begins, as
        # the engine's own transactions do (`configure_sqlite`); the other drivers begin one
        # with their first statement.
        self._sqlite = engine.dialect.name == "sqlite"
        self._driver_error: type[Exception] = engine.dialect.loaded_dbapi.Error

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Any]:
        """A write transaction on this thread's own connection, held open between
        transactions (the replay protocol runs one or two per API call); yields the driver
        cursor. Committed when the block ends, rolled back if it raises."""
        held = self._hold()
        try:
            if self._sqlite:
                held.cursor.execute(WRITE_BEGIN)
                yield held.cursor
                # The cursor's statement cache prepares COMMIT once; the driver's commit()
                # prepares it again each time. Either ends the transaction the BEGIN opened
                # (the driver opens none of its own: `configure_sqlite`).
                held.cursor.execute("COMMIT")
            else:
                yield held.cursor
                held.dbapi.commit()
        except BaseException as exc:
            self._roll_back(held)
            if isinstance(exc, self._driver_error):
                raise_if_unwritable(self.engine, exc)
            raise

    @contextlib.contextmanager
    def reading(self) -> Iterator[Any]:
        """A driver cursor on a connection from the pool, for reads only (the pool rolls back
        what the driver began when the connection goes back)."""
        with self.engine.connect() as conn:
            cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            try:
                yield cursor
            finally:
                cursor.close()

    def close(self) -> None:
        """Give the held connections back (before the engine is disposed of)."""
        with self._lock:
            held, self._held = self._held, []
        for conn in held:
            conn.close()

    def get(
        self, key: Any, build: Callable[[], ClauseElement], *, order: Sequence[str] | None = None
    ) -> Prepared:
        """The statement prepared under `key`, built and compiled on first use; `order` names
        the bind values in the order a caller of `execute_in_order` passes them (checked
        against the compiled statement)."""
        prepared = self._prepared.get(key)
        if prepared is None:
            prepared = self._prepared[key] = Prepared(build(), self.engine, order)
        return prepared

    def _hold(self) -> _Held:
        held: _Held | None = getattr(self._local, "held", None)
        if held is None or held.conn.closed or held.conn.invalidated:
            conn = self.engine.connect()
            dbapi = conn.connection.dbapi_connection
            assert dbapi is not None
            held = self._local.held = _Held(conn, dbapi, dbapi.cursor())
            with self._lock:
                self._held.append(conn)
        return held

    @staticmethod
    def _roll_back(held: _Held) -> None:
        try:
            held.dbapi.rollback()
        except Exception:
            # The connection is lost or unusable: the next transaction opens another.
            held.conn.invalidate()
