"""`resume`'s source check, done lazily: conversation by conversation as replay goes on.

Decisions worth knowing:

- The check walks the source and the stored conversations side by side, a chunk at a time, in
  the planner's thread, and after each chunk moves the job's claim bound (`checked_below`):
  workers (this one and any `migrate work`) claim only conversations the check has already
  compared. So the first write comes after one chunk, whatever the job's size, and a
  conversation whose source changed is dealt with before anything more is written to it.
- Source records are matched to stored rows by source id (an index look when they are not
  in step), so a record deleted from the source is reported against its own id and the rest
  still match. A record the job has never seen is planned as a new conversation.
- What a mismatch does, by the conversation's state: nothing sent yet, it takes the new plan
  (or a `missing_from_source` error); in progress, it fails (`source_changed` or
  `missing_from_source`) before any further write, retryable, so a resume after the source is
  restored takes it up again; failed after a partial write, it stays failed.
- A conversation written to whose plan differs only in how its items are cut into batches
  (planned by an earlier version, which kept a tool call and its output in one batch) is
  not a change: it goes on with its stored batches.
- A migrated conversation is read again (to keep the source and the stored rows in step) but
  not planned: that is most of the cost of a check, and its plan could change nothing that is
  done (`migrate sync` brings later changes across). A JSON reader does not even decode its
  messages (Chat Completions and fine-tuning records: the id is found in the parsed record),
  so a migrated record that changed or no longer decodes goes unnoticed. One that left the
  source is logged as a warning.
- What is not skipped: every conversation in progress, failed or not sent yet is read whole,
  planned and its fingerprint compared, before the claim bound lets any worker write to it.
  So a changed conversation in progress fails before any further write to it, whatever the
  reader skips.
- A stored row the source skipped is remembered by id until the source ends: if the record
  turns up later (the source was reordered), it is compared then, never planned twice.
- The read starts at the first conversation not migrated when the source can start there (one
  JSON Lines file of one conversation a line): each row keeps where its record starts
  (`source_mark`: line, byte offset, digest of every byte before it). If the bytes before it
  digest as they did, the records before it are the ones the job migrated, byte for byte, so
  reading them could only skip them again: they are not read at all. A mark is stored only
  while the read that takes it is in step with the stored rows (every record so far the next
  row, or new after them all), so that what it vouches for holds. Records after it are
  checked as above; one whose id a conversation before it has is a duplicate of that one,
  named by its location, as a read from the beginning would find. Otherwise (the source
  changed before it, another layout, a job cut to its first `--limit` records) the read
  starts at the beginning.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from migrate.jobs.models import CountCallback
from migrate.plan.model import ConversationPlan
from migrate.plan.pipeline import MarkOf, PlanOutcome, Unplanned, id_key, marks_by_seq
from migrate.state.records import ConversationRow
from migrate.state.store import StateStore
from migrate.transform.findings import ErrorRecord

logger = logging.getLogger(__name__)


class SourceCheck:
    """Compares the re-read source with the stored conversations, chunk by chunk."""

    def __init__(
        self,
        store: StateStore,
        *,
        progress: CountCallback | None = None,
        first: int = 0,
        marks: MarkOf | None = None,
    ) -> None:
        self.store = store
        self.outcomes: Iterator[PlanOutcome] = iter(())
        """The re-read source, planned with `skip=self.skips` (set before `start`)."""
        self.progress = progress
        self.stored = store.known_count()
        self.next_seq = self.stored
        """The `seq` a record new to the job takes."""
        self.first = first
        """The first stored conversation the read reaches: the source's read starts at its
        record (`JsonFilesSource.start_at`); all before it are migrated, and not compared."""
        self.checked = first
        self.migrated_changed = 0
        self._marks = marks
        self._in_step = True
        """Every record so far matched the stored conversation next in line (or was new after
        them all): only then does a record's mark tell that what is before it is stored."""
        self._rows = (row for row, _ in store.iter_conversations(start=first))
        self._row: ConversationRow | None = None
        self._started = False
        self._gone: dict[str, int] = {}
        self._ids_before: set[bytes] | None = None
        """The source ids before `first` (digests), read once, when first needed."""

    def earlier(self, source_id: str) -> str | None:
        """Where a conversation before `first` with this source id was read (the read does
        not reach those records, so its own look for duplicate ids cannot see them)."""
        if self.first == 0:
            return None
        if self._ids_before is None:
            self._ids_before = {id_key(known) for known in self.store.source_ids_below(self.first)}
        if id_key(source_id) not in self._ids_before:
            return None
        return self.store.first_location_before(source_id, self.first)

    def mark(self, location: str) -> str | None:
        """The source mark of the record read at `location`, while the read is in step with
        the stored conversations (a mark is kept only where every record before it is one)."""
        found = None if self._marks is None else self._marks(location)
        return found if self._in_step else None

    @property
    def done(self) -> bool:
        """Every stored conversation has been compared with the source."""
        return self._started and self._row is None

    @property
    def bound(self) -> int | None:
        """The claim bound: conversations below this `seq` have been compared (None: all)."""
        return None if self._row is None else self._row.seq

    def skips(self, source_id: str) -> bool:
        """Whether the source record need not be planned: the conversation it is next compared
        with is migrated (its plan would change nothing that is done; `sync` is for that)."""
        row = self._row
        return (
            row is not None
            and row.source_id == source_id
            and row.status == "migrated"
            and row.conversation_id is not None
        )

    def start(self) -> None:
        """Before any claim: nothing is claimable until the check has compared it."""
        self._started = True
        self._row = next(self._rows, None)
        self.store.update_job(checked_below=self.bound)

    def step(self, count: int) -> list[tuple[int, PlanOutcome]]:
        """Compare the next `count` source records, then move the claim bound past them.

        Returns the records new to the job (numbered), for the caller to store."""
        new: list[tuple[int, PlanOutcome]] = []
        for _ in range(count):
            if self._row is None:
                break
            outcome = next(self.outcomes, None)
            if outcome is None:
                self._in_step = False
                while self._row is not None:
                    self._gone_row(self._row)
                    self._advance()
                break
            self._match(outcome, new)
        if new:
            self.store.add_outcomes(new, marks_by_seq(self.mark, new))
        self.store.update_job(checked_below=self.bound)
        if self.progress is not None:
            self.progress(self.checked, max(self.stored, self.checked))
        if self._row is None and self.migrated_changed:
            logger.warning(
                "%d migrated conversation(s) changed in the source since they were migrated; "
                "`migrate sync` brings such changes across",
                self.migrated_changed,
                extra={"event": "source_changed", "count": self.migrated_changed},
            )
        return new

    def rest(self) -> Iterator[PlanOutcome]:
        """The source after the stored conversations: records the check skipped as gone are
        compared when they turn up; the others are new to the job."""
        for outcome in self.outcomes:
            source_id = _source_id(outcome)
            seq = None if source_id is None else self._gone.pop(source_id, None)
            if seq is None:
                yield outcome
            else:
                self._in_step = False
                self._compare(self.store.conversation(seq), outcome)

    # --- matching ------------------------------------------------------------------------------

    def _advance(self) -> None:
        self.checked += 1
        self._row = next(self._rows, None)

    def _match(self, outcome: PlanOutcome, new: list[tuple[int, PlanOutcome]]) -> None:
        row = self._row
        assert row is not None
        source_id = _source_id(outcome)
        if row.source_id == source_id:
            self._compare(row, outcome)
            self._advance()
            return
        self._in_step = False
        if source_id is not None:
            seq = self.store.first_seq_with(source_id, at_least=row.seq)
            if seq is not None:
                while self._row is not None and self._row.seq < seq:
                    self._gone_row(self._row)
                    self._advance()
                assert self._row is not None
                self._compare(self._row, outcome)
                self._advance()
                return
            earlier = self._gone.pop(source_id, None)
            if earlier is not None:
                self._compare(self.store.conversation(earlier), outcome)
                return
        new.append((self.next_seq, outcome))
        self.next_seq += 1

    def _compare(self, row: ConversationRow, outcome: PlanOutcome) -> None:
        if isinstance(outcome, Unplanned):
            return
        fingerprint = outcome.fingerprint if isinstance(outcome, ConversationPlan) else None
        same = row.fingerprint == fingerprint or self._only_cut_differs(row, outcome)
        if row.source_id == _source_id(outcome) and same:
            if row.status == "failed" and row.retryable:
                self.store.reset_for_retry(row.seq)
            return
        if row.conversation_id is None:
            self.store.replace_outcome(row.seq, outcome, self.mark(outcome.location))
        elif row.status == "in_progress":
            self._fail(row, "source_changed", "changed in the source")
        elif row.status == "migrated":
            self._warn(row, "changed in the source")
        # Failed after a partial write: it stays failed, with what the report already says.

    def _only_cut_differs(self, row: ConversationRow, outcome: PlanOutcome) -> bool:
        """The same metadata and items cut into other batches: a plan an earlier version made
        (it kept tool calls with their outputs). A conversation already written to goes on with
        its stored batches."""
        if row.conversation_id is None or not isinstance(outcome, ConversationPlan):
            return False
        stored = self.store.plan(row.seq)
        return (
            stored is not None
            and stored.metadata == outcome.metadata
            and [planned.item for planned in stored.items]
            == [planned.item for planned in outcome.items]
        )

    def _gone_row(self, row: ConversationRow) -> None:
        if row.source_id is not None:
            self._gone[row.source_id] = row.seq
        if row.conversation_id is None:
            missing = ErrorRecord(
                code="missing_from_source",
                message="the conversation is no longer in the source",
                location=row.location,
                conversation_id=row.source_id,
            )
            self.store.replace_outcome(row.seq, missing)
        elif row.status == "in_progress":
            self._fail(row, "missing_from_source", "is no longer in the source")
        elif row.status == "migrated":
            self._warn(row, "is no longer in the source")

    def _fail(self, row: ConversationRow, code: str, change: str) -> None:
        message = (
            f"conversation {row.source_id} ({row.location}) {change}; it is in progress as "
            f"{row.conversation_id} with {row.landed_items} of {row.planned_items} items; "
            "nothing more was sent to it"
        )
        error = ErrorRecord(
            code=code,
            message=message,
            location=row.location,
            conversation_id=row.source_id,
            hint="restore the source as it was and resume again, or roll the job back",
        )
        self.store.fail_unclaimed(row.seq, error, retryable=True)
        logger.warning(message, extra={"event": "source_changed", "seq": row.seq})

    def _warn(self, row: ConversationRow, change: str) -> None:
        self.migrated_changed += 1
        logger.warning(
            "conversation %s (%s) %s; it was migrated as %s and stays as it is",
            row.source_id,
            row.location,
            change,
            row.conversation_id,
            extra={"event": "source_changed", "seq": row.seq},
        )


def _source_id(outcome: PlanOutcome) -> str | None:
    if isinstance(outcome, ConversationPlan):
        return outcome.source_id
    return outcome.conversation_id


def retry_all_failures(store: StateStore) -> None:
    """`resume --retry-failed`: every failed conversation that has a plan goes back in line."""
    for row, plan in store.iter_conversations(statuses=["failed"], with_plans=True):
        if plan is not None and plan.items:
            store.reset_for_retry(row.seq)


def retry_transient_failures(store: StateStore) -> None:
    """`resume --no-source-check`: conversations that failed for a transient reason go again."""
    for row, _ in store.iter_conversations(statuses=["failed"]):
        if row.retryable:
            store.reset_for_retry(row.seq)
