"""One path for every mode: read the source, transform, plan; a run adds a target.

`iterate_plans` is the shared stage: `migrate plan` writes what it yields to files, `migrate run`
hands it to the replayer. A plan with no items means the conversation is skipped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

from adapters import Source, SourceConfig, SourceOpenError, open_source
from adapters.model import SourceConversation, SourceFailure, SourceRecord
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


def estimate_total(config: SourceConfig) -> int | None:
    """How many conversations the source holds, when that is cheap to learn (else None).

    A JSON Lines file: its non-empty lines; a directory: its `.json` and `.jsonl` files when
    all are `.json` (one conversation each). Other sources: unknown (the bar shows a count).
    """
    path = getattr(config, "path", None)
    if not isinstance(path, Path):
        return None
    try:
        if path.is_file() and path.suffix == ".jsonl":
            with path.open("rb") as lines:
                return sum(1 for line in lines if line.strip())
        if path.is_dir():
            files = [p for p in path.rglob("*") if p.suffix in (".json", ".jsonl")]
            if files and all(p.suffix == ".json" for p in files):
                return len(files)
    except OSError:
        return None
    return None


def read_source(source: Source) -> Iterator[SourceRecord]:
    """The source's records; its own errors become `SourceError` (before the first record:
    it cannot be opened) or `SourceReadError` (it failed in the middle of the read)."""
    records = source.read()
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
) -> Iterator[PlanOutcome]:
    """Yield one plan (or one error) per source record, in source order.

    A conversation whose source id an earlier one of the job had is handled by
    `policy.duplicate_source_id`. The ids seen are kept as 16-byte digests (about 100 bytes
    each in memory: some 200 MB for two million conversations). A conversation whose id
    `skip` accepts is not transformed: it comes out as `Unplanned` (and is not observed).
    """
    first_seen: set[bytes] = set()
    for record in read_source(source):
        conversation = None if isinstance(record, SourceFailure) else record
        outcome: PlanOutcome
        if isinstance(record, SourceFailure):
            outcome = ErrorRecord(
                code=record.code,
                message=record.message,
                location=record.location,
                conversation_id=record.conversation_id,
            )
        else:
            key = hashlib.blake2b(record.id.encode("utf-8", "surrogatepass"), digest_size=16)
            if key.digest() in first_seen:
                outcome = _duplicate(record, policy)
            else:
                first_seen.add(key.digest())
                if skip is not None and skip(record.id):
                    yield Unplanned(
                        code="not_replanned",
                        message="read again but not planned: the job holds it as migrated",
                        location=record.location,
                        conversation_id=record.id,
                    )
                    continue
                outcome = plan_or_error(record, policy)
        if observe is not None:
            observe(conversation, outcome)
        yield outcome


def _duplicate(conversation: SourceConversation, policy: Policy) -> PlanOutcome:
    message = (
        f"source id {conversation.id!r} was already read earlier in this job; this copy is at "
        f"{conversation.location}"
    )
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
            code="duplicate_source_id", conversation_id=conversation.id, message=message
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
