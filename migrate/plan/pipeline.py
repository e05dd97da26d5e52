"""One path for every mode: read the source, transform, plan; a run adds a target.

`iterate_plans` is the shared stage: `migrate plan` writes what it yields to files, `migrate run`
hands it to the replayer. A plan with no items means the conversation is skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from adapters import Source, SourceConfig, SourceOpenError, open_source
from adapters.model import SourceConversation, SourceFailure
from migrate.errors import ConfigError, ConversationError
from migrate.plan.model import ConversationPlan
from migrate.plan.planner import plan_conversation
from migrate.transform.findings import ErrorRecord
from migrate.transform.policy import Policy

PlanOutcome = ConversationPlan | ErrorRecord
Observer = Callable[[SourceConversation | None, PlanOutcome], None]
"""Sees each source conversation (None for an unreadable record) with what it became."""


def open_configured_source(config: SourceConfig) -> Source:
    """The reader for `config`; a source that cannot be opened is a configuration error."""
    try:
        return open_source(config)
    except SourceOpenError as exc:
        raise ConfigError(str(exc)) from exc


def iterate_plans(
    source: Source, policy: Policy, *, observe: Observer | None = None
) -> Iterator[PlanOutcome]:
    """Yield one plan (or one error) per source record, in source order."""
    for record in source.read():
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
            outcome = plan_or_error(record, policy)
        if observe is not None:
            observe(conversation, outcome)
        yield outcome


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
