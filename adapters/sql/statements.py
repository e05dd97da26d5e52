"""The one statement each kind of SQL source is read with (a preset's tables, a column mapping
or a query), cut to the conversations `where` and `since` select."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    MetaData,
    Numeric,
    Select,
    Table,
    TextClause,
    and_,
    column,
    or_,
    select,
    text,
    true,
    type_coerce,
)
from sqlalchemy.exc import NoSuchTableError, SQLAlchemyError
from sqlalchemy.sql.expression import ColumnClause, FromClause
from sqlalchemy.types import NullType

from adapters.base import DecodeError, SourceOpenError
from adapters.chat_messages import Provenance, message_entries
from adapters.config import SqlSourceConfig
from adapters.sql.connection import SqlConnector, _first_line, logger
from adapters.sql.mapping import (
    Decoded,
    column_message_entries,
    json_object,
    json_safe,
    json_value,
    timestamp_value,
)
from adapters.sql.presets import agents_item_entries, langchain_entries, llamaindex_entries

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


def _raw(expression: ColumnElement[Any], label: str) -> ColumnElement[Any]:
    # Values come back as the driver gives them: a bad value in one row must not break the
    # fetch of a whole batch inside SQLAlchemy's type processing.
    return type_coerce(expression, NullType()).label(label)


class SqlStatements(SqlConnector):
    """Builds the reading for the configured preset or mapping; the base of `SqlTableSource`."""

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


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)
