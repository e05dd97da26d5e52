"""A planned outcome (a plan or the error that stopped one) as a `conversations` row."""

from __future__ import annotations

from typing import Any

from migrate.plan.model import ConversationPlan
from migrate.state.ledger import sync_note
from migrate.state.plan_facts import fact_columns
from migrate.state.schema import Status
from migrate.transform.findings import ErrorRecord


def outcome_values(seq: int, outcome: ConversationPlan | ErrorRecord, now: float) -> dict[str, Any]:
    base: dict[str, Any] = {
        "seq": seq,
        "landed_items": 0,
        "calls": 0,
        "retries": 0,
        "reconciliations": 0,
        "possible_orphans": 0,
        "orphans_with_items": 0,
        "unread_items": 0,
        "repairs": 0,
        "ambiguous_at": None,
        "retryable": False,
        "updated_at": now,
    }
    if isinstance(outcome, ErrorRecord):
        return base | {
            "conversation_id": None,
            "base_items": None,
            "source_id": outcome.conversation_id,
            "source_kind": None,
            "location": outcome.location,
            "status": "failed",
            "planned_items": 0,
            "planned_calls": 0,
            "fingerprint": None,
            "plan": None,
            "findings": 0,
            "error_code": outcome.code,
            "error_message": outcome.message,
            "error_hint": outcome.hint,
            **fact_columns(None),
        }
    append = outcome.append
    status: Status = "pending" if outcome.items else "skipped"
    if append is not None and append.reconcile and outcome.items:
        # The conversation may hold more than the ledger says: reconcile before any write.
        status = "in_progress"
    return base | {
        "source_id": outcome.source_id,
        "source_kind": outcome.source_kind,
        "location": outcome.location,
        "status": status,
        "planned_items": len(outcome.items),
        "planned_calls": (1 if append is None else 0) + len(outcome.batch_sizes)
        if outcome.items
        else 0,
        "fingerprint": outcome.fingerprint,
        "plan": outcome.model_dump_json(),
        "findings": sum(f.count for f in outcome.findings),
        "error_code": sync_note(outcome),
        "error_message": None,
        "error_hint": None,
        "conversation_id": None if append is None else append.conversation_id,
        "base_items": None if append is None else append.position,
        **fact_columns(outcome),
    }
