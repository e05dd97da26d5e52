"""The planner: one source conversation becomes the exact API calls a run would send.

A plan is: create the conversation empty with its metadata, then append the items in batches
of at most `MAX_ITEMS_PER_CALL`. The plan carries a fingerprint so a resumed job can tell
whether the source changed under a conversation already in progress.

Metadata, in this order and within 16 pairs / keys <= 64 / values <= 512 characters:
`migrated_from` (the source kind), `source_id` (`sha256:<hex>` when longer than 512, finding
`source_id_hashed`), `title` (cut to 512 characters if longer), `created_at` (ISO 8601 UTC), then
the source's own metadata flattened to strings (nested objects as dotted keys, other values as
compact JSON). Whatever does not fit is listed in one `metadata_truncated` finding.

A conversation that yields no items is not an error: its plan has zero items and zero batches,
and the pipeline counts it as skipped.

Per-message timestamps. API items have no `created_at` (only the conversation has one, set by
the server), so each item keeps its source entry's timestamp beside it
(`PlannedItem.source_created_at`), the report writes it into `items.csv` (`source_created_at`,
ISO 8601 UTC), and one `item_timestamps_in_report` finding per conversation names the source's
field and says so. Timestamps are never written into message text: that would change what
the conversation says to a model that reads it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from adapters.model import SourceConversation, note_value
from migrate.context.fit import fit_context
from migrate.errors import ConversationError
from migrate.limits import (
    MAX_ITEMS_PER_CALL,
    MAX_METADATA_KEY_CHARS,
    MAX_METADATA_PAIRS,
    MAX_METADATA_VALUE_CHARS,
)
from migrate.plan.model import ConversationPlan
from migrate.plan.validate import batch_problems, item_problems, metadata_problems
from migrate.transform.findings import Finding
from migrate.transform.policy import Policy
from migrate.transform.transformer import PlannedItem


def plan_conversation(conversation: SourceConversation, policy: Policy) -> ConversationPlan:
    """Transform, validate and batch one conversation (raises `ConversationError`)."""
    # transform imports PlannedItem from this module, so it is imported here, not at the top
    from migrate.transform.transformer import transform

    result = transform(conversation, policy)
    findings = list(result.findings)
    metadata = build_metadata(conversation, findings)
    api_items = [planned.item for planned in result.items]
    fit = fit_context(
        api_items,
        entries=[(planned.entry_index, planned.source_id) for planned in result.items],
        conversation_id=conversation.id,
        policy=policy,
    )
    findings += fit.findings
    items = result.items[fit.dropped :]
    api_items = api_items[fit.dropped :]
    _add_source_times(items, conversation)
    findings += _timestamp_findings(conversation, items)
    batch_sizes = batch_sizes_for(api_items)
    plan = ConversationPlan(
        source_kind=conversation.source_kind,
        source_id=conversation.id,
        location=conversation.location,
        metadata=metadata,
        items=items,
        batch_sizes=batch_sizes,
        fingerprint=fingerprint(metadata, batch_sizes, api_items),
        findings=findings,
        tokens=fit.tokens,
        tokens_estimate=fit.estimate,
    )
    validate_plan(plan)
    return plan


def iso_time(seconds: float) -> str | None:
    """`seconds` (Unix) as ISO 8601 UTC (`2026-11-22T10:15:00Z`, with microseconds when it
    has a fraction), or None when it is no valid time."""
    try:
        moment = datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None
    pattern = "%Y-%m-%dT%H:%M:%S.%fZ" if moment.microsecond else "%Y-%m-%dT%H:%M:%SZ"
    return moment.strftime(pattern)


def _add_source_times(items: list[PlannedItem], conversation: SourceConversation) -> None:
    """Give each of `items` its source entry's timestamp, in place: the items are the
    transform's own, and a copy of each would cost about as much as building it."""
    entries = conversation.entries
    for planned in items:
        at = entries[planned.entry_index].created_at
        if at is not None:
            planned.source_created_at = at


def _timestamp_findings(
    conversation: SourceConversation, items: list[PlannedItem]
) -> list[Finding]:
    """One finding when items carry a source timestamp the API has no place for."""
    times = [p.source_created_at for p in items if p.source_created_at is not None]
    if not times:
        return []
    field = conversation.entry_time_field
    first, last = min(times), max(times)
    return [
        Finding(
            code="item_timestamps_in_report",
            conversation_id=conversation.id,
            message=f"the source's per-message timestamps ({field}) have no place in "
            "Conversations API items; each is kept in the report's items.csv "
            "(column source_created_at)",
            value={
                "field": field,
                "first": iso_time(first) or first,
                "last": iso_time(last) or last,
            },
        )
    ]


