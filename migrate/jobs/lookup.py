"""Lookup and export of the ledger: where each source conversation went, for the app.

`lookup` answers from the ledger and from the store's current job (whose results join the
ledger when the next job starts), for every target the store has written to.
`export_ledger_csv` and `export_ledger_table` write the whole map, the latter as a table in a
database the user names, ready for an `UPDATE ... FROM` join.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from pathlib import Path

from sqlalchemy import Boolean, Column, Float, Integer, MetaData, String, Table, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from migrate.errors import ConfigError, JobError
from migrate.jobs.directory import open_job, shown_url
from migrate.jobs.models import JobRef
from migrate.sqlite import configure_sqlite
from migrate.state.ledger import (
    LedgerEntry,
    LookupResult,
    iter_entries,
    job_entries,
    lookup,
)
from migrate.state.store import StateStore

LEDGER_FIELDS = [
    "source_id",
    "target_conversation_id",
    "target",
    "items",
    "complete",
    "job_id",
    "updated_at",
]
PAGE = 1000


def lookup_conversations(state_url: str, source_ids: Sequence[str]) -> list[LookupResult]:
    """The new conversation(s) of each source conversation id, from the store at `state_url`."""
    store = StateStore.from_url(state_url)
    try:
        current = _current_target(store)
        return lookup(store.engine, source_ids, current_target=current)
    finally:
        store.close()


def ledger_rows(store: StateStore) -> Iterator[LedgerEntry]:
    """The whole map: the ledger, with the current job's results in place of older ones."""
    current = _current_target(store)
    if current is None:
        yield from iter_entries(store.engine)
        return
    with store.engine.connect() as conn:
        mine = {entry.source_id: entry for entry in job_entries(conn, current, now=0.0)}
    for entry in iter_entries(store.engine):
        if entry.target == current and entry.source_id in mine:
            continue
        yield entry
    for entry in mine.values():
        yield entry


def export_ledger_csv(store: StateStore, path: Path) -> int:
    """Write the map as CSV (`LEDGER_FIELDS`); returns the number of rows."""
    count = 0
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=LEDGER_FIELDS)
        writer.writeheader()
        for entry in ledger_rows(store):
            writer.writerow(_row(entry))
            count += 1
    return count


def export_ledger_table(store: StateStore, url: str, table: str) -> int:
    """(Re)create table `table` in the database at `url` holding the map; returns its rows."""
    try:
        engine = create_engine(make_url(url))
    except (ArgumentError, SQLAlchemyError) as exc:
        raise ConfigError(f"invalid database URL for the id map: {exc}") from exc
    if engine.dialect.name == "sqlite":
        configure_sqlite(engine)
    id_map = Table(
        table,
        MetaData(),
        Column("source_id", String(512), nullable=False),
        Column("target_conversation_id", String(128), nullable=False),
        Column("target", String(160), nullable=False),
        Column("items", Integer, nullable=False),
        Column("complete", Boolean, nullable=False),
        Column("job_id", String(64), nullable=False),
        Column("updated_at", Float, nullable=False),
    )
    count = 0
    try:
        with engine.begin() as conn:
            id_map.drop(conn, checkfirst=True)
            id_map.create(conn)
            batch: list[dict[str, object]] = []
            for entry in ledger_rows(store):
                batch.append(_row(entry))
                if len(batch) >= PAGE:
                    conn.execute(id_map.insert(), batch)
                    count += len(batch)
                    batch = []
            if batch:
                conn.execute(id_map.insert(), batch)
                count += len(batch)
    except SQLAlchemyError as exc:
        raise JobError(
            f"cannot write the id map to {shown_url(url)} table {table}: "
            f"{exc.__class__.__name__}: {exc}"
        ) from exc
    finally:
        engine.dispose()
    return count


def write_ledger(
    ref: JobRef, *, csv_path: Path | None, url: str | None, table: str = "id_map"
) -> list[str]:
    """Write the ledger of the job's state store as CSV and/or a table; what was written."""
    store = open_job(ref)
    try:
        written: list[str] = []
        if csv_path is not None:
            rows = export_ledger_csv(store, csv_path)
            written.append(f"{csv_path} ({rows} rows)")
        if url is not None:
            rows = export_ledger_table(store, url, table)
            written.append(f"{shown_url(url)} table {table} ({rows} rows)")
        return written
    finally:
        store.close()


def _row(entry: LedgerEntry) -> dict[str, object]:
    """One ledger entry as an id-map row (named like `conversations.csv`)."""
    values = entry.model_dump()
    values["target_conversation_id"] = values.pop("conversation_id")
    return {field: values[field] for field in LEDGER_FIELDS}


def _current_target(store: StateStore) -> str | None:
    """The ledger identity of the store's current job's target (None: no job, or a job from
    before the ledger, whose results the ledger cannot name)."""
    try:
        job = store.job()
    except JobError:
        return None
    identity = job.config.get("ledger_target")
    return str(identity) if identity else None
