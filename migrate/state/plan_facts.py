"""What the report needs of a plan (its findings, tokens, chain ids), kept beside the plan.

Written in the transaction that stores the plan (and once, from the stored plans, by the
upgrade to schema version 9), so that writing the report never parses a plan again.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict

from migrate.plan.model import ConversationPlan
from migrate.transform.findings import Finding

CHAIN_METADATA = ("first_response_id", "leaf_response_id")
"""Responses chains: the first and last response ids, from the conversation's metadata."""


class PlanFacts(BaseModel):
    """The fields of a stored plan the report uses (the items are skipped, not built)."""

    model_config = ConfigDict(extra="ignore")

    metadata: dict[str, str] = {}
    tokens: int | None = None
    tokens_estimate: str | None = None
    findings: list[Finding] = []


def fact_columns(plan: ConversationPlan | PlanFacts | None) -> dict[str, Any]:
    """The `conversations` columns the report reads instead of the plan (None: no plan)."""
    if plan is None:
        return {"tokens": None, "tokens_estimated": False, **dict.fromkeys(CHAIN_METADATA)}
    return {
        "tokens": plan.tokens,
        "tokens_estimated": plan.tokens_estimate is not None,
        **{key: plan.metadata.get(key) for key in CHAIN_METADATA},
    }


def finding_rows(seq: int, findings: Iterable[Finding]) -> list[dict[str, Any]]:
    """The `findings` rows of one conversation, in its plan's order."""
    return [
        {
            "seq": seq,
            "number": number,
            "code": finding.code,
            "count": finding.count,
            "finding": finding.model_dump_json(),
        }
        for number, finding in enumerate(findings)
    ]
