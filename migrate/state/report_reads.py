"""What the report reads from the state store: findings, token figures, and how far the report
files are written (`migrate.jobs.report_files`).

Every read here is an aggregate query or a page-by-page walk over a range of `seq`, so the
report runs in bounded memory and never parses a stored plan.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel
from sqlalchemy import case, delete, func, insert, select

from migrate.state.base import StoreBase
from migrate.state.schema import conversations, findings, report_progress
from migrate.transform.findings import Finding

_UNFINISHED = ("pending", "in_progress")
"""The statuses a conversation leaves when it finishes."""


class ReportProgress(BaseModel):
    """How far the report files are written: every conversation below `below` is in them."""

    below: int
    files: dict[str, Any]
    """The form the files are in (`compress`) and their byte sizes (`sizes`) at `below`."""
    signature: list[float]
    """`report_signature(below)` when they were written: it differs once one of those rows
    changed (a retry, `migrate verify` reading item ids, a rollback)."""


class CodeFigures(BaseModel):
    """One finding code over the whole job."""

    code: str
    count: int
    conversations: int


class ReportReads(StoreBase):
    """The report's reads, and its progress."""

    def iter_findings(
        self, start: int = 0, stop: int | None = None, *, code: str | None = None, page: int = 2000
    ) -> Iterator[tuple[int, str, Finding]]:
        """(seq, location, finding) in source and plan order, for `start <= seq < stop`."""
        f, c = findings.c, conversations.c
        after = (start, -1)
        while True:
            seq, number = after
            query = (
                select(f.seq, f.number, c.location, f.finding)
                .join_from(findings, conversations, f.seq == c.seq)
                .where((f.seq > seq) | ((f.seq == seq) & (f.number > number)))
                .order_by(f.seq, f.number)
                .limit(page)
            )
            if stop is not None:
                query = query.where(f.seq < stop)
            if code is not None:
                query = query.where(f.code == code)
            with self.engine.connect() as conn:
                rows = conn.execute(query).all()
            if not rows:
                return
            for row_seq, _, location, text in rows:
                yield int(row_seq), str(location), Finding.model_validate_json(text)
            after = (int(rows[-1][0]), int(rows[-1][1]))

    def finding_codes(self) -> list[CodeFigures]:
        """Occurrences and conversations per finding code."""
        f = findings.c
        query = select(f.code, func.sum(f.count), func.count(func.distinct(f.seq))).group_by(f.code)
        with self.engine.connect() as conn:
            return [
                CodeFigures(code=code, count=int(count), conversations=int(affected))
                for code, count, affected in conn.execute(query)
            ]

    def planned_tokens(self, *, page: int = 20_000) -> Iterator[int]:
        """The token count of every conversation planned with items and no error."""
        c = conversations.c
        after = -1
        while True:
            query = (
                select(c.seq, c.tokens)
                .where(_counted(), c.tokens.is_not(None), c.seq > after)
                .order_by(c.seq)
                .limit(page)
            )
            with self.engine.connect() as conn:
                rows = conn.execute(query).all()
            if not rows:
                return
            yield from (int(tokens) for _, tokens in rows)
            after = int(rows[-1][0])

    def token_counts(self, codes: tuple[str, ...]) -> tuple[int, dict[str, int], int]:
        """(estimated, conversations with each of `codes` among those counted, failed over
        the limit): the conversations counted are those `planned_tokens` gives."""
        c, f = conversations.c, findings.c
        with self.engine.connect() as conn:
            estimated = conn.execute(
                select(func.count()).where(_counted(), c.tokens_estimated)
            ).scalar_one()
            with_code = {
                code: int(
                    conn.execute(
                        select(func.count(func.distinct(f.seq)))
                        .join_from(findings, conversations, f.seq == c.seq)
                        .where(f.code == code, _counted())
                    ).scalar_one()
                )
                for code in codes
            }
            failed_over = conn.execute(
                select(func.count()).where(c.error_code == "context_over_limit")
            ).scalar_one()
        return int(estimated), with_code, int(failed_over)

    # --- the report files' progress ----------------------------------------------------------

    def report_frontier(self) -> int:
        """The first conversation that has not finished (every one before it has); the number
        of conversations when all have."""
        c = conversations.c
        with self.engine.connect() as conn:
            firsts = [
                conn.execute(select(func.min(c.seq)).where(c.status == status)).scalar()
                for status in _UNFINISHED
            ]
            unfinished = [int(seq) for seq in firsts if seq is not None]
            if unfinished:
                return min(unfinished)
            last = conn.execute(select(func.max(c.seq))).scalar()
        return 0 if last is None else int(last) + 1

    def report_signature(self, start: int, stop: int) -> list[float]:
        """Sums over the conversations `start <= seq < stop` that change whenever one of them
        does (its status, counters, new ids, deletion), and the latest `updated_at`."""
        c = conversations.c
        status_code = case(
            (c.status == "migrated", 1),
            (c.status == "failed", 2),
            (c.status == "skipped", 3),
            else_=5,
        )
        sums = [
            c.landed_items, c.calls, c.retries, c.reconciliations, c.possible_orphans,
            c.orphans_with_items, c.unread_items, c.repairs, c.findings, status_code,
            case((c.deleted_at.is_not(None), 1), else_=0),
            case((c.conversation_id.is_not(None), 1), else_=0),
        ]  # fmt: skip
        query = select(
            func.count(),
            *(func.coalesce(func.sum(column), 0) for column in sums),
            func.coalesce(func.max(c.updated_at), 0.0),
        ).where(c.seq >= start, c.seq < stop)
        with self.engine.connect() as conn:
            values = conn.execute(query).one()
        return [*(float(int(value)) for value in values[:-1]), float(values[-1])]

    def report_progress(self) -> ReportProgress | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(report_progress).where(report_progress.c.id == 1)).first()
        if row is None:
            return None
        return ReportProgress(
            below=int(row.below), files=json.loads(row.files), signature=json.loads(row.signature)
        )

    def save_report_progress(self, progress: ReportProgress | None) -> None:
        """Record how far the report files are written (None: forget it)."""
        with self.engine.begin() as conn:
            conn.execute(delete(report_progress))
            if progress is not None:
                conn.execute(
                    insert(report_progress).values(
                        id=1,
                        below=progress.below,
                        files=json.dumps(progress.files),
                        signature=json.dumps(progress.signature),
                    )
                )


def _counted() -> Any:
    c = conversations.c
    return (c.error_code.is_(None)) & (c.planned_items > 0)


def combine(first: list[float], second: list[float]) -> list[float]:
    """The signature of two adjacent ranges from theirs."""
    return [
        *(a + b for a, b in zip(first[:-1], second[:-1], strict=True)),
        max(first[-1], second[-1]),
    ]
