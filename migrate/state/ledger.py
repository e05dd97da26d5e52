"""The ledger: what landed per (target, source conversation), across every job of a state store.

A state store holds one job at a time, and the ledger beside it. When a new `run` or `sync`
starts in a store whose job has finished (`start_next_job`), that job's results move into the
ledger in the same transaction that clears its rows: for each conversation it created or
appended to, the new conversation id, how many items landed, the chained fingerprint of those
items and the job id. So the ledger only ever changes between jobs, and a job (and its
`resume`) plans against the same ledger from start to end.

The fingerprint of the first `n` items is a hash chain (`chain_fingerprints`): `f(0)` is a
constant, `f(k + 1) = sha256(f(k) + item k)`. A source conversation that only grew has the
ledger's fingerprint at the ledger's item count; extending the chain over the appended items
needs only the ledger's fingerprint, never the earlier items.

The target is named by an identity string (`migrate.jobs.sync.target_identity`: base URL and
project, never a key). Lookups (`lookup`) read the ledger and the current job's rows.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, Engine, delete, func, insert, select, tuple_

from migrate.errors import ConfigError
from migrate.plan.model import ConversationPlan
from migrate.state.schema import (
    conversations,
    findings,
    intents,
    items,
    job_table,
    ledger,
    pace,
    report_progress,
    workers,
)
from migrate.transform.transformer import PlannedItem

EMPTY_FINGERPRINT = hashlib.sha256(b"chat-migrate ledger").hexdigest()
"""The fingerprint of no items: the start of every chain."""
DIVERGED = "source_diverged"
UP_TO_DATE = "up_to_date"
PAGE = 500

SyncState = Literal["new", "append", "up_to_date", "diverged"]


class LedgerEntry(BaseModel):
    """One ledger row: a source conversation as it stands in one target."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    target: str
    source_id: str
    conversation_id: str
    items: int
    fingerprint: str
    complete: bool
    """False when the job that wrote it did not finish the conversation (it failed midway)."""
    job_id: str
    updated_at: float


