"""The exact check: ask the target how many input tokens a migrated conversation holds.

`POST /v1/responses/input_tokens` with `conversation` and `model` returns the count the model
would take as input if the app continued the conversation now. `migrate verify --count-tokens`
compares it with the planner's estimate for each migrated conversation.
"""

from __future__ import annotations

from openai import AsyncOpenAI
from pydantic import BaseModel, Field

MAX_LISTED = 1000


async def exact_input_tokens(client: AsyncOpenAI, *, conversation_id: str, model: str) -> int:
    """The target's own count of the conversation's input tokens for `model`."""
    counted = await client.responses.input_tokens.count(conversation=conversation_id, model=model)
    return counted.input_tokens


class TokenDifference(BaseModel):
    """One conversation whose estimate differs from the target's count."""

    source_id: str | None
    conversation_id: str
    estimate: int
    exact: int

    @property
    def difference(self) -> int:
        return self.estimate - self.exact


class TokenCheck(BaseModel):
    """How far the estimates were from the target's counts, over every checked conversation."""

    model: str
    checked: int = 0
    exact_matches: int = 0
    estimate_total: int = 0
    exact_total: int = 0
    max_difference: int = 0
    """The largest |estimate - exact| of one conversation."""
    max_relative_difference: float = 0.0
    """The largest |estimate - exact| / exact of one conversation."""
    differing: list[TokenDifference] = Field(default_factory=list)
    """The conversations whose estimate is off (at most `MAX_LISTED`)."""

    def add(self, source_id: str | None, conversation_id: str, estimate: int, exact: int) -> None:
        """One checked conversation."""
        self.checked += 1
        self.estimate_total += estimate
        self.exact_total += exact
        gap = abs(estimate - exact)
        if gap == 0:
            self.exact_matches += 1
            return
        self.max_difference = max(self.max_difference, gap)
        self.max_relative_difference = max(self.max_relative_difference, gap / max(exact, 1))
        if len(self.differing) < MAX_LISTED:
            self.differing.append(
                TokenDifference(
                    source_id=source_id,
                    conversation_id=conversation_id,
                    estimate=estimate,
                    exact=exact,
                )
            )
