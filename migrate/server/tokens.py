"""`POST /v1/responses/input_tokens` for a conversation, counted with `migrate.context`.

The real endpoint counts what a `responses.create` with the same body would take as input:
the conversation's items, then `input`, with `instructions` first. The local server counts
the same way with the same tokenizer and rules as the planner, so `migrate verify
--count-tokens` is tested offline; it knows the models of `migrate.context.models`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from migrate.context.count import count_items
from migrate.context.models import MODELS, model_spec
from migrate.errors import ConfigError
from migrate.server.errors import conversation_not_found, invalid_request

PAGE = 100

ItemPager = Callable[[str, str | None], tuple[list[dict[str, Any]], str | None] | None]
"""(conversation id, after) -> (items, next `after` or None), or None for no conversation."""


@dataclass(frozen=True)
class TokenCountRequest:
    """What a count request asks about."""

    model: str
    conversation_id: str | None
    instructions: list[dict[str, Any]]
    """`instructions` as a developer message (empty without them)."""
    input: list[dict[str, Any]]


def parse_token_count(body: dict[str, Any]) -> TokenCountRequest:
    """The parts of a count request (raises `ApiError` for a bad one)."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid_request("Missing required parameter: 'model'.", param="model")
    try:
        model_spec(model)
    except ConfigError:
        known = ", ".join(sorted(MODELS))
        raise invalid_request(
            f"The local server cannot count tokens for model '{model}' (it knows {known}).",
            param="model",
            code="model_not_found",
        ) from None
    conversation = body.get("conversation")
    if isinstance(conversation, dict):
        conversation = conversation.get("id")
    if conversation is not None and not isinstance(conversation, str):
        raise invalid_request(
            "Invalid type for 'conversation': expected a string or an object with 'id'.",
            param="conversation",
        )
    instructions = body.get("instructions")
    developer = [{"type": "message", "role": "developer", "content": instructions}]
    raw = body.get("input")
    if isinstance(raw, str):
        extra = [{"type": "message", "role": "user", "content": raw}]
    elif isinstance(raw, list):
        extra = [item for item in raw if isinstance(item, dict)]
    elif raw is None:
        extra = []
    else:
        raise invalid_request("Invalid type for 'input': expected a string or an array.")
    return TokenCountRequest(
        model=model,
        conversation_id=conversation,
        instructions=developer if isinstance(instructions, str) and instructions else [],
        input=extra,
    )


def count_input_tokens(body: dict[str, Any], pages: ItemPager) -> dict[str, Any]:
    """The response body for a count request; reads the conversation through `pages`."""
    request = parse_token_count(body)
    conversation_id = request.conversation_id
    items: list[dict[str, Any]] = []
    if conversation_id is not None:
        after: str | None = None
        while True:
            page = pages(conversation_id, after)
            if page is None:
                raise conversation_not_found(conversation_id)
            listed, after = page
            items += listed
            if after is None:
                break
    # instructions come before the conversation's items, the new input after them
    count = count_items([*request.instructions, *items, *request.input], model_spec(request.model))
    return {"object": "response.input_tokens", "input_tokens": count.total}
