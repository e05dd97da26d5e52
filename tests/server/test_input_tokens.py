"""`POST /v1/responses/input_tokens` on the local server, through the official SDK."""

from __future__ import annotations

import openai
import pytest
from openai import OpenAI

from migrate.context.encoding import o200k_base
from tests.context.recordings import recorded_calls


def test_a_conversation_is_counted_like_the_recorded_api_call(client: OpenAI) -> None:
    # the real API counted this input at 59 tokens on gpt-4o-mini (MessageHistoryWorks)
    (call,) = [c for c in recorded_calls() if c.name.endswith("MessageHistoryWorks.json#0")]
    conversation = client.conversations.create(items=call.request["input"])
    counted = client.responses.input_tokens.count(conversation=conversation.id, model="gpt-4o-mini")
    assert counted.input_tokens == call.input_tokens == 59
    # the conversation as an object, and more input after it
    more = client.responses.input_tokens.count(
        conversation={"id": conversation.id}, model="gpt-4o-mini", input="And tomorrow?"
    )
    assert more.input_tokens == 59 + len(o200k_base().encode("And tomorrow?")) + 4


def test_many_items_are_read_page_by_page(client: OpenAI) -> None:
    conversation = client.conversations.create()
    for _ in range(6):
        batch = [{"type": "message", "role": "user", "content": "hi"} for _ in range(20)]
        client.conversations.items.create(conversation.id, items=batch)  # type: ignore[arg-type]
    counted = client.responses.input_tokens.count(conversation=conversation.id, model="gpt-5")
    assert counted.input_tokens == 120 * (1 + 4) + 2


def test_unknown_conversation_and_model_are_api_errors(client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError, match="not found"):
        client.responses.input_tokens.count(conversation="conv_missing", model="gpt-5")
    conversation = client.conversations.create()
    with pytest.raises(openai.BadRequestError, match="cannot count tokens for model"):
        client.responses.input_tokens.count(conversation=conversation.id, model="gpt-9")
    with pytest.raises(openai.BadRequestError, match="model"):
        client.responses.input_tokens.count(conversation=conversation.id)
