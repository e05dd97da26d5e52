"""`resume`'s source check: the source read again, matched with the stored plans by source id.

Each stored conversation is matched with the source record of the same source id (records
without one: the same location), not with the record at its position, so a record deleted
from or inserted into the source moves nothing else. Both run in source order, so a record
out of step waits in a small buffer for its partner. A stored conversation whose record is
not found by the end of the source (or `LOOKAHEAD` records beyond the stored ones) is no
longer in the source; a source record no stored conversation matches is new and is planned
after the stored ones.

What a match means (`_compare`): same plan, nothing to do (a transiently failed conversation
goes back in line); a changed or vanished plan replaces the stored one if nothing was sent
for it, and makes `resume` refuse if the conversation is in progress or migrated.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

from migrate.errors import JobError
from migrate.jobs.models import CountCallback
from migrate.plan.model import ConversationPlan
from migrate.plan.pipeline import PlanOutcome
from migrate.state.records import ConversationRow
from migrate.state.store import StateStore
from migrate.transform.findings import ErrorRecord

LOOKAHEAD = 1000
"""Source records read beyond the stored ones to find stored conversations that moved later."""


def check_source(
    store: StateStore, outcomes: Iterator[PlanOutcome], progress: CountCallback | None = None
) -> Iterator[PlanOutcome]:
    """Compare the source with the stored plans; refuse if work in progress would change.

    Returns the source records still to plan: new ones found among the stored, then the rest.
    """
    conflicts: list[str] = []
    stored = store.known_count()
    waiting_rows: dict[str, deque[ConversationRow]] = {}
    waiting_new: dict[str, deque[int]] = {}
    new: list[PlanOutcome | None] = []

    def settle(row: ConversationRow, outcome: PlanOutcome | None) -> None:
        if outcome is None:
            missing = ErrorRecord(
                code="missing_from_source",
                message="the conversation is no longer in the source",
                location=row.location,
                conversation_id=row.source_id,
            )
            problem = _compare(store, row, missing, gone=True)
        else:
            problem = _compare(store, row, outcome)
        if problem is not None:
            conflicts.append(problem)

    def take_outcome(outcome: PlanOutcome) -> None:
        """A source record out of step: its stored conversation came earlier, or is later."""
        key = _outcome_key(outcome)
        rows = waiting_rows.get(key)
        if rows:
            settle(rows.popleft(), outcome)
            if not rows:
                del waiting_rows[key]
            return
        waiting_new.setdefault(key, deque()).append(len(new))
        new.append(outcome)

    def take_row(row: ConversationRow) -> None:
        key = _row_key(row)
        places = waiting_new.get(key)
        if places:
            place = places.popleft()
            if not places:
                del waiting_new[key]
            outcome, new[place] = new[place], None
            settle(row, outcome)
            return
        waiting_rows.setdefault(key, deque()).append(row)

    for checked, (row, _) in enumerate(store.iter_conversations(), start=1):
        if progress is not None and (checked % 100 == 0 or checked == stored):
            progress(checked, max(stored, checked))
        outcome = next(outcomes, None)
        if outcome is not None and _outcome_key(outcome) == _row_key(row):
            settle(row, outcome)
            continue
        if outcome is not None:
            take_outcome(outcome)
        take_row(row)
    for _ in range(LOOKAHEAD):
        if not waiting_rows:
            break
        outcome = next(outcomes, None)
        if outcome is None:
            break
        take_outcome(outcome)
    for rows in waiting_rows.values():
        for row in rows:
            settle(row, None)
    if conflicts:
        shown = "\n  ".join(conflicts[:20])
        more = f"\n  ... and {len(conflicts) - 20} more" if len(conflicts) > 20 else ""
        raise JobError(
            f"the source changed under {len(conflicts)} conversation(s) already in progress "
            f"or migrated; nothing was sent:\n  {shown}{more}",
            hint="restore the source as it was, or roll back this job and start a new run",
        )
    return _then(new, outcomes)


def _then(new: list[PlanOutcome | None], rest: Iterator[PlanOutcome]) -> Iterator[PlanOutcome]:
    yield from (outcome for outcome in new if outcome is not None)
    yield from rest


def _row_key(row: ConversationRow) -> str:
    return f"id:{row.source_id}" if row.source_id is not None else f"at:{row.location}"


def _outcome_key(outcome: PlanOutcome) -> str:
    if isinstance(outcome, ConversationPlan):
        return f"id:{outcome.source_id}"
    if outcome.conversation_id is not None:
        return f"id:{outcome.conversation_id}"
    return f"at:{outcome.location}"


def _compare(
    store: StateStore, row: ConversationRow, outcome: PlanOutcome, *, gone: bool = False
) -> str | None:
    source_id: str | None
    fingerprint: str | None
    if isinstance(outcome, ConversationPlan):
        source_id, fingerprint = outcome.source_id, outcome.fingerprint
    else:
        source_id, fingerprint = outcome.conversation_id, None
    if not gone and row.source_id == source_id and row.fingerprint == fingerprint:
        if row.status == "failed" and row.retryable:
            store.reset_for_retry(row.seq)
        return None
    who = f"conversation {row.source_id} ({row.location})"
    if row.conversation_id is not None:
        if row.status in ("in_progress", "migrated"):
            change = "is no longer in the source" if gone else "changed in the source"
            return f"{who} {change}; it is {row.status} as {row.conversation_id}"
        # Failed after a partial write: it stays failed, with what the report already says.
        return None
    store.replace_outcome(row.seq, outcome)
    return None
