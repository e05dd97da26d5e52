"""Where a SQL source is and how it is opened: its URL (the password from the environment), a
read-only engine and connection, and messages with the password scrubbed out."""

from __future__ import annotations

import logging
import os
import sqlite3
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import URL, Connection, Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from adapters.base import SourceOpenError
from adapters.config import SqlPreset, SqlSourceConfig

logger = logging.getLogger("adapters.sql.tables")
"""Every part of the SQL reader logs under one name, the reader's (`adapters.sql.tables`)."""

SOURCE_KINDS: dict[SqlPreset | None, str] = {
    None: "sql",
    "langchain": "langchain",
    "agents-sdk": "agents_sdk",
    "llamaindex": "llamaindex",
}
DRIVERS = {
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mysql+pymysql",
    "sqlite": "sqlite",
}
"""Plain dialect names mapped to the drivers this package installs."""


def _sqlite_connect(uri: str) -> sqlite3.Connection:
    connection = sqlite3.connect(uri, uri=True, check_same_thread=False)
    # Text that is not UTF-8 comes back with each bad byte as a lone surrogate, so that one row
    # fails (naming its key) instead of the whole read.
    connection.text_factory = lambda raw: raw.decode("utf-8", "surrogateescape")
    return connection


class SqlConnector:
    """A SQL source's URL and read-only connections to it; the base of `SqlTableSource`."""

    def __init__(self, config: SqlSourceConfig) -> None:
        self._config = config
        self._url = _resolve_url(config)
        self._source_kind = SOURCE_KINDS[config.preset]
        if self._url.password and config.url is not None and config.password_env is None:
            logger.warning("the source URL holds a password; prefer password_env or url_env")

    def describe(self) -> str:
        """The source kind, URL (password hidden) and what is read."""
        config = self._config
        what = config.preset or "mapping"
        target = "query" if config.query is not None else (config.table or "default tables")
        url = self._url.render_as_string(hide_password=True)
        return f"SQL {what} source {url} ({target})"

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A read-only connection to the source database."""
        engine = self._engine()
        try:
            try:
                connection = engine.connect()
            except SQLAlchemyError as exc:
                message = f"cannot connect to {self.describe()}: {_first_line(exc)}"
                raise SourceOpenError(self._scrub(message)) from None
            with connection:
                if engine.dialect.name == "postgresql":
                    connection = connection.execution_options(postgresql_readonly=True)
                elif engine.dialect.name in ("mysql", "mariadb"):
                    # The session setting also covers DDL, which would otherwise commit the
                    # read-only transaction implicitly and run outside it.
                    connection.exec_driver_sql("SET SESSION TRANSACTION READ ONLY")
                    connection.exec_driver_sql("START TRANSACTION READ ONLY")
                yield connection
        finally:
            engine.dispose()

    # --- engine and URL ---

    def _engine(self) -> Engine:
        url = self._url
        if url.get_backend_name() != "sqlite":
            return create_engine(url, poolclass=NullPool)
        database = url.database
        if not database or database == ":memory:":
            raise SourceOpenError(f"{self.describe()}: a SQLite source needs a database file")
        path = os.path.abspath(database)
        if not os.path.exists(path):
            raise SourceOpenError(f"{self.describe()}: no such database file {path}")
        uri = f"file:{urllib.request.pathname2url(path)}?mode=ro"
        return create_engine(
            "sqlite://",
            creator=lambda: _sqlite_connect(uri),
            poolclass=NullPool,
        )

    def _scrub(self, message: str) -> str:
        password = self._url.password
        if not password:
            return message
        for secret in {str(password), urllib.parse.quote_plus(str(password))}:
            message = message.replace(secret, "***")
        return message


def _first_line(exc: BaseException) -> str:
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _resolve_url(config: SqlSourceConfig) -> URL:
    if config.url_env is not None:
        raw = os.environ.get(config.url_env)
        if not raw:
            raise SourceOpenError(f"environment variable {config.url_env} is not set")
        origin = f"environment variable {config.url_env}"
    else:
        raw = str(config.url)
        origin = "url"
    try:
        url = make_url(raw)
    except ArgumentError:
        # The text may hold a password: name where it came from, not what it is.
        raise SourceOpenError(f"{origin} is not a database URL") from None
    if config.password_env is not None:
        password = os.environ.get(config.password_env)
        if password is None:
            raise SourceOpenError(f"environment variable {config.password_env} is not set")
        url = url.set(password=password)
    backend, _, driver = url.drivername.partition("+")
    if backend not in DRIVERS:
        raise SourceOpenError(
            f"unsupported database {backend!r} in {url.render_as_string(hide_password=True)}"
            " (PostgreSQL, MariaDB/MySQL and SQLite are supported)"
        )
    if not driver:
        url = url.set(drivername=DRIVERS[backend])
    elif backend in ("postgres", "mariadb"):
        url = url.set(drivername=f"{DRIVERS[backend].partition('+')[0]}+{driver}")
    return url
