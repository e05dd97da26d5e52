"""Stored `previous_response_id` chains for the local server (`migrate serve --responses DIR`).

`write_chain` writes one file per response in the layout `migrate.server.responses` serves:
the response object plus its `input_items` (the whole chain's context, oldest first), the way
the real API lists them for a chained response.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

INSTRUCTIONS = "You are a concise assistant."


def turn_items(prefix: str, turn: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The input and output items of one turn: every tenth turn calls a function."""
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    if turn % 10 == 4:
        call = f"call_{prefix}_{turn - 1}"
        inputs = [
            {
                "id": f"fco_{prefix}_{turn}",
                "type": "function_call_output",
                "status": "completed",
                "call_id": call,
                "output": f"result {turn}",
            }
        ]
    else:
        inputs = [
            {
                "id": f"msg_{prefix}_in_{turn}",
                "type": "message",
                "role": "user",
                "status": "completed",
                "content": [{"type": "input_text", "text": f"{prefix} question {turn}"}],
            }
        ]
    if turn % 10 == 3:
        outputs = [
            {
                "id": f"fc_{prefix}_{turn}",
                "type": "function_call",
                "status": "completed",
                "call_id": f"call_{prefix}_{turn}",
                "name": "lookup",
                "arguments": json.dumps({"turn": turn}),
            }
        ]
    else:
        outputs = [
            {
                "id": f"msg_{prefix}_out_{turn}",
                "type": "message",
                "role": "assistant",
                "status": "completed",
                "content": [
                    {"type": "output_text", "text": f"{prefix} answer {turn}", "annotations": []}
                ],
            }
        ]
    return inputs, outputs


def response_id(prefix: str, turn: int) -> str:
    return f"resp_{prefix}_{turn:04d}"


def write_chain(
    directory: Path,
    *,
    turns: int,
    prefix: str = "c",
    parent: tuple[str, list[dict[str, Any]]] | None = None,
) -> list[str]:
    """Write a chain of `turns` responses (2 items each); returns their ids, first to leaf.

    `parent` (a response id and its chain's context including its output) makes the chain a
    branch that continues that response.
    """
    directory.mkdir(parents=True, exist_ok=True)
    previous, context = parent if parent else (None, [])
    context = list(context)
    ids = []
    for turn in range(turns):
        inputs, outputs = turn_items(prefix, turn)
        rid = response_id(prefix, turn)
        document = {
            "id": rid,
            "object": "response",
            "created_at": 1758064451 + turn,
            "status": "completed",
            "model": "gpt-4o-mini-2024-07-18",
            "instructions": INSTRUCTIONS,
            "previous_response_id": previous,
            "output": outputs,
            "metadata": {"app": "chain-test"},
            "input_items": [*context, *inputs],
        }
        (directory / f"{rid}.json").write_text(json.dumps(document), encoding="utf-8")
        context += [*inputs, *outputs]
        previous = rid
        ids.append(rid)
    return ids


def chain_context(directory: Path, response: str) -> list[dict[str, Any]]:
    """The full context after `response`: its input items and its output."""
    document = json.loads((directory / f"{response}.json").read_text(encoding="utf-8"))
    return [*document["input_items"], *document["output"]]
