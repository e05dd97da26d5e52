"""Chat history read straight from SQL tables (PostgreSQL, MariaDB/MySQL, SQLite).

`SqlTableSource` reads either a known library schema (`preset`: LangChain, Agents SDK,
LlamaIndex) or any table or SELECT through a column mapping (`adapters.config.SqlSourceConfig`).

How it reads:

- **Read-only.** SQLite is opened with `file:...?mode=ro`; PostgreSQL connections are
  `READ ONLY` (`postgresql_readonly`); MariaDB/MySQL sessions are `SET SESSION TRANSACTION READ
  ONLY` (a `START TRANSACTION READ ONLY` alone lets DDL through: DDL commits implicitly).
  A `query` must be one SELECT (or WITH ... SELECT) and is only ever run as a subquery.
- **Quoted identifiers.** Tables are reflected and columns used as SQLAlchemy objects: no name
  from the configuration is pasted into SQL text.
- **Streaming, stable order.** One query ordered by conversation key, then the order columns
  (then the primary key), read through a server-side cursor in batches of `batch_size`; rows are
  grouped per conversation as they arrive, so memory holds one conversation, not the table.
- **Bad rows fail their conversation.** A row with malformed JSON, NULL content, an unknown role
  or a bad timestamp makes its whole conversation one `SourceFailure` that names the table, the
  row's primary key and every bad row found in it: a conversation with a hole is never migrated
  silently. Rows without a conversation key are reported the same way; the rest goes on.
- **Metadata columns** reach the conversation's metadata: a column with one value in every
  row of the conversation as that value, one that varies as the JSON of `{row id: value}`
  (see `adapters.sql.mapping.conversation_metadata`). The planner fits them to the API's
  limits; what does not fit is a `metadata_truncated` finding carrying the values.
- **Secrets.** The password comes from `password_env` (or the whole URL from `url_env`);
  `describe()` and every error hide it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    URL,
    Column,
    ColumnElement,
    Connection,
    Engine,
    MetaData,
    Numeric,
    Select,
    Table,
    TextClause,
    and_,
    column,
    create_engine,
    func,
    or_,
    select,
    text,
    true,
    type_coerce,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchTableError, SQLAlchemyError
from sqlalchemy.pool import NullPool
from sqlalchemy.sql.expression import ColumnClause, FromClause
from sqlalchemy.types import NullType

from adapters.base import (
    DecodeError,
    SourceOpenError,
    lone_surrogate_paths,
    replace_lone_surrogates,
)
from adapters.chat_messages import Provenance, message_entries
from adapters.config import SqlPreset, SqlSourceConfig
from adapters.model import SourceConversation, SourceFailure, SourceNote, SourceRecord
from adapters.sql.mapping import (
    Decoded,
    column_message_entries,
    conversation_metadata,
    json_object,
    json_safe,
    json_value,
    timestamp_value,
)
from adapters.sql.presets import agents_item_entries, langchain_entries, llamaindex_entries

logger = logging.getLogger(__name__)

__all__ = ["SqlReadError", "SqlTableSource", "check_select", "sql_config_from_cli"]

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
MAX_LISTED_ROWS = 5


class SqlReadError(SourceOpenError):
    """The database failed while the source was being read (connection lost, ...)."""


def sql_config_from_cli(
    url: str,
    *,
    preset: SqlPreset | None = None,
    table: str | None = None,
    **mapping: Any,
) -> SqlSourceConfig:
    """A `SqlSourceConfig` from a command line: URL, preset, table and mapping fields."""
    from pydantic import ValidationError

    try:
        return SqlSourceConfig(url=url, preset=preset, table=table, **mapping)
    except ValidationError as exc:
        raise SourceOpenError(f"invalid SQL source options: {exc}") from None


# --- the user's query --------------------------------------------------------------------------

_LITERALS = re.compile(
    r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|`[^`]*`|--[^\n]*|/\*.*?\*/|\$(\w*)\$.*?\$\1\$""",
    re.DOTALL,
)
# What can change data from inside one SELECT/WITH: data-modifying CTEs, SELECT INTO, locking
# reads. Functions with side effects cannot be seen here; the read-only transaction stops them.
_WRITES = re.compile(
    r"\b(insert|update|delete|merge|into|truncate|drop|alter|create|grant|revoke|call|copy)\b",
    re.IGNORECASE,
)


