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
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from adapters.base import (
    DecodeError,
    SourceOpenError,
    lone_surrogate_paths,
    replace_lone_surrogates,
)
from adapters.chat_messages import Provenance
from adapters.config import SqlPreset, SqlSourceConfig
from adapters.model import SourceConversation, SourceFailure, SourceNote, SourceRecord
from adapters.sql.connection import _first_line, logger
from adapters.sql.mapping import Decoded, conversation_metadata
from adapters.sql.statements import SqlStatements, _Reading, _subset, _text, check_select

__all__ = ["SqlReadError", "SqlTableSource", "check_select", "sql_config_from_cli"]

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


class SqlTableSource(SqlStatements):
    """Conversations read from SQL tables, by preset or column mapping, read-only and streaming."""

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
