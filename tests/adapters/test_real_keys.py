"""Every key of every record in the real fixtures is mapped to the target or reported.

For each record, the walk lists every key path (`messages[].tool_calls[].function.name`). A
path is fine when the reader maps it (the table below says where to) or when the plan reports
it: the key is named in a finding's value or message, or is a key of the conversation metadata.
A per-message timestamp must be reported by its own finding (`item_timestamps_in_report`, which
names the field): the conversation metadata's `created_at` says nothing about messages.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from adapters import JsonSourceConfig, SqlSourceConfig, open_source
from adapters.model import SourceConversation
from migrate.plan.model import ConversationPlan
from migrate.plan.planner import plan_conversation
from migrate.transform.policy import Policy

REAL = Path(__file__).resolve().parents[1] / "fixtures" / "real"

CHAT_MESSAGE = {
    "role": "item role",
    "content": "item content",
    "tool_calls": "function_call items",
    "tool_calls[].id": "call_id",
    "tool_calls[].type": "function_call item type",
    "tool_calls[].function": "function_call item",
    "tool_calls[].function.name": "name",
    "tool_calls[].function.arguments": "arguments",
    "tool_call_id": "function_call_output call_id",
    "content_parts": "item content (stored completions)",
    "id": "the item's source id in the plan",
    "name": "name_dropped finding",
}
MAPPED: dict[str, set[str]] = {
    "chat_completions": {"messages", *(f"messages[].{k}" for k in CHAT_MESSAGE)},
    "stored": {
        "object",
        "data",
        "first_id",
        "last_id",
        "has_more",
        *(f"data[].{k}" for k in CHAT_MESSAGE),
    },
    "sharegpt": {
        "conversations",
        "conversations[].from",
        "conversations[].value",
        "messages",
        "messages[].role",
        "messages[].content",
        "images",
        "tools",
    },
    "chatgpt": {
        "title",
        "create_time",
        "id",
        "mapping",
        "mapping.*",
        "mapping.*.id",
        "mapping.*.parent",
        "mapping.*.children",
        "mapping.*.message",
        "mapping.*.message.author",
        "mapping.*.message.author.role",
        "mapping.*.message.content",
        "mapping.*.message.content.parts",
    },
    "assistants": {
        "object",
        "data",
        "first_id",
        "last_id",
        "has_more",
        *(
            f"data[].{k}"
            for k in (
                "id",
                "object",
                "thread_id",
                "role",
                "content",
                "content[].type",
                "content[].text",
                "content[].text.value",
                "content[].text.annotations",
                "content[].image_file",
                "content[].image_file.file_id",
                "content[].image_file.detail",
                "content[].image_url",
                "content[].image_url.url",
                "content[].image_url.detail",
                "assistant_id",
                "run_id",
                "attachments",
                "status",
                "incomplete_details",
                "completed_at",
                "incomplete_at",
            )
        ),
    },
    "agents_sdk": {
        "id",
        "session_id",
        "message_data",
        "message_data.type",
        "message_data.role",
        "message_data.content",
        "message_data.content[].type",
        "message_data.content[].text",
        "message_data.content[].annotations",
        "message_data.name",
        "message_data.arguments",
        "message_data.call_id",
        "message_data.output",
        "message_data.id",  # the item's source id; `__fake_id__` placeholders identify nothing
        "message_data.status",  # `completed`, as every landed item is; others: unmapped_field
        "agent_sessions",
        "agent_sessions.session_id",
        "agent_sessions.created_at",
        "agent_sessions.updated_at",  # conversation metadata `session_updated_at`
    },
}
"""Key paths each reader maps to the target (message fields, ids, timestamps into metadata)."""
ITEM_TIMESTAMPS = {
    "chatgpt": "mapping.*.message.create_time",
    "assistants": "data[].created_at",
    "agents_sdk": "created_at",
}
"""Each format's per-message timestamp: API items have none, so the report keeps them."""


def key_paths(value: Any, path: str = "") -> Iterator[str]:
    """Key paths holding something (a null or empty value has nothing to lose)."""
    if isinstance(value, dict):
        for key, child in value.items():
            name = f"{path}.{key}" if path else str(key)
            if child not in (None, "", [], {}):
                yield name
            yield from key_paths(child, name)
    elif isinstance(value, list):
        for child in value:
            yield from key_paths(child, f"{path}[]")