def check_select(query: str) -> str:
    """Return `query` without a trailing `;` if it is one read-only SELECT or WITH statement."""
    bare = _LITERALS.sub(" ", query)
    body = query.strip()
    if bare.strip().endswith(";"):
        body = body.rstrip().removesuffix(";")
        bare = bare.strip().removesuffix(";")
    words = bare.split()
    if not words or words[0].lower() not in ("select", "with"):
        raise SourceOpenError("`query` must be a single SELECT (or WITH ... SELECT) statement")
    if ";" in bare:
        raise SourceOpenError("`query` must be a single statement; it contains `;`")
    found = _WRITES.search(bare)
    if found:
        raise SourceOpenError(f"`query` must only read; it contains {found.group(0).upper()!r}")
    return body


# --- how rows are read -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Reading:
    """The one statement that streams the rows, and how to turn each row into entries."""

    label: str
    """Table name (or `query`) used in locations and errors."""
    conversation_column: str
    statement: Select[Any]
    key_names: tuple[str, ...]
    """Columns that identify a row in errors (the primary key when known)."""
    decode: Callable[[Mapping[str, Any], Provenance], Decoded]
    source_id_of: Callable[[Mapping[str, Any]], str | None]
    created_at_of: Callable[[Mapping[str, Any]], float | None]
    metadata_of: Callable[[Mapping[str, Any]], dict[str, Any]]
    one_row_per_conversation: bool = False
    conversation_fields: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None
    time_field: str = "created_at"
    """The column `created_at_of` reads, as reports name it."""


_SURROGATE_TEXT = re.compile(r"\\u[dD][89a-fA-F]")


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _replace_escapes(text: str) -> str:
    """JSON text with lone surrogate escapes replaced by U+FFFD escapes (pairs are kept)."""
    return json.dumps(replace_lone_surrogates(json.loads(text)), ensure_ascii=False)


def _sqlite_connect(uri: str) -> sqlite3.Connection:
    connection = sqlite3.connect(uri, uri=True, check_same_thread=False)
    # Text that is not UTF-8 comes back with each bad byte as a lone surrogate, so that one row
    # fails (naming its key) instead of the whole read.
    connection.text_factory = lambda raw: raw.decode("utf-8", "surrogateescape")
    return connection


def _raw(expression: ColumnElement[Any], label: str) -> ColumnElement[Any]:
    # Values come back as the driver gives them: a bad value in one row must not break the
    # fetch of a whole batch inside SQLAlchemy's type processing.
    return type_coerce(expression, NullType()).label(label)


