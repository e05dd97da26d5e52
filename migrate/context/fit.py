"""Fit a conversation to its model's input limit: count it, flag it, and trim it if asked.

The policy's `oversize` decides what happens to a conversation over the limit:

- `keep` (default): it is migrated whole, with a `context_over_limit` finding: the app must
  enable compaction (`context_management` with `compact_threshold`, or
  `POST /responses/compact`) before its first call on it can succeed;
- `fail`: the conversation fails with `context_over_limit` and is not migrated;
- `keep_recent`: the newest items that fit under the limit are migrated and the oldest are
  dropped, never separating a tool call from its output; a `context_trimmed` finding counts
  the dropped items and lists their source ids. When not even the newest item fits, the
  conversation fails with `context_over_limit`.

A conversation at or above 80% of the limit (and not over it) gets `context_near_limit`. A
count that rests on estimates (images, files) says so in the plan (`tokens_estimate`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from migrate.context.count import TokenCount, count_items
from migrate.context.models import NEAR_LIMIT_SHARE, model_spec
from migrate.errors import ConversationError
from migrate.transform.findings import Finding
from migrate.transform.policy import Policy

_CALLS = frozenset({"function_call", "custom_tool_call"})
_OUTPUTS = frozenset({"function_call_output", "custom_tool_call_output"})
COMPACTION_HINT = (
    "continue it with compaction enabled (context_management compact_threshold, or "
    "POST /responses/compact), or plan with --policy oversize=keep_recent"
)


@dataclass
class ContextFit:
    """What lands of one conversation, and how many tokens it holds."""

    tokens: int
    """Input tokens of the items that land (for the policy's model)."""
    dropped: int = 0
    """Items dropped from the head (`keep_recent` only)."""
    estimate: str | None = None
    """None when the count is exact; else what the estimate rests on (images, files)."""
    findings: list[Finding] = field(default_factory=list)


def fit_context(
    items: Sequence[Mapping[str, Any]],
    *,
    entries: Sequence[tuple[int, str | None]],
    conversation_id: str,
    policy: Policy,
) -> ContextFit:
    """Count `items` for `policy.model` and apply `policy.oversize` (raises `ConversationError`).

    `entries` holds, per item, the index and id of the source entry it came from.
    """
    model = model_spec(policy.model)
    limit = policy.context_limit if policy.context_limit is not None else model.input_limit
    count = count_items(items, model)
    total = count.total
    fit = ContextFit(tokens=total, estimate=count.describe_estimate() or None)
    where = f"for {policy.model} (input limit {limit:,})"
    if total > limit:
        if policy.oversize == "fail":
            raise ConversationError(
                "context_over_limit",
                f"conversation {conversation_id!r}: {total:,} input tokens, over the limit {where}",
                conversation_id=conversation_id,
                hint="plan with --policy oversize=keep_recent or oversize=keep",
            )
        if policy.oversize == "keep":
            fit.findings.append(
                Finding(
                    code="context_over_limit",
                    conversation_id=conversation_id,
                    message=f"{total:,} input tokens, over the limit {where}: {COMPACTION_HINT}",
                )
            )
            return fit
        start = keep_recent_start(items, count, limit)
        if start is None:
            raise ConversationError(
                "context_over_limit",
                f"conversation {conversation_id!r}: {total:,} input tokens, and not even its "
                f"newest item fits under the limit {where}",
                conversation_id=conversation_id,
                hint="raise --context-limit or choose a model with a larger limit",
            )
        fit.tokens = sum(count.per_item[start:]) + count.reply_overhead
        fit.dropped = start
        dropped = dict.fromkeys(
            f"{index} ({source_id})" if source_id else str(index)
            for index, source_id in entries[:start]
        )
        fit.findings.append(
            Finding(
                code="context_trimmed",
                conversation_id=conversation_id,
                message=f"{total:,} input tokens, over the limit {where}: the oldest {start} "
                f"item(s) ({total - fit.tokens:,} tokens) are not migrated, {fit.tokens:,} "
                f"tokens land; dropped source entries: {', '.join(dropped)}",
                count=start,
            )
        )
    elif total >= NEAR_LIMIT_SHARE * limit:
        fit.findings.append(
            Finding(
                code="context_near_limit",
                conversation_id=conversation_id,
                message=f"{total:,} input tokens, {total / limit:.0%} of the limit {where}",
            )
        )
    return fit


def keep_recent_start(
    items: Sequence[Mapping[str, Any]], count: TokenCount, limit: int
) -> int | None:
    """The first item to keep so that the rest fits `limit` with no call cut from its output.

    None when no non-empty tail fits.
    """
    size = len(items)
    # cut[s] < 0 means starting at s would keep an output whose call is dropped
    blocked = [0] * (size + 2)
    call_at: dict[str, int] = {}
    for position, item in enumerate(items):
        kind = item.get("type")
        if kind in _CALLS:
            call_at.setdefault(str(item.get("call_id")), position)
        elif kind in _OUTPUTS:
            call = call_at.get(str(item.get("call_id")))
            if call is not None and call < position:
                blocked[call + 1] += 1
                blocked[position + 1] -= 1
    tail = count.total
    open_pairs = 0
    for start in range(size):
        open_pairs += blocked[start]
        if open_pairs == 0 and tail <= limit:
            return start
        tail -= count.per_item[start]
    return None
