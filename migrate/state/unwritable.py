"""The one mapping from "the job's state cannot be written" to `StateWriteError`.

A full disk or a read-only file surfaces as many different errors: SQLite's "database or disk
is full" and "attempt to write a readonly database", PostgreSQL's `disk_full` and
`read_only_sql_transaction`, MariaDB's "disk full" and `--read-only`, and `OSError` (ENOSPC,
EROFS, EACCES) for the job's files. `state_write_error` turns each into a `StateWriteError`
that names what to free or fix; the state store's engine raises it in place of the database
error (`map_write_errors`); the job's own files are written inside `files_written`
(`migrate.errors`).
"""

from __future__ import annotations

import weakref

from sqlalchemy import Engine, event
from sqlalchemy.engine import ExceptionContext

from migrate.errors import StateWriteCause, state_write_error

_SQLITE_MESSAGES: dict[str, StateWriteCause] = {
    "database or disk is full": "full",
    "attempt to write a readonly database": "read-only",
    "unable to open database file": "read-only",
}
_SQLSTATES: dict[str, StateWriteCause] = {
    "53100": "full",  # disk_full
    "25006": "read-only",  # read_only_sql_transaction
}
_MYSQL_CODES: dict[int, StateWriteCause] = {
    1021: "full",  # ER_DISK_FULL
    1114: "full",  # ER_RECORD_FILE_FULL
    1036: "read-only",  # ER_OPEN_AS_READONLY
    1290: "read-only",  # ER_OPTION_PREVENTS_STATEMENT (--read-only)
    1792: "read-only",  # ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION
}
_PLACES: weakref.WeakKeyDictionary[Engine, str] = weakref.WeakKeyDictionary()
"""What each store's engine writes to, as its errors name it."""


def database_cause(error: BaseException) -> StateWriteCause | None:
    """Why a database driver's error means the store cannot be written (None: another error)."""
    sqlstate = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    if isinstance(sqlstate, str) and sqlstate in _SQLSTATES:
        return _SQLSTATES[sqlstate]
    args = getattr(error, "args", ())
    if args and isinstance(args[0], int) and args[0] in _MYSQL_CODES:
        return _MYSQL_CODES[args[0]]
    text = str(error).lower()
    return next((cause for key, cause in _SQLITE_MESSAGES.items() if key in text), None)


def map_write_errors(engine: Engine, where: str) -> None:
    """Have `engine` raise `StateWriteError` in place of a "full" or "read-only" error."""
    _PLACES[engine] = where

    @event.listens_for(engine, "handle_error")
    def _unwritable(context: ExceptionContext) -> None:
        cause = database_cause(context.original_exception)
        if cause is not None:
            raise state_write_error(cause, where, str(context.original_exception)) from (
                context.sqlalchemy_exception or context.original_exception
            )


def raise_if_unwritable(engine: Engine, error: Exception) -> None:
    """For statements run on the driver's own cursor (no SQLAlchemy error handling there):
    raise `StateWriteError` if the driver's `error` means the store cannot be written."""
    cause = database_cause(error)
    if cause is not None:
        where = _PLACES.get(engine, "the state store")
        raise state_write_error(cause, where, str(error)) from error