class SqlTableSource:
    """Conversations read from SQL tables, by preset or column mapping, read-only and streaming."""

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

    def read(self) -> Iterator[SourceRecord]:
        """Yield every conversation (or the failure to read one), ordered by conversation key."""
        try:
            with self.connect() as connection:
                reading = self._reading(connection)
                streaming = connection.execution_options(
                    stream_results=True, yield_per=self._config.batch_size
                )
                result = streaming.execute(_subset(reading, self._config))
                for key, rows in _conversation_runs(row._asdict() for row in result):
                    yield self._record(reading, key, rows)
        except SourceOpenError:
            raise
        except SQLAlchemyError as exc:
            raise SqlReadError(self._scrub(f"{self.describe()}: {_first_line(exc)}")) from None

    def count_conversations(self) -> int:
        """How many conversations `read` yields (`where` and `since` applied): one COUNT of
        distinct conversation keys, for a progress bar's total."""
        try:
            with self.connect() as connection:
                statement = _subset(self._reading(connection), self._config)
                key = statement.selected_columns["conversation"]
                keys = statement.with_only_columns(key).order_by(None).distinct().subquery()
                counted = connection.execute(select(func.count()).select_from(keys))
                return int(counted.scalar_one())
        except SQLAlchemyError as exc:
            raise SqlReadError(self._scrub(f"{self.describe()}: {_first_line(exc)}")) from None

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

    def _checked_text(
        self, row: Mapping[str, Any], position: str
    ) -> tuple[Mapping[str, Any], list[SourceNote]]:
        """The row, or DecodeError for text that is not UTF-8 (SQLite) or holds a lone surrogate
        escape (JSON columns); under `lone_surrogates = "replace"` the row with U+FFFD instead."""
        bad = [
            label
            for label, value in row.items()
            if isinstance(value, str) and (_SURROGATE_TEXT.search(value) or not _encodable(value))
        ]
        if not bad:
            return row, []
        problems = []
        for label in bad:
            value = row[label]
            if not _encodable(value):
                problems.append(f"column {label} is not valid UTF-8 text")
                continue
            try:
                parsed = json.loads(value)
            except (ValueError, RecursionError):
                continue
            if lone_surrogate_paths(parsed):
                problems.append(f"column {label} holds a lone UTF-16 surrogate escape")
        if not problems:
            return row, []
        if self._config.lone_surrogates == "fail":
            raise DecodeError(
                "invalid_text",
                "; ".join(problems) + " (lone_surrogates = 'replace' migrates it with U+FFFD)",
            )
        repaired: dict[str, Any] = dict(row)
        for label in bad:
            value = row[label]
            if not _encodable(value):
                repaired[label] = replace_lone_surrogates(value)
            else:
                repaired[label] = _replace_escapes(value)
        note = SourceNote(
            code="lone_surrogate_replaced",
            message=f"{position}: " + "; ".join(problems) + "; replaced by U+FFFD",
            count=len(problems),
        )
        return repaired, [note]

    def _scrub(self, message: str) -> str:
        password = self._url.password
        if not password:
            return message
        for secret in {str(password), urllib.parse.quote_plus(str(password))}:
            message = message.replace(secret, "***")
        return message

    # --- the statement for each kind of source ---

    def _reading(self, connection: Connection) -> _Reading:
        match self._config.preset:
            case "langchain":
                return self._langchain(connection)
            case "agents-sdk":
                return self._agents_sdk(connection)
            case "llamaindex":
                return self._llamaindex(connection)
            case None:
                return self._mapping(connection)

    def _table(self, connection: Connection, name: str, needed: Iterable[str]) -> Table:
        schema = self._config.schema_name
        try:
            table = Table(name, MetaData(), schema=schema, autoload_with=connection)
        except NoSuchTableError:
            where = f" in schema {schema!r}" if schema else ""
            raise SourceOpenError(f"{self.describe()}: no table {name!r}{where}") from None
        except SQLAlchemyError as exc:
            message = f"{self.describe()}: cannot read table {name!r}: {_first_line(exc)}"
            raise SourceOpenError(self._scrub(message)) from None
        missing = [column_name for column_name in needed if column_name not in table.c]
        if missing:
            raise SourceOpenError(
                f"{self.describe()}: table {name!r} has no column {', '.join(map(repr, missing))}"
                f" (columns: {', '.join(table.c.keys())})"
            )
        return table

    def _langchain(self, connection: Connection) -> _Reading:
        name = self._config.table or "message_store"
        key = self._config.conversation_column or "session_id"
        table = self._table(connection, name, ("id", key, "message"))
        statement = select(
            _raw(table.c.id, "id"), _raw(table.c[key], "conversation"), _raw(table.c.message, "m")
        ).order_by(table.c[key], table.c.id)

        def decode(values: Mapping[str, Any], info: Provenance) -> Decoded:
            return langchain_entries(json_value(values["m"], "message"), info)

        return _Reading(
            label=name,
            conversation_column=key,
            statement=statement,
            key_names=("id",),
            decode=decode,
            source_id_of=lambda values: _text(values["id"]),
            created_at_of=lambda values: None,
            metadata_of=lambda values: {},
        )

    def _agents_sdk(self, connection: Connection) -> _Reading:
        name = self._config.table or "agent_messages"
        messages = self._table(connection, name, ("id", "session_id", "message_data"))
        sessions_name = self._config.sessions_table or "agent_sessions"
        try:
            sessions: Table | None = self._table(connection, sessions_name, ("session_id",))
        except SourceOpenError:
            logger.info("no %s table; sessions are read from %s alone", sessions_name, name)
            sessions = None
        columns = [
            _raw(messages.c.id, "id"),
            _raw(messages.c.session_id, "conversation"),
            _raw(messages.c.message_data, "m"),
        ]
        if "created_at" in messages.c:
            columns.append(_raw(messages.c.created_at, "ts"))
        source: FromClause = messages
        session_columns = [
            name
            for name in ("created_at", "updated_at")
            if sessions is not None and name in sessions.c
        ]
        if sessions is not None and session_columns:
            columns += [_raw(sessions.c[name], f"session_{name}") for name in session_columns]
            source = messages.outerjoin(sessions, messages.c.session_id == sessions.c.session_id)
        # `id` is the insertion order both SQLiteSession and SQLAlchemySession read back.
        statement = (
            select(*columns).select_from(source).order_by(messages.c.session_id, messages.c.id)
        )

        def decode(values: Mapping[str, Any], info: Provenance) -> Decoded:
            return agents_item_entries(json_value(values["m"], "message_data"), info)

        def conversation_fields(values: Mapping[str, Any]) -> dict[str, Any]:
            fields: dict[str, Any] = {}
            try:
                raw = values.get("session_created_at")
                fields["created_at"] = timestamp_value(raw, f"{sessions_name}.created_at")
            except DecodeError:
                pass
            updated = values.get("session_updated_at")
            if updated is not None:
                # The session's last write: the API keeps no such time, so it rides in metadata.
                fields["metadata"] = {"session_updated_at": json_safe(updated)}
            return fields

        return _Reading(
            label=name,
            conversation_column="session_id",
            statement=statement,
            key_names=("id",),
            decode=decode,
            source_id_of=lambda values: _text(values["id"]),
            created_at_of=lambda values: timestamp_value(values.get("ts"), "created_at"),
            metadata_of=lambda values: {},
            conversation_fields=conversation_fields,
        )

    def _llamaindex(self, connection: Connection) -> _Reading:
        name = self._config.table or "llama_index_memory"
        table = self._table(connection, name, ("id", "key", "timestamp", "role", "data"))
        columns = [
            _raw(table.c.id, "id"),
            _raw(table.c.key, "conversation"),
            _raw(table.c.timestamp, "ts"),
            _raw(table.c.role, "role"),
            _raw(table.c.data, "m"),
        ]
        if "status" in table.c:
            columns.append(_raw(table.c.status, "status"))
        statement = select(*columns).order_by(table.c.key, table.c.timestamp, table.c.id)

        def decode(values: Mapping[str, Any], info: Provenance) -> Decoded:
            message = json_value(values["m"], "data")
            return llamaindex_entries(message, info, row_role=values["role"])

        def metadata_of(values: Mapping[str, Any]) -> dict[str, Any]:
            status = values.get("status")
            # Archived rows are history the memory no longer sends to the model: kept, marked.
            return {"status": status} if status not in (None, "active") else {}

        return _Reading(
            label=name,
            conversation_column="key",
            statement=statement,
            key_names=("id",),
            decode=decode,
            source_id_of=lambda values: _text(values["id"]),
            created_at_of=lambda values: timestamp_value(values["ts"], "timestamp"),
            metadata_of=metadata_of,
            time_field="timestamp",
        )

    def _mapping(self, connection: Connection) -> _Reading:
        config = self._config
        assert config.conversation_column is not None  # checked by SqlSourceConfig
        roles = {
            "conversation": config.conversation_column,
            "role": config.role_column,
            "content": config.content_column,
            "message_id": config.message_id_column,
            "ts": config.timestamp_column,
            "tool_calls": config.tool_calls_column,
            "tool_call_id": config.tool_call_id_column,
            "name": config.name_column,
            "message_json": config.message_json_column,
            "messages_json": config.messages_json_column,
        }
        used = {label: name for label, name in roles.items() if name}
        metadata = {f"meta_{index}": name for index, name in enumerate(config.metadata_columns)}
        wanted = [*used.values(), *metadata.values(), *config.order_columns]
        columns: Mapping[str, ColumnElement[Any]]
        if config.query is not None:
            query = check_select(config.query)
            names = list(dict.fromkeys(wanted))
            clauses: list[ColumnClause[Any]] = [column(name) for name in names]
            subquery = text(query).columns(*clauses).subquery("source_rows")
            columns = {name: subquery.c[name] for name in names}
            key_names: tuple[str, ...] = (
                (config.message_id_column,) if config.message_id_column else config.order_columns
            )
            order_extra: list[ColumnElement[Any]] = []
            label = "query"
        else:
            assert config.table is not None  # checked by SqlSourceConfig
            table = self._table(connection, config.table, dict.fromkeys(wanted))
            columns = {col.key: col for col in table.c}
            primary: Sequence[Column[Any]] = list(table.primary_key.columns)
            key_names = tuple(c.name for c in primary) or (
                (config.message_id_column,) if config.message_id_column else config.order_columns
            )
            order_extra = list(primary)
            label = config.table
        selected = [_raw(columns[name], label) for label, name in used.items()]
        selected += [_raw(columns[name], label) for label, name in metadata.items()]
        selected += [_raw(columns[name], f"key_{index}") for index, name in enumerate(key_names)]
        order = [columns[config.conversation_column]]
        order += [columns[name] for name in config.order_columns]
        if config.message_id_column and not config.order_columns:
            order.append(columns[config.message_id_column])
        order += [extra for extra in order_extra if not any(extra is o for o in order)]
        statement = select(*selected).order_by(*order)
        decode = self._mapping_decoder()

        def source_id_of(values: Mapping[str, Any]) -> str | None:
            if "message_id" in values:
                return _text(values["message_id"])
            return "/".join(str(values[f"key_{i}"]) for i in range(len(key_names))) or None

        def created_at_of(values: Mapping[str, Any]) -> float | None:
            if "ts" not in values:
                return None
            return timestamp_value(values["ts"], str(config.timestamp_column))

        def metadata_of(values: Mapping[str, Any]) -> dict[str, Any]:
            return {name: json_safe(values[label]) for label, name in metadata.items()}

        return _Reading(
            label=label,
            conversation_column=config.conversation_column,
            statement=statement,
            key_names=key_names,
            decode=decode,
            source_id_of=source_id_of,
            created_at_of=created_at_of,
            metadata_of=metadata_of,
            one_row_per_conversation=config.messages_json_column is not None,
            time_field=config.timestamp_column or "created_at",
        )

    def _mapping_decoder(self) -> Callable[[Mapping[str, Any], Provenance], Decoded]:
        config = self._config
        if config.message_json_column:
            column_name = config.message_json_column

            def decode_message(values: Mapping[str, Any], info: Provenance) -> Decoded:
                message = json_object(values["message_json"], column_name)
                decoded = Decoded()
                decoded.entries = message_entries(message, info, decoded.notes)
                return decoded

            return decode_message
        if config.messages_json_column:
            column_name = config.messages_json_column

            def decode_messages(values: Mapping[str, Any], info: Provenance) -> Decoded:
                messages = json_value(values["messages_json"], column_name)
                if not isinstance(messages, list):
                    raise DecodeError(
                        "unexpected_json", f"column {column_name} is not a JSON array"
                    )
                decoded = Decoded()
                for index, message in enumerate(messages):
                    if not isinstance(message, dict):
                        raise DecodeError("unexpected_json", f"message {index} is not an object")
                    at = Provenance(
                        position=f"{info.position} message {index}",
                        source_id=_text(message.get("id")) or f"{info.source_id}:{index}",
                        created_at=info.created_at,
                        metadata=info.metadata,
                        number_calls=False,
                    )
                    decoded.entries.extend(message_entries(message, at, decoded.notes))
                return decoded

            return decode_messages

        content_column = str(config.content_column)

        def decode_columns(values: Mapping[str, Any], info: Provenance) -> Decoded:
            content = values["content"]
            if config.content_json or not isinstance(content, str | None):
                content = json_value(content, content_column)
            message = {
                "role": values["role"],
                "content": content,
                "tool_calls": json_value(values.get("tool_calls"), str(config.tool_calls_column)),
                "tool_call_id": _text(values.get("tool_call_id")),
                "name": _text(values.get("name")),
            }
            decoded = Decoded()
            decoded.entries = column_message_entries(message, info, decoded.notes)
            return decoded

        return decode_columns

    # --- rows to records ---

    def _record(
        self, reading: _Reading, key: str | None, rows: list[Mapping[str, Any]]
    ) -> SourceRecord:
        label, column_name = reading.label, reading.conversation_column
        if key is None:
            keys = ", ".join(_row_key(reading, row) for row in rows[:MAX_LISTED_ROWS])
            more = f" and {len(rows) - MAX_LISTED_ROWS} more" if len(rows) > MAX_LISTED_ROWS else ""
            return SourceFailure(
                source_kind=self._source_kind,
                location=f"{label} {_row_key(reading, rows[0])}",
                code="null_conversation_key",
                message=f"{len(rows)} row(s) of {label} have a NULL {column_name}: {keys}{more}",
            )
        location = f"{label} {column_name}={key}"
        if reading.one_row_per_conversation and len(rows) > 1:
            keys = ", ".join(_row_key(reading, row) for row in rows[:MAX_LISTED_ROWS])
            return SourceFailure(
                source_kind=self._source_kind,
                location=f"{label} {_row_key(reading, rows[0])}",
                code="duplicate_conversation_key",
                message=f"conversation {key!r} of {label} is in {len(rows)} rows ({keys}); "
                f"{column_name} must identify one row",
                conversation_id=key,
            )
        decoded = Decoded()
        problems: list[tuple[Mapping[str, Any], DecodeError]] = []
        row_metadata: list[tuple[str, Mapping[str, Any]]] = []
        for row in rows:
            try:
                row_key = _row_key(reading, row)
                position = f"{label} {row_key}"
                # Text is checked (and repaired by policy) before any value is taken from it.
                row, repairs = self._checked_text(row, position)
                info = Provenance(
                    position=position,
                    source_id=reading.source_id_of(row),
                    created_at=reading.created_at_of(row),
                    metadata=reading.metadata_of(row),
                    number_calls=False,
                )
                row_metadata.append((info.source_id or row_key, info.metadata))
                row_decoded = reading.decode(row, info)
                row_decoded.notes.extend(repairs)
            except DecodeError as exc:
                problems.append((row, exc))
                continue
            decoded.entries.extend(row_decoded.entries)
            decoded.notes.extend(row_decoded.notes)
        if problems:
            return self._failure(reading, key, problems, len(rows))
        fields = reading.conversation_fields(rows[0]) if reading.conversation_fields else {}
        if fields.get("created_at") is None:
            fields["created_at"] = next(
                (entry.created_at for entry in decoded.entries if entry.created_at is not None),
                None,
            )
        return SourceConversation(
            source_kind=self._source_kind,
            id=key,
            location=location,
            entries=decoded.entries,
            notes=decoded.notes,
            metadata={**fields.pop("metadata", {}), **conversation_metadata(row_metadata)},
            entry_time_field=reading.time_field,
            **fields,
        )

    def _failure(
        self,
        reading: _Reading,
        key: str,
        problems: list[tuple[Mapping[str, Any], DecodeError]],
        total: int,
    ) -> SourceFailure:
        label = reading.label
        listed = "; ".join(
            f"{label} {_row_key(reading, row)}: {error.message}"
            for row, error in problems[:MAX_LISTED_ROWS]
        )
        more = len(problems) - MAX_LISTED_ROWS
        first_row, first_error = problems[0]
        logger.debug("conversation %s of %s failed: %s", key, label, listed)
        return SourceFailure(
            source_kind=self._source_kind,
            location=f"{label} {_row_key(reading, first_row)}",
            code=first_error.code,
            message=f"conversation {key!r} ({reading.conversation_column}={key}) of {label}: "
            f"{len(problems)} of {total} row(s) unreadable, so the conversation is not "
            f"migrated: {listed}" + (f"; and {more} more" if more > 0 else ""),
            conversation_id=key,
        )


