"""`export_chains` against real recorded Responses traffic (vcrpy cassettes), then read back."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import vcr

from adapters import open_source
from adapters.config import JsonSourceConfig
from adapters.model import Message, SourceConversation, TextPart, ToolCall, ToolResult
from adapters.responses.chains import export_chains, history_file
from migrate.plan.planner import plan_conversation
from migrate.transform.policy import Policy

ROOT = Path(__file__).resolve().parents[2]
CASSETTES = ROOT / "tests" / "cassettes" / "responses"
BASE_URL = "https://api.openai.com/v1"
FUNCTION_CALL = [
    "resp_0df7c3d8927b3a940068c9ef43dce481949ab7ac4c9f676d61",
    "resp_0df7c3d8927b3a940068c9ef44dee08194b3e80eb579a14f4f",
]
MESSAGE_HISTORY = ["resp_04f29d04b600a70c0068c9ef4b9d748194b064ef0524e80f61"]


@pytest.fixture
def sdk() -> Iterator[openai.OpenAI]:
    client = openai.OpenAI(api_key="sk-test", base_url=BASE_URL, max_retries=0)
    yield client
    client.close()


def exported(client: openai.OpenAI, name: str, ids: list[str], out: Path) -> dict[str, Any]:
    """Export through the cassette strictly; every recorded interaction must be used."""
    with vcr.use_cassette(
        str(CASSETTES / f"{name}.yaml"),
        record_mode="none",
        match_on=["method", "path", "query", "body"],
    ) as cassette:
        summary = export_chains(client, ids, out)
        assert cassette.all_played
    assert (summary.failed, summary.leaves, summary.written) == (0, 1, 1)
    history: dict[str, Any] = json.loads(history_file(out, ids[-1]).read_text(encoding="utf-8"))
    return history


def read_back(out: Path) -> SourceConversation:
    (record,) = list(open_source(JsonSourceConfig(path=out)).read())
    assert isinstance(record, SourceConversation), record
    return record


def test_function_call_chain_from_real_traffic(sdk: openai.OpenAI, tmp_path: Path) -> None:
    history = exported(sdk, "function_call_works", FUNCTION_CALL, tmp_path)
    assert history["response_ids"] == FUNCTION_CALL
    assert [item["type"] for item in history["items"]] == [
        "message",
        "function_call",
        "function_call_output",
        "message",
    ]
    conversation = read_back(tmp_path)
    assert conversation.id == FUNCTION_CALL[-1]
    assert conversation.metadata["first_response_id"] == FUNCTION_CALL[0]
    call, output = conversation.entries[1], conversation.entries[2]
    assert isinstance(call, ToolCall) and isinstance(output, ToolResult)
    assert call.call_id == output.call_id == "call_S2X9KuEJpYvFcF4hgv1XwM0j"
    assert output.output == "22 celcius and windy"
    # Every recorded item id reaches the id map as the entry's source id.
    assert [e.source_id for e in conversation.entries] == [i["id"] for i in history["items"]]
    plan = plan_conversation(conversation, Policy())
    assert plan.findings == []
    sent = [planned.item for planned in plan.items]
    assert all("id" not in item and "status" not in item for item in sent)


def test_message_history_with_developer_message_from_real_traffic(
    sdk: openai.OpenAI, tmp_path: Path
) -> None:
    exported(sdk, "message_history_works", MESSAGE_HISTORY, tmp_path)
    conversation = read_back(tmp_path)
    roles = [e.role for e in conversation.entries if isinstance(e, Message)]
    assert roles == ["developer", "user", "assistant", "user", "assistant"]
    last = conversation.entries[-1]
    assert isinstance(last, Message) and isinstance(last.parts[0], TextPart)
    assert last.parts[0].text.startswith("Your name is Bob")
    assert plan_conversation(conversation, Policy()).findings == []


def test_cassettes_are_what_the_builder_makes_from_the_recordings(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("build_responses", CASSETTES / "build.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.build(tmp_path) == {
        "function_call_works": FUNCTION_CALL,
        "message_history_works": MESSAGE_HISTORY,
    }
    built = sorted(p.name for p in tmp_path.iterdir())
    assert built == ["function_call_works.yaml", "message_history_works.yaml"]
    for name in built:
        assert (CASSETTES / name).read_bytes() == (tmp_path / name).read_bytes(), name
        assert "authorization" not in (tmp_path / name).read_text().lower()
