"""Databases for the SQL source tests: SQLite files, and throwaway PostgreSQL and MariaDB schemas.

`database` is parametrized over the three engines. PostgreSQL and MariaDB get a fresh, uniquely
named schema (PostgreSQL `test_<hex>` in db `test`) or database (MariaDB `test_<hex>`) per test
session, dropped at the end; each test's tables are dropped after it. An unreachable server
skips its tests, except under `CI=true`, where it fails them.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    insert,
    text,
)
from sqlalchemy.exc import SQLAlchemyError

from adapters.config import SqlSourceConfig
from tests.databases import unreachable

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "sql"
POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
MARIADB_URL = "mysql+pymysql://root@127.0.0.1:3306"

ENGINES = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    pytest.param("mariadb", id="mariadb", marks=pytest.mark.mariadb),
]


@dataclass
class Database:
    """A database the test writes through `engine` and the source reads through `url`."""

    kind: str
    engine: Engine
    url: str
    schema: str | None = None

    def config(self, **fields: Any) -> SqlSourceConfig:
        """A source config for this database (URL, and schema on PostgreSQL)."""
        if self.schema is not None:
            fields.setdefault("schema", self.schema)
        return SqlSourceConfig(url=self.url, **fields)

    def metadata(self) -> MetaData:
        return MetaData(schema=self.schema)

    def run_script(self, path: Path) -> None:
        """Run a `;`-separated SQL file (the samples) statement by statement."""
        statements = [
            statement.strip()
            for statement in path.read_text(encoding="utf-8").split(";\n")
            if statement.strip() and not _only_comments(statement)
        ]
        with self.engine.begin() as connection:
            cursor = connection.connection.cursor()
            if self.kind == "postgres":
                cursor.execute(f"SET search_path TO {self.schema}")
            elif self.kind == "mariadb":
                cursor.execute("SET SESSION sql_mode = 'ANSI_QUOTES,NO_BACKSLASH_ESCAPES'")
            for statement in statements:
                cursor.execute(statement.removesuffix(";"))
            if self.kind == "mariadb":
                cursor.execute("SET SESSION sql_mode = DEFAULT")

    def insert(self, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
        """Create `table` if needed and insert `rows` (dict and list values as JSON text)."""
        table.create(self.engine, checkfirst=True)
        if not rows:
            return
        # Every row gets every column: an executemany takes its columns from the first row.
        encoded = [
            {
                name: json.dumps(value, ensure_ascii=False)
                if isinstance(value := row.get(name), dict | list)
                else value
                for name in table.c.keys()  # noqa: SIM118 (names, not columns)
            }
            for row in rows
        ]
        with self.engine.begin() as connection:
            connection.execute(insert(table), encoded)


def _only_comments(statement: str) -> bool:
    return all(not line.strip() or line.strip().startswith("--") for line in statement.splitlines())


@pytest.fixture(scope="session")
def postgres_schema() -> Iterator[str]:
    """A fresh schema in PostgreSQL db `test`, dropped after the session."""
    engine = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
    schema = f"test_{secrets.token_hex(6)}"
    try:
        with engine.begin() as connection:
            connection.execute(text(f"CREATE SCHEMA {schema}"))
    except SQLAlchemyError as exc:
        engine.dispose()
        unreachable("PostgreSQL on 127.0.0.1:5432", exc)
    yield schema
    with engine.begin() as connection:
        connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    engine.dispose()


@pytest.fixture(scope="session")
def mariadb_database() -> Iterator[str]:
    """A fresh MariaDB database, dropped after the session."""
    engine = create_engine(MARIADB_URL, connect_args={"connect_timeout": 3})
    name = f"test_{secrets.token_hex(6)}"
    try:
        with engine.begin() as connection:
            connection.execute(
                text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
            )
    except SQLAlchemyError as exc:
        engine.dispose()
        unreachable("MariaDB on 127.0.0.1:3306", exc)
    yield name
    with engine.begin() as connection:
        connection.execute(text(f"DROP DATABASE {name}"))
    engine.dispose()


@pytest.fixture(params=ENGINES)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """An empty database on each engine; tables the test creates are dropped afterwards."""
    kind: str = request.param
    if kind == "sqlite":
        path = tmp_path / "chat.db"
        engine = create_engine(f"sqlite:///{path}")
        yield Database(kind, engine, f"sqlite:///{path}")
        engine.dispose()
        return
    if kind == "postgres":
        schema: str = request.getfixturevalue("postgres_schema")
        engine = create_engine(POSTGRES_URL)
        db = Database(kind, engine, "postgresql://postgres@127.0.0.1:5432/test", schema)
    else:
        name: str = request.getfixturevalue("mariadb_database")
        engine = create_engine(f"{MARIADB_URL}/{name}?charset=utf8mb4")
        db = Database(kind, engine, f"mariadb://root@127.0.0.1:3306/{name}")
    yield db
    metadata = MetaData(schema=db.schema)
    metadata.reflect(engine)
    metadata.drop_all(engine)
    engine.dispose()


# --- tables ----------------------------------------------------------------------------------


def chat_messages_table(metadata: MetaData, name: str = "chat_messages") -> Table:
    """The generic one-row-per-message table (same shape as samples/sql/generic.sql)."""
    return Table(
        name,
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("conversation_id", String(64)),
        Column("created_at", String(40)),
        Column("role", String(16)),
        Column("content", Text),
        Column("tool_calls", Text),
        Column("tool_call_id", String(64)),
        Column("author", String(64)),
        Column("channel", String(32)),
    )


def message_json_table(metadata: MetaData, name: str = "chat_json") -> Table:
    """A table with one JSON column per row: a message, or a whole messages array."""
    return Table(
        name,
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("thread", String(64)),
        Column("body", Text),
    )


def langchain_table(metadata: MetaData) -> Table:
    return Table(
        "message_store",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("session_id", String(255)),
        Column("message", Text),
    )


def agents_tables(metadata: MetaData) -> tuple[Table, Table]:
    sessions = Table(
        "agent_sessions",
        metadata,
        Column("session_id", String(255), primary_key=True),
        Column("created_at", String(40)),
        Column("updated_at", String(40)),
    )
    prefix = f"{metadata.schema}." if metadata.schema else ""
    messages = Table(
        "agent_messages",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("session_id", String(255), ForeignKey(f"{prefix}agent_sessions.session_id")),
        Column("message_data", Text),
        Column("created_at", String(40)),
    )
    return sessions, messages


def llamaindex_table(metadata: MetaData) -> Table:
    return Table(
        "llama_index_memory",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("key", String(255)),
        Column("timestamp", BigInteger),
        Column("role", String(32)),
        Column("status", String(16)),
        Column("data", Text),
    )
