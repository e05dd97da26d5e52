"""A job's token figures: total, distribution and the conversations over or near the limit."""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable

from pydantic import BaseModel

from migrate.context.models import model_spec
from migrate.transform.findings import Finding
from migrate.transform.policy import Policy


class TokenFigures(BaseModel):
    """Token counts over a job's planned conversations, for the policy's model."""

    model: str
    limit: int
    counted: int = 0
    """Conversations counted (those with items)."""
    total: int = 0
    p50: int = 0
    p90: int = 0
    p99: int = 0
    max: int = 0
    over_limit: int = 0
    """Conversations that land over the limit (`oversize=keep`) or failed for it (`fail`)."""
    near_limit: int = 0
    trimmed: int = 0
    """Conversations whose oldest items were dropped to fit (`oversize=keep_recent`)."""
    estimated: int = 0
    """Conversations whose count rests on estimates (images, files)."""


class TokenTally:
    """Collects one count per conversation (8 bytes each) and sums them up at the end."""

    def __init__(self, policy: Policy) -> None:
        spec = model_spec(policy.model)
        self._figures = TokenFigures(
            model=policy.model,
            limit=policy.context_limit if policy.context_limit is not None else spec.input_limit,
        )
        self._counts: array[int] = array("Q")

    def add(self, tokens: int | None, findings: Iterable[Finding], *, estimated: bool) -> None:
        """One planned conversation: its token count, its findings, whether it is estimated."""
        if tokens is not None:
            self._counts.append(tokens)
        codes = {finding.code for finding in findings}
        figures = self._figures
        figures.over_limit += "context_over_limit" in codes
        figures.near_limit += "context_near_limit" in codes
        figures.trimmed += "context_trimmed" in codes
        figures.estimated += estimated

    def add_failure(self, code: str) -> None:
        """One failed conversation: counted over the limit when that is why it failed."""
        self._figures.over_limit += code == "context_over_limit"

    def figures(self) -> TokenFigures:
        """The figures so far."""
        ordered = sorted(self._counts)
        figures = self._figures.model_copy()
        figures.counted, figures.total = len(ordered), sum(ordered)
        if ordered:
            figures.p50, figures.p90, figures.p99 = (
                nearest_rank(ordered, share) for share in (0.5, 0.9, 0.99)
            )
            figures.max = ordered[-1]
        return figures


def nearest_rank(ordered: list[int], share: float) -> int:
    """The nearest-rank percentile of a sorted, non-empty list."""
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]
