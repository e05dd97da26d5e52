"""Several workers on one job: claims under leases, heartbeats, the worker registry and the
shared 429 pause, all read against the database's clock (`epoch_now`)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    bindparam,
    case,
    func,
    insert,
    or_,
    select,
    update,
)

from migrate.plan.model import ConversationPlan
from migrate.state.base import StoreBase
from migrate.state.records import Claim, WorkerRow
from migrate.state.schema import Status, conversations, epoch_now, job_table, pace, workers


class Leases(StoreBase):
    """Claims with leases, the worker registry and the shared 429 pause."""

    def claim_work(
        self,
        worker: str,
        *,
        limit: int,
        lease: float | None,
        settled_before: float | None = None,
    ) -> list[Claim]:
        """Take up to `limit` conversations for `worker`, in-flight ones first, with their plans.

        A conversation is free when nobody claimed it or its lease ran out; rows another
        worker is claiming at this moment are skipped (`FOR UPDATE SKIP LOCKED`). The claim
        lasts `lease` seconds unless renewed (None: until released). While `resume` checks the
        source, only conversations below the job's `checked_below` are claimable. A
        conversation waiting for a write in doubt to settle is free once that write was
        recorded before `settled_before` (None: at once); one waiting for its audit only in
        `claim_audits`.
        """
        claimed: list[tuple[int, Status]] = []
        with self.engine.begin() as conn:
            bound = conn.execute(select(job_table.c.checked_below)).scalar()
            for status in ("in_progress", "pending"):
                wanted = limit - len(claimed)
                if wanted <= 0:
                    break
                query = _claimable(status, wanted, with_plan=False)
                if bound is not None:
                    query = query.where(conversations.c.seq < bound)
                if status == "in_progress":
                    query = query.where(_replayable(settled_before))
                rows = conn.execute(query).all()
                claimed += [(int(seq), status) for (seq,) in rows]
            seqs = [seq for seq, _ in claimed]
            _take(conn, worker, seqs, lease)
            plans = self._claimed_plans(conn, seqs)
        return [Claim(seq=seq, status=status, plan=plans[seq]) for seq, status in claimed]

    def claim_audits(
        self, worker: str, *, limit: int, lease: float | None, settled_before: float | None
    ) -> list[Claim]:
        """Take up to `limit` conversations whose items all landed but whose audit is due: a
        write of theirs was in doubt, recorded before `settled_before` (None: any time)."""
        c = conversations.c
        with self.engine.begin() as conn:
            query = _claimable("in_progress", limit, with_plan=False).where(
                c.ambiguous_at.is_not(None), c.landed_items >= c.planned_items
            )
            if settled_before is not None:
                query = query.where(c.ambiguous_at <= settled_before)
            seqs = [int(seq) for (seq,) in conn.execute(query).all()]
            _take(conn, worker, seqs, lease)
            plans = self._claimed_plans(conn, seqs)
        return [Claim(seq=seq, status="in_progress", plan=plans[seq], audit=True) for seq in seqs]

    def _claimed_plans(self, conn: Connection, seqs: Sequence[int]) -> dict[int, ConversationPlan]:
        """The plans of `seqs`: those this process just planned from memory, the rest parsed."""
        plans = {seq: plan for seq in seqs if (plan := self.recent_plans.pop(seq, None))}
        missing = [seq for seq in seqs if seq not in plans]
        if missing:
            c = conversations.c
            rows = conn.execute(select(c.seq, c.plan).where(c.seq.in_(missing))).all()
            plans.update(
                (int(seq), ConversationPlan.model_validate_json(plan)) for seq, plan in rows
            )
        return plans

    def release_claims(self, worker: str | None = None) -> None:
        """Forget claims (of one worker, or all of them: the job's processes are gone).

        Finished conversations keep `claimed_by`: it names the worker that finished them.
        """
        query = _release()
        if worker is not None:
            query = query.where(conversations.c.claimed_by == worker)
        else:
            query = query.where(conversations.c.claimed_by.is_not(None))
        with self.engine.begin() as conn:
            conn.execute(query)

    def register_worker(
        self, worker_id: str, *, host: str, pid: int, plans: bool, lease: float
    ) -> None:
        """Add a worker to the job (its first heartbeat)."""
        now = epoch_now()
        values = {"host": host, "pid": pid, "plans": plans, "lease": lease}
        with self.engine.begin() as conn:
            conn.execute(
                insert(workers).values(worker_id=worker_id, started_at=now, seen_at=now, **values)
            )

    def renew(self, worker: str, *, lease: float) -> None:
        """Heartbeat: the worker is alive and its claims last `lease` seconds from now."""
        c = conversations.c
        with self.engine.begin() as conn:
            conn.execute(
                update(workers).where(workers.c.worker_id == worker).values(seen_at=epoch_now())
            )
            conn.execute(
                update(conversations)
                .where(c.claimed_by == worker, c.status.in_(("pending", "in_progress")))
                .values(lease_until=epoch_now() + lease)
            )

    def stop_worker(self, worker: str, *, release: bool = True) -> None:
        """The worker is leaving: last heartbeat, and (unless it crashed) its claims released."""
        with self.engine.begin() as conn:
            now = epoch_now()
            conn.execute(
                update(workers)
                .where(workers.c.worker_id == worker)
                .values(seen_at=now, stopped_at=now)
            )
            if release:
                conn.execute(_release().where(conversations.c.claimed_by == worker))

    def forget_workers(self, worker_ids: Sequence[str]) -> None:
        """Workers known to be gone: mark them stopped (at their last heartbeat or journal
        write, `session_end`) and free their claims at once."""
        if not worker_ids:
            return
        with self.engine.begin() as conn:
            gone = workers.c.worker_id.in_(worker_ids) & workers.c.stopped_at.is_(None)
            # Two statements: MySQL and MariaDB evaluate SET left to right, so a second use of
            # `session_end()` in one UPDATE would see the new `seen_at`.
            conn.execute(update(workers).where(gone).values(seen_at=session_end()))
            conn.execute(update(workers).where(gone).values(stopped_at=workers.c.seen_at))
            conn.execute(_release().where(conversations.c.claimed_by.in_(worker_ids)))

    def worker_rows(self) -> tuple[list[WorkerRow], float]:
        """Every worker that ever joined the job, and the database's clock."""
        with self.engine.connect() as conn:
            now = float(conn.execute(select(epoch_now())).scalar_one())
            rows = conn.execute(select(workers).order_by(workers.c.started_at)).mappings().all()
        return [WorkerRow.model_validate(dict(row)) for row in rows], now

    def live_workers(self) -> tuple[int, bool]:
        """Workers whose heartbeat is within their lease, and whether one of them plans."""
        w = workers.c
        alive = (w.stopped_at.is_(None)) & (w.seen_at + w.lease > epoch_now())
        query = select(func.count(), func.coalesce(func.sum(case((w.plans, 1), else_=0)), 0)).where(
            alive
        )
        with self.engine.connect() as conn:
            count, planners = conn.execute(query).one()
        return int(count), int(planners) > 0

    def pause_left(self) -> float:
        """Seconds every worker still holds off after a 429 (0 when none)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(pace.c.paused_until - epoch_now()).where(pace.c.id == 1)
            ).first()
        return max(0.0, float(row[0])) if row is not None else 0.0

    def publish_pause(self, seconds: float) -> None:
        """A worker met a 429: all hold off for `seconds` (a longer pause already set stays)."""
        until = epoch_now() + seconds
        current = pace.c.paused_until
        with self.engine.begin() as conn:
            conn.execute(
                update(pace)
                .where(pace.c.id == 1)
                .values(paused_until=case((current > until, current), else_=until))
            )

    def unfinished_count(
        self, *, at_most: int | None = None, below: int | None = None, audits: bool = True
    ) -> int:
        """Conversations still pending or in progress (whoever holds them); with `at_most`,
        counting stops there (the cost stays bounded whatever the job's size); with `below`,
        only those whose `seq` is below it. Without `audits`, those that only wait for their
        audit are left out."""
        values = {
            name: value
            for name, value in (("b_at_most", at_most), ("b_below", below))
            if value is not None
        }
        statement = self.statements.get(
            ("unfinished", *values, audits), lambda: _unfinished_count(values, audits=audits)
        )
        with self.statements.reading() as cursor:
            return int(statement.execute(cursor, values).fetchall()[0][0])

    def known_count(self) -> int:
        """Source records planned so far (an index lookup, not a count)."""
        with self.engine.connect() as conn:
            top = conn.execute(select(func.max(conversations.c.seq))).scalar_one()
        return 0 if top is None else int(top) + 1

    def worker_time(self) -> float:
        """Seconds during which at least one worker was alive (union of their lifetimes, each
        from its start to `session_end`)."""
        with self.engine.connect() as conn:
            spans = conn.execute(
                select(workers.c.started_at, session_end()).order_by(workers.c.started_at)
            ).all()
        total = 0.0
        open_start, open_end = None, None
        for start, end in spans:
            if open_end is None or start > open_end:
                if open_start is not None and open_end is not None:
                    total += open_end - open_start
                open_start, open_end = start, end
            else:
                open_end = max(open_end, end)
        if open_start is not None and open_end is not None:
            total += open_end - open_start
        return total

    # --- the replay protocol -----------------------------------------------------------------


def session_end() -> Any:
    """When a worker was last seen alive: its last heartbeat, or its last journal write on a
    conversation it holds if later (a worker killed between two heartbeats), at most a lease
    after the heartbeat (a worker writes nothing once its lease ran out)."""
    w, c = workers.c, conversations.c
    last_write = (
        select(func.max(c.updated_at))
        .where(c.claimed_by == w.worker_id)
        .correlate(workers)
        .scalar_subquery()
    )
    return case(
        (last_write.is_(None) | (last_write <= w.seen_at), w.seen_at),
        (last_write >= w.seen_at + w.lease, w.seen_at + w.lease),
        else_=last_write,
    )


def _claimable(status: Status, limit: int, *, with_plan: bool) -> Any:
    """Free conversations of one status in source order, skipping rows being claimed."""
    c = conversations.c
    columns = [c.seq, c.plan] if with_plan else [c.seq]
    return (
        select(*columns)
        .where(c.status == status, or_(c.claimed_by.is_(None), c.lease_until < epoch_now()))
        .order_by(c.seq)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )


def _replayable(settled_before: float | None) -> Any:
    """In progress and not waiting: neither for a write in doubt to settle (recorded at or
    after `settled_before`), nor for its audit (every item landed, a write was in doubt)."""
    c = conversations.c
    settled = c.landed_items < c.planned_items
    if settled_before is not None:
        settled = and_(settled, c.ambiguous_at <= settled_before)
    return or_(c.ambiguous_at.is_(None), settled)


def _unfinished_count(bound: Collection[str], *, audits: bool) -> Any:
    """`Leases.unfinished_count`'s count, stopping at `b_at_most` and counting below `b_below`
    if those are in `bound` (not required: the statuses are rendered into the statement as it
    is compiled, before any values are given)."""
    c = conversations.c
    unfinished: ColumnElement[bool] = c.status.in_(("pending", "in_progress"))
    if "b_below" in bound:
        unfinished = unfinished & (c.seq < bindparam("b_below", required=False))
    if not audits:
        unfinished = and_(unfinished, _replayable(None))
    if "b_at_most" not in bound:
        return select(func.count()).where(unfinished)
    found = select(c.seq).where(unfinished).limit(bindparam("b_at_most", required=False)).subquery()
    return select(func.count()).select_from(found)


def _release() -> Any:
    """Free the claims on unfinished conversations (add the `where`)."""
    return (
        update(conversations)
        .where(conversations.c.status.in_(("pending", "in_progress")))
        .values(claimed_by=None, claimed_at=None, lease_until=None)
    )


def _take(conn: Connection, worker: str, seqs: Sequence[int], lease: float | None) -> None:
    if not seqs:
        return
    conn.execute(
        update(conversations)
        .where(conversations.c.seq.in_(seqs))
        .values(
            claimed_by=worker,
            claimed_at=epoch_now(),
            lease_until=None if lease is None else epoch_now() + lease,
        )
    )
