"""The report's data for a plan (gathered while planning) and for a run (queried from the store).

A run's figures are aggregate queries over the state store (GROUP BY code, GROUP BY time
bucket), never a walk over its rows; the findings are counted in the `findings` table, where
each plan's findings are stored with it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from sqlalchemy import Float, func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from adapters.model import SourceConversation
from migrate.reporting.codes import describe
from migrate.reporting.collect import CodeTally, LargestHeap, PlanOutcome, SampleCollector, share
from migrate.reporting.events import read_pauses
from migrate.reporting.model import (
    MAX_BUCKETS,
    MAX_EXAMPLES,
    Bucket,
    CodeCount,
    Estimate,
    Example,
    Pauses,
    ReportData,
    Session,
    Timeline,
)
from migrate.state.schema import conversations, intents
from migrate.state.store import StateStore
from migrate.transform.findings import ErrorRecord

DEFAULT_RATE_PER_MINUTE = 300
"""Requests per minute assumed by a plan's estimate when none is given: no rate is published
for the Conversations endpoints, and a new account's limits are in this range."""
# Fitted to two measured jobs (1,200 conversations of 10 items, 400 of 30), within 1% of each;
# `bench/run.py --only disk` measures the first kind.
STATE_BYTES_PER_PLAN_BYTE = 1.0
BYTES_PER_ITEM = 150
BYTES_PER_CONVERSATION = 600
DISK_FORMULA = (
    f"{STATE_BYTES_PER_PLAN_BYTE} × plan size (plans in the state store) + "
    f"{BYTES_PER_ITEM} B per item (item rows, items.csv) + "
    f"{BYTES_PER_CONVERSATION} B per conversation (rows, conversations.csv, report); "
    "less with --compress"
)


class PlanReportBuilder:
    """Fed every outcome of a plan, in source order."""

    def __init__(self) -> None:
        self.errors = CodeTally()
        self.findings = CodeTally()
        self.largest = LargestHeap()
        self.samples = SampleCollector()

    def observe(self, source: SourceConversation | None, outcome: PlanOutcome) -> None:
        if isinstance(outcome, ErrorRecord):
            self.errors.add_error(outcome)
        else:
            for finding in outcome.findings:
                self.findings.add_finding(finding, outcome.location)
            if outcome.items:
                self.largest.add(outcome)
        self.samples.observe(source, outcome)

    def build(
        self,
        *,
        conversations: int,
        items: int,
        calls: int,
        plan_bytes: int,
        rate_per_minute: int = DEFAULT_RATE_PER_MINUTE,
    ) -> ReportData:
        disk = (
            STATE_BYTES_PER_PLAN_BYTE * plan_bytes
            + BYTES_PER_ITEM * items
            + BYTES_PER_CONVERSATION * conversations
        )
        return ReportData(
            kind="plan",
            conversations=conversations,
            errors=self.errors.rows(conversations),
            findings=self.findings.rows(conversations),
            largest=self.largest.rows(),
            estimate=Estimate(
                rate_per_minute=rate_per_minute,
                calls=calls,
                minutes=round(calls / rate_per_minute, 1),
                plan_bytes=plan_bytes,
                disk_bytes=int(disk),
                disk_formula=DISK_FORMULA,
            ),
            samples=len(self.samples.samples),
        )


# --- a run, from the state store --------------------------------------------------------------


class _floor(FunctionElement[float]):
    """FLOOR, which SQLite lacks unless built with its math functions."""

    type = Float()
    inherit_cache = True


@compiles(_floor)
def _floor_default(element: _floor, compiler: SQLCompiler, **kw: Any) -> str:
    return f"FLOOR({compiler.process(element.clauses, **kw)})"


@compiles(_floor, "sqlite")
def _floor_sqlite(element: _floor, compiler: SQLCompiler, **kw: Any) -> str:
    # truncation is the floor except below zero, where `_bucket` clamps to the first bucket
    return f"CAST({compiler.process(element.clauses, **kw)} AS INTEGER)"


def run_report(store: StateStore, job_dir: Path | None) -> ReportData:
    """The report's data for a job in the state store."""
    totals = store.totals()
    pauses = read_pauses(job_dir)
    return ReportData(
        kind="run",
        conversations=totals.total,
        errors=_error_rows(store, totals.total),
        findings=_finding_rows(store, totals.total),
        timeline=_timeline(store, pauses),
        sessions=_sessions(store),
        pauses=_pauses(pauses),
    )


def _error_rows(store: StateStore, total: int) -> list[CodeCount]:
    c = conversations.c
    failed = c.status == "failed"
    with store.engine.connect() as conn:
        counts = conn.execute(
            select(c.error_code, func.count()).where(failed).group_by(c.error_code)
        ).all()
        rows = []
        for code, count in counts:
            examples = conn.execute(
                select(c.source_id, c.location, c.error_message)
                .where(failed, c.error_code == code if code is not None else c.error_code.is_(None))
                .order_by(c.seq)
                .limit(MAX_EXAMPLES)
            ).all()
            entry = describe(code or "unknown")
            rows.append(
                CodeCount(
                    code=code or "unknown",
                    count=int(count),
                    conversations=int(count),
                    share=share(int(count), total),
                    meaning=entry.meaning,
                    remedy=entry.remedy,
                    examples=[
                        Example(source_id=sid, location=loc, message=msg or "")
                        for sid, loc, msg in examples
                    ],
                )
            )
    return sorted(rows, key=lambda row: (-row.conversations, row.code))