def chain_fingerprints(planned: Sequence[PlannedItem], start: str = EMPTY_FINGERPRINT) -> list[str]:
    """`[f(0), f(1), ..., f(n)]`: the fingerprint of each prefix of `planned`, from `start`."""
    chain = [start]
    for item in planned:
        text = json.dumps(item.item, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        chain.append(hashlib.sha256((chain[-1] + text).encode()).hexdigest())
    return chain


def sync_state(plan: ConversationPlan, entry: LedgerEntry | None) -> SyncState:
    """What `sync` does with a freshly planned conversation, given its ledger entry."""
    if entry is None:
        return "new"
    if entry.items > len(plan.items):
        return "diverged"
    if chain_fingerprints(plan.items[: entry.items])[-1] != entry.fingerprint:
        return "diverged"
    return "up_to_date" if entry.items == len(plan.items) else "append"


def sync_note(plan: ConversationPlan) -> str | None:
    """The code a sync plan leaves on its row: `source_diverged`, `up_to_date`, or None."""
    if any(finding.code == DIVERGED for finding in plan.findings):
        return DIVERGED
    return UP_TO_DATE if plan.append is not None and not plan.items else None


def sync_counts(engine: Engine) -> tuple[int, int]:
    """The current job's conversations that were up to date, and those that diverged."""
    c = conversations.c
    query = (
        select(c.error_code, func.count())
        .where(c.error_code.in_([UP_TO_DATE, DIVERGED]))
        .group_by(c.error_code)
    )
    with engine.connect() as conn:
        counts = {str(code): int(count) for code, count in conn.execute(query)}
    return counts.get(UP_TO_DATE, 0), counts.get(DIVERGED, 0)


class LookupResult(BaseModel):
    """Where one source conversation went: a target and the new conversation there."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source_id: str
    conversation_id: str
    target: str
    items: int
    complete: bool
    job_id: str


def entries_for(engine: Engine, target: str, source_ids: Iterable[str]) -> dict[str, LedgerEntry]:
    """The ledger's entries for these source conversations in `target`."""
    wanted = list(dict.fromkeys(source_ids))
    found: dict[str, LedgerEntry] = {}
    with engine.connect() as conn:
        for start in range(0, len(wanted), PAGE):
            query = select(ledger).where(
                ledger.c.target == target, ledger.c.source_id.in_(wanted[start : start + PAGE])
            )
            for row in conn.execute(query).mappings():
                entry = LedgerEntry.model_validate(dict(row))
                found[entry.source_id] = entry
    return found


def ledger_size(engine: Engine, target: str | None = None) -> int:
    """How many source conversations the ledger knows (in `target`, or in all)."""
    query = select(func.count()).select_from(ledger)
    if target is not None:
        query = query.where(ledger.c.target == target)
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def iter_entries(engine: Engine, *, page: int = 5000) -> Iterator[LedgerEntry]:
    """Every ledger entry, by target and source id, read page by page."""
    after: tuple[str, str] | None = None
    while True:
        query = select(ledger).order_by(ledger.c.target, ledger.c.source_id).limit(page)
        if after is not None:
            query = query.where(tuple_(ledger.c.target, ledger.c.source_id) > after)
        with engine.connect() as conn:
            rows = [LedgerEntry.model_validate(dict(row)) for row in conn.execute(query).mappings()]
        if not rows:
            return
        yield from rows
        after = (rows[-1].target, rows[-1].source_id)


def job_entries(
    conn: Connection, target: str, *, now: float, source_ids: Sequence[str] | None = None
) -> Iterator[LedgerEntry]:
    """What the store's current job landed, as ledger entries (nothing for a rolled-back copy).

    Only for `source_ids` when given.
    """
    job_id = conn.execute(select(job_table.c.job_id).where(job_table.c.id == 1)).scalar()
    if job_id is None:
        return
    c = conversations.c
    query = (
        select(c.source_id, c.status, c.conversation_id, c.landed_items, c.plan)
        .where(c.conversation_id.is_not(None), c.deleted_at.is_(None), c.source_id.is_not(None))
        .order_by(c.seq)
    )
    if source_ids is not None:
        query = query.where(c.source_id.in_(source_ids))
    for row in conn.execute(query):
        if row.plan is None:
            continue
        plan = ConversationPlan.model_validate_json(row.plan)
        if not plan.items and plan.append is not None:
            continue  # up to date or diverged and skipped: the ledger entry stands as it was
        landed = plan.items[: row.landed_items]
        base = plan.append
        start = EMPTY_FINGERPRINT if base is None else base.fingerprint
        yield LedgerEntry(
            target=target,
            source_id=row.source_id,
            conversation_id=row.conversation_id,
            items=(0 if base is None else base.position) + len(landed),
            fingerprint=chain_fingerprints(landed, start)[-1],
            complete=row.status == "migrated",
            job_id=job_id,
            updated_at=now,
        )


def start_next_job(engine: Engine, target: str) -> str | None:
    """Move the store's finished job into the ledger and clear its rows, in one transaction.

    `target` is the identity of the finished job's target. Returns the finished job's id (None
    when the store held no job). Refuses a job that is not finished or rolled back: its
    conversations in flight would be lost.
    """
    with engine.begin() as conn:
        return retire_job(conn, target)


def retire_job(conn: Connection, target: str) -> str | None:
    """`start_next_job` inside the caller's transaction (which records the next job too)."""
    now = time.time()
    job = conn.execute(select(job_table.c.job_id, job_table.c.state)).first()
    if job is None:
        return None
    if job.state not in ("finished", "rolled_back"):
        raise ConfigError(
            f"the state store holds job {job.job_id}, which is {job.state}",
            hint="finish it first (`migrate resume`), or roll it back",
        )
    batch: list[dict[str, Any]] = []
    for entry in job_entries(conn, target, now=now):
        batch.append(entry.model_dump())
        if len(batch) >= PAGE:
            _upsert(conn, batch)
            batch = []
    _upsert(conn, batch)
    c = conversations.c
    deleted = select(c.conversation_id).where(c.deleted_at.is_not(None))
    conn.execute(
        delete(ledger).where(ledger.c.target == target, ledger.c.conversation_id.in_(deleted))
    )
    for table in (intents, items, findings, conversations, workers, job_table, report_progress):
        conn.execute(delete(table))
    conn.execute(pace.update().values(paused_until=0.0))
    return str(job.job_id)


def _upsert(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    keys = [(row["target"], row["source_id"]) for row in rows]
    conn.execute(delete(ledger).where(tuple_(ledger.c.target, ledger.c.source_id).in_(keys)))
    conn.execute(insert(ledger), rows)


def lookup(
    engine: Engine, source_ids: Sequence[str], *, current_target: str | None
) -> list[LookupResult]:
    """Where each source conversation went, in every target the ledger (or the job) knows.

    The current job's rows (not yet in the ledger) take precedence for `current_target`.
    """
    results: dict[tuple[str, str], LookupResult] = {}
    wanted = list(dict.fromkeys(source_ids))
    with engine.connect() as conn:
        for start in range(0, len(wanted), PAGE):
            chunk = wanted[start : start + PAGE]
            for row in conn.execute(select(ledger).where(ledger.c.source_id.in_(chunk))).mappings():
                entry = LedgerEntry.model_validate(dict(row))
                results[(entry.source_id, entry.target)] = _result(entry)
        if current_target is not None:
            for start in range(0, len(wanted), PAGE):
                chunk = wanted[start : start + PAGE]
                for entry in job_entries(conn, current_target, now=time.time(), source_ids=chunk):
                    results[(entry.source_id, entry.target)] = _result(entry)
    order = {source_id: index for index, source_id in enumerate(wanted)}
    return sorted(results.values(), key=lambda r: (order[r.source_id], r.target))


def _result(entry: LedgerEntry) -> LookupResult:
    return LookupResult(
        source_id=entry.source_id,
        conversation_id=entry.conversation_id,
        target=entry.target,
        items=entry.items,
        complete=entry.complete,
        job_id=entry.job_id,
    )