def _subset(reading: _Reading, config: SqlSourceConfig) -> Select[Any]:
    """The reading's statement cut to the conversations `where` and `since` select.

    A conversation is read whole or not at all: the conditions pick conversation keys, and
    every row of a picked conversation is read.
    """
    statement = reading.statement
    conditions: list[ColumnElement[bool] | TextClause] = []
    if config.where is not None:
        if ";" in config.where:
            raise SourceOpenError("`where` must be one SQL condition; it contains `;`")
        conditions.append(text(config.where))
    if config.since is not None:
        if "ts" not in statement.selected_columns:
            raise SourceOpenError(
                f"`since` needs a timestamp column, and {reading.label} has none"
                + ("" if config.preset else " (set `timestamp_column`)")
            )
        conditions.append(_not_before(statement.selected_columns["ts"], config.since))
    if not conditions:
        return statement
    key = statement.selected_columns["conversation"]
    picked = statement.with_only_columns(key).order_by(None).where(*conditions).correlate(None)
    return statement.where(key.in_(picked))


def _not_before(labelled: ColumnElement[Any], since: datetime) -> ColumnElement[bool]:
    """`column >= since`, with `since` in the column's own representation: an epoch number,
    a datetime, or text in the form `YYYY-MM-DD HH:MM:SS` (UTC)."""
    column_expression = getattr(getattr(labelled, "element", None), "clause", labelled)
    moment = since if since.tzinfo else since.replace(tzinfo=UTC)
    python_type: type | None
    try:
        python_type = column_expression.type.python_type
    except NotImplementedError:
        python_type = None
    if python_type in (int, float) or isinstance(column_expression.type, Numeric):
        # Epochs in s, ms, us or ns, told apart by magnitude as `timestamp_value` does.
        seconds = moment.timestamp()
        scales = ((0, 1e11, 1), (1e11, 1e14, 1e3), (1e14, 1e17, 1e6), (1e17, None, 1e9))
        return or_(
            *(
                and_(
                    column_expression >= low,
                    true() if high is None else column_expression < high,
                    column_expression >= int(seconds * scale),
                )
                for low, high, scale in scales
            )
        )
    if python_type is datetime:
        naive = getattr(column_expression.type, "timezone", False) is False
        return column_expression >= (
            moment.astimezone(UTC).replace(tzinfo=None) if naive else moment
        )
    return column_expression >= moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _conversation_runs(
    rows: Iterable[Mapping[str, Any]],
) -> Iterator[tuple[str | None, list[Mapping[str, Any]]]]:
    """Group rows ordered by conversation key into conversations.

    Keys that differ only by case or trailing spaces can be interleaved when the database
    collation treats them as equal (MariaDB's default): rows within such a run are grouped by
    exact key, so each conversation still comes out whole, in its order.
    """
    run_token: object = object()
    groups: dict[str | None, list[Mapping[str, Any]]] = {}
    for row in rows:
        key = _text(row["conversation"])
        token = key.casefold().rstrip(" ") if key is not None else None
        if token != run_token:
            yield from groups.items()
            groups = {}
            run_token = token
        groups.setdefault(key, []).append(row)
    yield from groups.items()


def _row_key(reading: _Reading, row: Mapping[str, Any]) -> str:
    if reading.key_names == ("id",) and "id" in row:
        return f"id={row['id']}"
    pairs = [f"{name}={row.get(f'key_{index}')}" for index, name in enumerate(reading.key_names)]
    return ", ".join(pairs) or "(row without a key)"


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


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