def _finding_rows(store: StateStore, total: int) -> list[CodeCount]:
    rows = []
    for figures in store.finding_codes():
        examples: list[Example] = []
        for _, location, finding in store.iter_findings(code=figures.code, page=50):
            if all(example.location != location for example in examples):
                examples.append(
                    Example(
                        source_id=finding.conversation_id,
                        location=location,
                        message=finding.message,
                    )
                )
            if len(examples) == MAX_EXAMPLES:
                break
        entry = describe(figures.code)
        rows.append(
            CodeCount(
                code=figures.code,
                count=figures.count,
                conversations=figures.conversations,
                share=share(figures.conversations, total),
                meaning=entry.meaning,
                remedy=entry.remedy,
                examples=examples,
            )
        )
    return sorted(rows, key=lambda row: (-row.conversations, row.code))


def _timeline(store: StateStore, pauses: list[dict[str, Any]] | None) -> Timeline | None:
    i, c = intents.c, conversations.c
    with store.engine.connect() as conn:
        first, last = conn.execute(select(func.min(i.created_at), func.max(i.resolved_at))).one()
        if first is None:
            return None
        last_final = conn.execute(
            select(func.max(c.updated_at)).where(c.status.in_(("migrated", "failed")))
        ).scalar_one()
        end = max(float(last or first), float(last_final or first))
        width = _bucket_width(end - float(first))
        start = float(first)
        buckets = {n: Bucket(start=round(n * width, 3)) for n in range(_count(end - start, width))}

        def slot(column: Any) -> Any:
            return _floor((column - start) / width)

        # the slot is computed in a subquery: PostgreSQL will not match a GROUP BY expression
        # whose bound parameters differ from the SELECT's
        # no `>= start` filter: MariaDB keeps these FLOAT columns in single precision (steps
        # of 128 s at today's epoch), so a write may appear to end before the first began;
        # `_bucket` puts such a slot in the first bucket
        resolved = i.resolved_at.is_not(None)
        writes = (
            select(slot(i.resolved_at).label("slot"), i.outcome, i.kind, i.count)
            .where(resolved)
            .subquery()
        )
        w = writes.c
        for n, outcome, kind, calls, landed in conn.execute(
            select(w.slot, w.outcome, w.kind, func.count(), func.sum(w.count)).group_by(
                w.slot, w.outcome, w.kind
            )
        ):
            bucket = _bucket(buckets, n, width)
            bucket.writes += int(calls)
            if outcome in ("not_applied", "ambiguous"):
                bucket.retries += int(calls)
            # an append whose outcome is unknown is reconciled before it is resent (an unknown
            # create cannot be: it counts as a possible orphan); `reconciled` closes the open
            # writes of a conversation taken over from a stopped process
            appends = ("append", "append_missing")
            if outcome == "reconciled" or (outcome == "ambiguous" and kind in appends):
                bucket.reconciliations += int(calls)
            # a create may carry the conversation's first batch
            if (kind == "create" or kind in appends) and outcome in ("applied", "reconciled"):
                bucket.items += int(landed or 0)
        final = c.status.in_(("migrated", "failed"))
        done = select(slot(c.updated_at).label("slot")).where(final).subquery()
        for n, count in conn.execute(select(done.c.slot, func.count()).group_by(done.c.slot)):
            _bucket(buckets, n, width).conversations += int(count)
    for event in pauses or []:
        _bucket(buckets, math.floor((float(event["at"]) - start) / width), width).pauses += 1
    ordered = [buckets[n] for n in sorted(buckets)]
    return Timeline(
        bucket_seconds=width,
        started_at=round(start, 3),
        buckets=ordered,
        peak_conversations=max(b.conversations for b in ordered),
        peak_items=max(b.items for b in ordered),
        peak_retries=max(b.retries for b in ordered),
        source="the state store's intents (each write's outcome and time) and conversation "
        "updates" + (", and events.jsonl for 429 pauses" if pauses is not None else ""),
    )


def _bucket_width(span: float) -> float:
    """A round width giving at most `MAX_BUCKETS` buckets over `span` seconds."""
    for width in (0.1, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600):
        if span / width < MAX_BUCKETS:
            return float(width)
    return float(math.ceil(span / MAX_BUCKETS / 3600) * 3600)


def _count(span: float, width: float) -> int:
    return max(1, min(MAX_BUCKETS, math.floor(span / width) + 1))


def _bucket(buckets: dict[int, Bucket], n: Any, width: float) -> Bucket:
    index = min(max(0, int(n or 0)), max(buckets))
    return buckets.setdefault(index, Bucket(start=round(index * width, 3)))


def _sessions(store: StateStore) -> list[Session]:
    rows, now = store.worker_rows()
    return [
        Session(
            worker=f"{row.host} pid {row.pid}",
            started_at=round(row.started_at, 3),
            elapsed=round(max(0.0, (row.stopped_at or row.seen_at or now) - row.started_at), 1),
            planner=row.plans,
        )
        for row in rows
    ]


def _pauses(pauses: list[dict[str, Any]] | None) -> Pauses:
    events = pauses or []
    rates = [float(event["rate"]) for event in events if event.get("rate") is not None]
    return Pauses(
        count=len(events),
        seconds=round(sum(float(event["pause"]) for event in events), 1),
        lowest_rate=round(min(rates), 2) if rates else None,
        logged=pauses is not None,
    )
