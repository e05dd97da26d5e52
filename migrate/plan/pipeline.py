"""One path for every mode: read the source, transform, plan; a run adds a target.

`iterate_plans` is the shared stage: `migrate plan` writes what it yields to files, `migrate run`
hands it to the replayer. A plan with no items means the conversation is skipped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from adapters import Source, SourceConfig, SourceOpenError, open_source
from adapters.json.files import JsonFilesSource
from adapters.json.listing import SkippedFile
from adapters.model import SourceConversation, SourceFailure, SourceRecord, UnreadConversation
from adapters.sql.tables import SqlTableSource
from migrate.errors import ConversationError, SourceError, SourceReadError
from migrate.plan.model import ConversationPlan
from migrate.plan.planner import plan_conversation
from migrate.transform.findings import ErrorRecord, Finding
from migrate.transform.policy import Policy

PlanOutcome = ConversationPlan | ErrorRecord
Observer = Callable[[SourceConversation | None, PlanOutcome], None]
"""Sees each source conversation (None for an unreadable record) with what it became."""


def open_configured_source(config: SourceConfig) -> Source:
    """The reader for `config`; a source that cannot be opened is a configuration error."""
    try:
        return open_source(config)
    except SourceOpenError as exc:
        raise SourceError(str(exc)) from exc


MAX_SKIPPED_LISTED = 1000


class SkippedFiles(BaseModel):
    """Files of the source that hold no conversations to read (a `.txt`, a ChatGPT export's
    `user.json`), counted; the first `MAX_SKIPPED_LISTED` are named with their reasons."""

    count: int = 0
    files: list[SkippedFile] = Field(default_factory=list)


def skipped_files(source: Source) -> SkippedFiles:
    """What the source skips (only a JSON directory or export skips files)."""
    skipped = source.skipped_files if isinstance(source, JsonFilesSource) else []
    return SkippedFiles(count=len(skipped), files=skipped[:MAX_SKIPPED_LISTED])


@dataclass(frozen=True)
class ReadTotal:
    """What a progress bar of a read counts to: conversations, or the bytes of the files."""

    total: int | None
    """None: unknown (the bar shows a count and a rate)."""
    unit: Literal["conversations", "bytes"] = "conversations"
    read_bytes: Callable[[], int] | None = None

    def position(self, conversations: int) -> int:
        """Where the read stands after `conversations` records."""
        if self.read_bytes is None:
            return conversations
        return min(self.read_bytes(), self.total or 0)


def read_total(source: Source, config: SourceConfig) -> ReadTotal:
    """The total of a read of `source`, when it is cheap to learn.

    A JSON Lines file: its non-empty lines. Other JSON sources (a large `conversations.json`,
    a directory, a ChatGPT export's zip): the bytes of their files. SQL: one `COUNT` of the
    conversations `where` and `since` select. Other sources: unknown.
    """
    try:
        if isinstance(source, SqlTableSource):
            return ReadTotal(source.count_conversations())
        path = getattr(config, "path", None)
        if isinstance(path, Path) and path.is_file() and path.suffix == ".jsonl":
            with path.open("rb") as lines:
                return ReadTotal(sum(1 for line in lines if line.strip()))
    except (OSError, SourceOpenError):
        return ReadTotal(None)
    if isinstance(source, JsonFilesSource) and source.size:
        meter = source.meter
        return ReadTotal(source.size, "bytes", lambda: meter.done)
    return ReadTotal(None)


MarkOf = Callable[[str], str | None]
"""Where the record read at a location starts in the source (None: the source cannot say)."""


def source_marks(source: Source) -> MarkOf | None:
    """How to learn where each record of `source` starts, if its reader can start a read
    there (`JsonFilesSource.mark`)."""
    return source.mark if isinstance(source, JsonFilesSource) else None


def start_read_at(source: Source, mark: str) -> bool:
    """Make the next read of `source` start at `mark`; False if it cannot (the source changed
    before it, or its reader cannot start inside it): the read starts at the beginning."""
    return isinstance(source, JsonFilesSource) and source.start_at(mark)


def marks_by_seq(
    mark_of: MarkOf | None, numbered: Sequence[tuple[int, PlanOutcome]]
) -> dict[int, str]:
    """The marks of numbered outcomes just read (for `StateStore.add_outcomes`)."""
    if mark_of is None:
        return {}
    found = ((seq, mark_of(outcome.location)) for seq, outcome in numbered)
    return {seq: mark for seq, mark in found if mark is not None}


def expected_conversations(
    config: SourceConfig, *, limit: int | None = None, ids: int | None = None
) -> int | None:
    """How many conversations a job of this source will take, when that is cheap to learn
    (`read_total` in conversations), cut to the job's `--limit` and `--ids`; else None."""
    try:
        source = open_source(config)
    except SourceOpenError:
        return None
    total = read_total(source, config)
    count = total.total if total.unit == "conversations" else None
    for cap in (limit, ids):
        if cap is not None:
            count = cap if count is None else min(count, cap)
    return count


def read_source(
    source: Source, *, skip: Callable[[str], bool] | None = None
) -> Iterator[SourceRecord]:
    """The source's records; its own errors become `SourceError` (before the first record:
    it cannot be opened) or `SourceReadError` (it failed in the middle of the read).

    `skip` goes to a reader that can leave records unread (`JsonFilesSource`): a record whose
    id it accepts comes out as an `UnreadConversation`."""
    records = source.read(skip=skip) if isinstance(source, JsonFilesSource) else source.read()
    count = 0
    while True:
        try:
            record = next(records)
        except StopIteration:
            return
        except SourceOpenError as exc:
            if count == 0:
                raise SourceError(str(exc)) from exc
            raise SourceReadError(
                f"reading the source failed after {count} records: {exc}",
                hint="fix the source, then `migrate resume` the job (or plan it again)",
            ) from exc
        except Exception as exc:
            raise SourceReadError(
                f"reading the source failed after {count} records: {type(exc).__name__}: {exc}",
                hint="fix the source, then `migrate resume` the job (or plan it again)",
            ) from exc
        count += 1
        yield record


class Unplanned(ErrorRecord):
    """A record `iterate_plans` read but did not plan, because its `skip` said so."""


def iterate_plans(
    source: Source,
    policy: Policy,
    *,
    observe: Observer | None = None,
    skip: Callable[[str], bool] | None = None,
    earlier: Callable[[str], str | None] | None = None,
) -> Iterator[PlanOutcome]:
    """Yield one plan (or one error) per source record, in source order.

    A conversation whose source id an earlier one of the job had is handled by
    `policy.duplicate_source_id`, and its finding names both copies' locations. The ids seen
    are kept as 16-byte digests with where the first copy was (`FirstCopies`); for a read that
    starts after the source's first records (`JsonFilesSource.start_at`), `earlier` tells where
    an id's copy among those records is (None: it has none). A conversation whose id `skip`
    accepts is not transformed: it comes out as `Unplanned` (and is not observed); a JSON
    reader does not even decode its messages (`read_source`). `skip` is asked only for an id's
    first record, as that record is reached.
    """
    first_seen = FirstCopies()
    asked: list[str] = []  # the last id `earlier` found no copy of (asked once a record)

    def note_earlier(source_id: str) -> None:
        if earlier is None or source_id in first_seen or asked == [source_id]:
            return
        location = earlier(source_id)
        if location is None:
            asked[:] = [source_id]
        else:
            first_seen.first_location(source_id, location)

    def first_and_skipped(source_id: str) -> bool:
        note_earlier(source_id)
        return source_id not in first_seen and skip is not None and skip(source_id)

    for record in read_source(source, skip=None if skip is None else first_and_skipped):
        conversation = None if isinstance(record, SourceFailure) else record
        outcome: PlanOutcome
        if isinstance(record, UnreadConversation):
            first_seen.first_location(record.id, record.location)
            yield _unplanned(record)
            continue
        if isinstance(record, SourceFailure):
            outcome = ErrorRecord(
                code=record.code,
                message=record.message,
                location=record.location,
                conversation_id=record.conversation_id,
            )
        else:
            note_earlier(record.id)
            first_location = first_seen.first_location(record.id, record.location)
            if first_location is not None:
                outcome = _duplicate(record, first_location, policy)
            else:
                if skip is not None and skip(record.id):
                    yield _unplanned(record)
                    continue
                outcome = plan_or_error(record, policy)
        if observe is not None:
            observe(conversation, outcome)
        yield outcome


class FirstCopies:
    """Where each source id was first read in a job, kept small.

    An id is kept as its 16-byte digest, and its location as the index of its file (or table)
    part, shared by every record of that file, plus its own tail (`12` of `chats.jsonl:12`):
    about 210-230 bytes an id (measured with tracemalloc over 200,000 ids), some 450 MB for
    two million conversations.
    """

    def __init__(self) -> None:
        self._seen: dict[bytes, tuple[int, str]] = {}
        self._heads: dict[str, int] = {}
        self._head_list: list[str] = []

    def __contains__(self, source_id: object) -> bool:
        return isinstance(source_id, str) and id_key(source_id) in self._seen

    def first_location(self, source_id: str, location: str) -> str | None:
        """Where `source_id` was first read, or None (and `location` remembered) if it was not."""
        key = id_key(source_id)
        seen = self._seen.get(key)
        if seen is not None:
            return self._head_list[seen[0]] + seen[1]
        cut = max(location.rfind(":"), location.rfind(" ")) + 1
        head, tail = location[:cut], location[cut:]
        index = self._heads.get(head)
        if index is None:
            index = self._heads[head] = len(self._head_list)
            self._head_list.append(head)
        self._seen[key] = (index, tail)
        return None


def id_key(source_id: str) -> bytes:
    """A source id as the 16-byte digest `FirstCopies` keeps."""
    return hashlib.blake2b(source_id.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def _unplanned(record: SourceConversation) -> Unplanned:
    return Unplanned(
        code="not_replanned",
        message="read again but not planned: the job holds it as migrated",
        location=record.location,
        conversation_id=record.id,
    )


def _duplicate(
    conversation: SourceConversation, first_location: str, policy: Policy
) -> PlanOutcome:
    message = (
        f"source id {conversation.id!r} was already read earlier in this job: the first copy is "
        f"at {first_location}, this copy is at {conversation.location}"
    )
    where = {"first_location": first_location, "location": conversation.location}
    match policy.duplicate_source_id:
        case "fail":
            return ErrorRecord(
                code="duplicate_source_id",
                message=message,
                location=conversation.location,
                conversation_id=conversation.id,
                hint="set policy.duplicate_source_id = 'keep_all' or 'first'",
            )
        case "first":
            outcome = plan_or_error(conversation.model_copy(update={"entries": []}), policy)
            message += "; skipped (policy duplicate_source_id = 'first')"
        case _:
            outcome = plan_or_error(conversation, policy)
            message += "; migrated as a conversation of its own"
    if isinstance(outcome, ConversationPlan):
        finding = Finding(
            code="duplicate_source_id",
            conversation_id=conversation.id,
            message=message,
            value=where,
        )
        outcome = outcome.model_copy(update={"findings": [*outcome.findings, finding]})
    return outcome


def plan_or_error(conversation: SourceConversation, policy: Policy) -> PlanOutcome:
    """Plan one conversation; a conversation-level error becomes an `ErrorRecord`."""
    try:
        return plan_conversation(conversation, policy)
    except ConversationError as exc:
        return ErrorRecord(
            code=exc.code,
            message=exc.message,
            location=exc.location or conversation.location,
            conversation_id=exc.conversation_id or conversation.id,
            source_id=exc.source_id,
            hint=exc.hint,
        )


def is_skipped(outcome: PlanOutcome) -> bool:
    """A conversation with nothing to send is skipped, not failed."""
    return isinstance(outcome, ConversationPlan) and not outcome.items