def build_metadata(conversation: SourceConversation, findings: list[Finding]) -> dict[str, str]:
    """The conversation metadata; appends a finding for anything that does not fit."""
    metadata: dict[str, str] = {
        "migrated_from": conversation.source_kind[:MAX_METADATA_VALUE_CHARS]
    }
    left_out: list[str] = []
    dropped: dict[str, Any] = {}
    source_id = conversation.id
    if len(source_id) > MAX_METADATA_VALUE_CHARS:
        source_id = "sha256:" + hashlib.sha256(source_id.encode()).hexdigest()
        findings.append(
            Finding(
                code="source_id_hashed",
                conversation_id=conversation.id,
                message=f"source id longer than {MAX_METADATA_VALUE_CHARS} characters "
                f"stored in metadata as {source_id}",
            )
        )
    metadata["source_id"] = source_id
    if conversation.title:
        metadata["title"] = conversation.title[:MAX_METADATA_VALUE_CHARS]
        if len(conversation.title) > MAX_METADATA_VALUE_CHARS:
            left_out.append("title (cut to 512 characters)")
            dropped["title"] = conversation.title
    if conversation.created_at is not None:
        try:
            created = datetime.fromtimestamp(conversation.created_at, tz=UTC)
            metadata["created_at"] = created.strftime("%Y-%m-%dT%H:%M:%SZ")
        except (OverflowError, OSError, ValueError):
            left_out.append(f"created_at (not a valid timestamp: {conversation.created_at!r})")
            dropped["created_at"] = conversation.created_at
    for key, value in _flatten_metadata(conversation.metadata):
        if key in metadata:
            left_out.append(f"{key} (name taken)")
        elif not 1 <= len(key) <= MAX_METADATA_KEY_CHARS:
            left_out.append(f"{key[:MAX_METADATA_KEY_CHARS]}... (key over 64 characters)")
        elif len(value) > MAX_METADATA_VALUE_CHARS:
            left_out.append(f"{key} (value over 512 characters)")
        elif len(metadata) >= MAX_METADATA_PAIRS:
            left_out.append(f"{key} (over 16 pairs)")
        else:
            metadata[key] = value
            continue
        dropped[key] = value
    if left_out:
        findings.append(
            Finding(
                code="metadata_truncated",
                conversation_id=conversation.id,
                message="metadata kept in the report only: " + ", ".join(left_out),
                count=len(left_out),
                value=note_value(dropped),
            )
        )
    return metadata


def _flatten_metadata(metadata: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    for key, value in metadata.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from _flatten_metadata(value, f"{name}.")
        elif isinstance(value, str):
            yield name, value
        else:
            yield name, json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def batch_sizes_for(items: list[dict[str, Any]]) -> list[int]:
    """Cut `items` into calls of 20, the last taking the rest: `ceil(len(items) / 20)` calls,
    the fewest the API allows.

    A tool call and its output may land in different calls. `POST /conversations/{id}/items`
    stores items as given and checks each one alone. The real API takes a
    `function_call_output` in a later request than its `function_call`, matched by `call_id`
    against the call it already stores (recorded: `ResponsesTests_FunctionCallWorks`, a
    `responses.create` whose input is the output alone); a call without its output only
    matters to a later `responses.create` ("No tool output found for function call"), which
    reads the whole conversation. Every output still follows its call (`validate_plan` checks
    it across calls), so once the conversation has landed each call has its output. Moving
    cuts to keep pairs together would cost calls on tool-heavy histories and protect nothing:
    a conversation cut short by a failure lacks items either way.
    """
    full, rest = divmod(len(items), MAX_ITEMS_PER_CALL)
    return [MAX_ITEMS_PER_CALL] * full + ([rest] if rest else [])


def fingerprint(
    metadata: Mapping[str, str], batch_sizes: list[int], items: list[dict[str, Any]]
) -> str:
    """sha256 over the canonical JSON of the metadata and the batches, as they will be sent."""
    batches: list[list[dict[str, Any]]] = []
    start = 0
    for size in batch_sizes:
        batches.append(items[start : start + size])
        start += size
    canonical = json.dumps(
        {"metadata": metadata, "batches": batches},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def validate_plan(plan: ConversationPlan) -> None:
    """Raise `ConversationError` (`invalid_item`, `invalid_metadata`) for what would be rejected."""
    problems = metadata_problems(plan.metadata)
    if problems:
        raise ConversationError(
            "invalid_metadata",
            f"conversation {plan.source_id!r} at {plan.location}: metadata: {'; '.join(problems)}",
            conversation_id=plan.source_id,
            location=plan.location,
        )
    seen_call_ids: set[str] = set()
    items = [planned.item for planned in plan.items]
    offset = 0
    for size in plan.batch_sizes:
        problems = batch_problems(items[offset : offset + size], seen_call_ids)
        if problems:
            raise _invalid_item(plan, plan.items[offset : offset + size], offset, problems)
        offset += size


def _invalid_item(
    plan: ConversationPlan, batch: list[PlannedItem], offset: int, problems: list[str]
) -> ConversationError:
    # name the first offending item by its position in the plan and its source entry
    culprit: PlannedItem | None = None
    for position, planned in enumerate(batch):
        if item_problems(planned.item) or any(p.startswith(f"item {position}:") for p in problems):
            culprit = planned
            offset += position
            break
    where = ""
    if culprit is not None:
        source = culprit.source_id or "no source id"
        where = f", item {offset} (source entry {culprit.entry_index}, {source})"
    return ConversationError(
        "invalid_item",
        f"conversation {plan.source_id!r} at {plan.location}{where}: {'; '.join(problems)}",
        conversation_id=plan.source_id,
        location=plan.location,
        source_id=culprit.source_id if culprit is not None else None,
    )