def _keys_in(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, child in value.items():
            yield str(key)
            yield from _keys_in(child)
    elif isinstance(value, list):
        for child in value:
            yield from _keys_in(child)


def reported(plan: ConversationPlan) -> set[str]:
    """Key names the plan carries in findings or conversation metadata."""
    names = {key.split(".")[-1] for key in plan.metadata} | set(plan.metadata)
    for finding in plan.findings:
        names.update(_keys_in(finding.value))
        names.update(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", finding.message))
    return names


def _sources(
    tmp_path: Path,
) -> Iterator[tuple[str, str, list[dict[str, Any]], JsonSourceConfig | SqlSourceConfig]]:
    """(format, name, raw records, source config) for every readable real fixture."""
    for kind, name, raw, path in _files(tmp_path):
        yield kind, name, raw, JsonSourceConfig(path=path)
    yield _agents_sdk(tmp_path)


def _agents_sdk(
    tmp_path: Path,
) -> tuple[str, str, list[dict[str, Any]], SqlSourceConfig]:
    """The Agents SDK SQLite session (copied: opening it checkpoints the WAL into the file).

    Each row is a record: its columns, `message_data` parsed; a session row is one record
    under `agent_sessions`."""
    folder = REAL / "agents-sdk-sqlite-market-agent"
    for part in folder.glob("conversation_history_1.db*"):
        shutil.copy(part, tmp_path / part.name)
    path = tmp_path / "conversation_history_1.db"
    with sqlite3.connect(path) as connection:
        connection.row_factory = sqlite3.Row
        rows: list[dict[str, Any]] = []
        for row in connection.execute("SELECT * FROM agent_messages ORDER BY id"):
            record = dict(row)
            record["message_data"] = json.loads(record["message_data"])
            rows.append(record)
        for row in connection.execute("SELECT * FROM agent_sessions"):
            rows.append({"agent_sessions": dict(row)})
    connection.close()
    assert len(rows) == 84  # 83 items (59 in the file, 24 in the WAL) and one session
    config = SqlSourceConfig(url=f"sqlite:///{path}", preset="agents-sdk")
    return "agents_sdk", path.name, rows, config


def _files(tmp_path: Path) -> Iterator[tuple[str, str, list[dict[str, Any]], Path]]:
    """(format, name, raw records, file the product reads) for every real JSON fixture."""
    chatgpt = REAL / "chatgpt-export-samples" / "0xsalt_sample_conversations.json"
    yield "chatgpt", chatgpt.name, json.loads(chatgpt.read_text("utf-8")), chatgpt
    for name in ("glaive_toolcall_en_demo.json", "mllm_demo.json"):
        path = REAL / "sharegpt-llamafactory" / name
        yield "sharegpt", name, json.loads(path.read_text("utf-8")), path
    finetune = REAL / "finetune-jsonl" / "openai-dotnet_fine_tuning_sample.jsonl"
    lines = [json.loads(line) for line in finetune.read_text("utf-8").splitlines() if line.strip()]
    yield "chat_completions", finetune.name, lines, finetune
    for recording in sorted((REAL / "openai-dotnet-chat-completions").glob("*.json")):
        for number, entry in enumerate(json.loads(recording.read_text("utf-8"))["Entries"]):
            body, response = entry.get("RequestBody"), entry.get("ResponseBody")
            if isinstance(body, dict) and "messages" in body:
                record = {"messages": body["messages"]}
                path = tmp_path / f"{recording.stem}-{number}.jsonl"
                path.write_text(json.dumps(record) + "\n", "utf-8")
                yield "chat_completions", path.name, [record], path
            ok = entry["StatusCode"] == 200 and isinstance(response, dict)
            if ok and response.get("object") == "list":
                path = tmp_path / f"{recording.stem}-{number}-page.json"
                path.write_text(json.dumps(response), "utf-8")
                yield "stored", path.name, [response], path
    for recording in sorted((REAL / "openai-dotnet-assistants").glob("*.json")):
        for number, entry in enumerate(json.loads(recording.read_text("utf-8"))["Entries"]):
            response = entry.get("ResponseBody")
            data = response.get("data") if isinstance(response, dict) else None
            if entry["StatusCode"] == 200 and data and data[0].get("object") == "thread.message":
                path = tmp_path / f"{recording.stem}-{number}.json"
                path.write_text(json.dumps(response), "utf-8")
                yield "assistants", path.name, [response], path


def test_every_real_key_is_mapped_or_reported(tmp_path: Path) -> None:
    policy = Policy(unknown_role="user")
    checked = 0
    unaccounted: list[str] = []
    for kind, name, raw_records, config in _sources(tmp_path):
        conversations = [r for r in open_source(config).read() if isinstance(r, SourceConversation)]
        assert len(conversations) >= 1, name
        plans = [plan_conversation(c, policy) for c in conversations]
        names = set().union(*(reported(p) for p in plans))
        timestamp_fields = {
            finding.value["field"]
            for plan in plans
            for finding in plan.findings
            if finding.code == "item_timestamps_in_report"
        }
        for raw in raw_records:
            for key_path in set(key_paths(raw)):
                checked += 1
                pattern = re.sub(r"^mapping\.[^.\[]+", "mapping.*", key_path)
                if pattern == ITEM_TIMESTAMPS.get(kind):
                    if pattern.rsplit(".", 1)[-1].removesuffix("[]") not in timestamp_fields:
                        unaccounted.append(f"{name}: {key_path} (no item_timestamps_in_report)")
                    continue
                if pattern in MAPPED[kind]:
                    continue
                if key_path.rsplit(".", 1)[-1].removesuffix("[]") in names:
                    continue
                unaccounted.append(f"{name}: {key_path}")
    assert checked > 100
    assert unaccounted == []


def test_key_paths_walks_nested_keys_that_hold_something() -> None:
    value = {"a": {"b": [{"c": 1}], "e": {}}, "x": None}
    assert set(key_paths(value)) == {"a", "a.b", "a.b[].c"}
