"""Agents SDK session items: every field reaches the target or an `unmapped_field` finding."""

from __future__ import annotations

from adapters import open_source
from adapters.chat_messages import Provenance
from adapters.model import HostedToolStep, Message, SourceConversation
from adapters.sql.presets import agents_item_entries, langchain_entries, llamaindex_entries
from migrate.plan.planner import plan_conversation
from migrate.transform.policy import Policy
from tests.adapters.sqlhelpers import (
    Database,
    agents_tables,
    database,
    mariadb_database,
    postgres_schema,
)

__all__ = ["database", "mariadb_database", "postgres_schema"]

AT = Provenance(position="agent_messages id=3", source_id="3", number_calls=False)


def test_fields_a_message_cannot_carry_are_reported_with_their_values() -> None:
    item = {
        "id": "__fake_id__",
        "type": "message",
        "role": "assistant",
        "status": "incomplete",
        "provider_data": {"model": "gemini-2.5"},
        "content": [
            {"type": "output_text", "text": "Hi", "annotations": [], "logprobs": [{"t": 1}]}
        ],
    }
    decoded = agents_item_entries(item, AT)
    (message,) = decoded.entries
    assert isinstance(message, Message) and message.source_id == "3"
    (note,) = decoded.notes
    assert note.code == "unmapped_field"
    assert note.value == {
        "status": "incomplete",
        "provider_data": {"model": "gemini-2.5"},
        "content[0].logprobs": [{"t": 1}],
    }
    assert "agent_messages id=3" in note.message


def test_a_completed_item_with_known_fields_has_no_finding() -> None:
    call = {
        "type": "function_call",
        "id": "fc_1",
        "call_id": "call_1",
        "name": "lookup",
        "arguments": "{}",
        "status": "completed",
    }
    assert agents_item_entries(call, AT).notes == []


def test_hosted_tools_show_every_field() -> None:
    search = {
        "id": "ws_1",
        "type": "web_search_call",
        "status": "completed",
        "action": {
            "type": "search",
            "query": "caps",
            "sources": [{"type": "url", "url": "https://example.com/caps"}],
        },
    }
    (step,) = agents_item_entries(search, AT).entries
    assert isinstance(step, HostedToolStep)
    assert step.input is not None and "https://example.com/caps" in step.input
    assert (step.position, step.source_id) == ("agent_messages id=3", "ws_1")


def test_the_session_updated_at_reaches_the_conversation_metadata(database: Database) -> None:
    sessions, messages = agents_tables(database.metadata())
    database.insert(
        sessions,
        [
            {
                "session_id": "s1",
                "created_at": "2025-01-01 00:00:00",
                "updated_at": "2025-01-02 03:04:05",
            }
        ],
    )
    database.insert(
        messages,
        [{"id": 1, "session_id": "s1", "message_data": {"role": "user", "content": "hi"}}],
    )
    (conversation,) = open_source(database.config(preset="agents-sdk")).read()
    assert isinstance(conversation, SourceConversation)
    plan = plan_conversation(conversation, Policy())
    assert plan.metadata["session_updated_at"].startswith("2025-01-02")
    assert plan.metadata["created_at"] == "2025-01-01T00:00:00Z"


def test_langchain_and_llamaindex_fields_without_a_place_are_reported() -> None:
    message = {
        "type": "ai",
        "data": {
            "type": "ai",
            "content": "Sure.",
            "id": "run-1",
            "example": False,
            "additional_kwargs": {"refusal": None, "tool_calls": [], "reasoning": "short"},
            "response_metadata": {"model_name": "gpt-4o", "finish_reason": "stop"},
            "usage_metadata": {"input_tokens": 3, "output_tokens": 2},
        },
    }
    (note,) = langchain_entries(message, AT).notes
    assert note.code == "unmapped_field" and note.source_id == "run-1"
    assert note.value == {
        "additional_kwargs.reasoning": "short",
        "response_metadata": {"model_name": "gpt-4o", "finish_reason": "stop"},
        "usage_metadata": {"input_tokens": 3, "output_tokens": 2},
    }
    chat = {
        "role": "assistant",
        "blocks": [{"block_type": "text", "text": "Hi"}],
        "additional_kwargs": {"name": "bot", "model": "llama3"},
    }
    (note,) = llamaindex_entries(chat, AT).notes
    assert note.value == {"additional_kwargs.model": "llama3"}
    plain = {"role": "user", "content": "hi", "additional_kwargs": {}}
    assert llamaindex_entries(plain, AT).notes == []
