"""Tool-heavy conversations land in the fewest calls the API allows, in order, exactly once.

Function call pairs sit across the 20-item cuts (a call at position 19 or 39, its output at 20
or 40; parallel calls whose outputs open the next batch): the planner cuts there anyway.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from migrate.jobs.models import JobRef
from migrate.jobs.run import run_job
from migrate.jobs.verify import verify_job
from migrate.replay.target import TargetConfig
from migrate.server.store import ConversationStore
from migrate.server.testing import AdminClient, ServerFactory
from tests.replay.helpers import run_config

LENGTHS = (20, 21, 40, 41, 45, 63, 100)
"""Items per conversation: on the cuts, one past them, and several cuts deep."""


def tool_heavy_record(number: int, length: int) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """A Chat Completions record of `length` items, and the items it must land as, in order.

    Even conversations put a single call at every position 19 (mod 20); odd ones put three
    parallel calls at 17..19 (mod 20), their outputs at 20..22.
    """
    messages: list[dict[str, Any]] = []
    expected: list[tuple[str, str]] = []
    position = 0
    while position < length:
        left = length - position
        width = 1 if number % 2 == 0 and position % 20 == 19 else 0
        if number % 2 == 1 and position % 20 == 17:
            width = 3
        width = min(width, left // 2)
        if not width:
            text = f"c{number} item {position}"
            messages.append({"role": "user" if position % 2 else "assistant", "content": text})
            expected.append(("message", text))
            position += 1
            continue
        call_ids = [f"call_{number}_{position}_{k}" for k in range(width)]
        messages.append(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": "lookup", "arguments": "{}"},
                    }
                    for call_id in call_ids
                ],
            }
        )
        expected += [("function_call", call_id) for call_id in call_ids]
        for call_id in call_ids:
            messages.append({"role": "tool", "tool_call_id": call_id, "content": f"{call_id}!"})
            expected.append(("function_call_output", f"{call_id}!"))
        position += 2 * width
    return {"id": f"tools-{number}", "messages": messages}, expected


def held_as(item: dict[str, Any]) -> tuple[str, str]:
    """What the server holds, reduced to what `tool_heavy_record` expects."""
    if item["type"] == "message":
        return ("message", item["content"][0]["text"])
    if item["type"] == "function_call":
        return ("function_call", item["call_id"])
    return (item["type"], item["output"])


@pytest.mark.parametrize("create_with_items", [False, True], ids=["empty-create", "with-items"])
def test_tool_heavy_conversations_take_the_minimum_calls(
    create_with_items: bool, tmp_path: Path, local_server: ServerFactory
) -> None:
    source = tmp_path / "tools.jsonl"
    expected: dict[str, list[tuple[str, str]]] = {}
    with source.open("w", encoding="utf-8") as out:
        for number, length in enumerate(LENGTHS):
            record, items = tool_heavy_record(number, length)
            assert len(items) == length
            expected[record["id"]] = items
            out.write(json.dumps(record) + "\n")
    base_url = local_server()
    target = TargetConfig(kind="openai", base_url=base_url, timeout=10)
    job_dir = tmp_path / "job"
    config = run_config(
        source, job_dir, concurrency=2, target=target, create_with_items=create_with_items
    )
    summary = run_job(config)
    assert summary.exit_code == 0, summary

    minimum = sum((0 if create_with_items else 1) + math.ceil(n / 20) for n in LENGTHS)
    assert summary.calls == minimum
    with AdminClient(base_url) as admin:
        seen = admin.stats()["requests"]
    received = sum(
        count
        for route, by_status in seen.items()
        if not route.split(" ")[1].startswith("/_admin")
        for count in by_status.values()
    )
    assert received == minimum + 1, seen  # one more: the job's preflight read
    # Each conversation holds its items once, in source order, every output after its call.
    store = ConversationStore.from_path(tmp_path / "servers" / "server-0.db")
    try:
        held = [
            (row.metadata["source_id"], [held_as(item) for item in store.all_items(row.id)])
            for row in store.summaries(include_deleted=False)
        ]
    finally:
        store.close()
    assert sorted(held) == sorted(expected.items())
    report = verify_job(JobRef(job_dir=job_dir))
    assert (report.checked, report.differing) == (len(LENGTHS), 0), report.conversations
