"""Synthetic, seeded legacy data: Chat Completions JSONL files (plain and tool-heavy) and a SQLite
message table."""

from __future__ import annotations

import json
import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from adapters.config import JsonSourceConfig, SqlSourceConfig

_WORDS = [
    *("the", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog", "while", "a"),
    *("careful", "migration", "moves", "every", "message", "exactly", "once", "and"),
    *("keeps", "a", "report", "of", "each", "old", "and", "new", "id", "🦊"),
]


def length_mix(count: int, *, seed: int, longest: int = 500) -> list[int]:
    """`count` conversation lengths from 1 to `longest` messages: mostly short, some long.

    The edges of the batching (1, 19, 20, 21, 40, 41 and `longest`) are always included so that
    every way a conversation splits into calls is exercised.
    """
    edges = [n for n in (1, 19, 20, 21, 40, 41, longest) if n <= longest]
    rng = random.Random(f"lengths:{seed}")
    lengths = edges[:count]
    while len(lengths) < count:
        # log-uniform: as many 1-10 as 10-100 as 100-500 message conversations
        lengths.append(min(longest, max(1, round(longest ** rng.random()))))
    rng.shuffle(lengths)
    return lengths


def _texts(rng: random.Random, count: int = 997) -> list[str]:
    """A pool of message texts of 5 to 40 words (drawing per word would dominate the runtime)."""
    return [" ".join(rng.choice(_WORDS) for _ in range(rng.randint(5, 40))) for _ in range(count)]


def _messages(rng: random.Random, texts: list[str], length: int) -> Iterator[dict[str, str]]:
    for index in range(length):
        role = "user" if index % 2 == 0 else "assistant"
        yield {"role": role, "content": rng.choice(texts)}


def write_chat_jsonl(path: Path, lengths: list[int], *, seed: int) -> JsonSourceConfig:
    """One Chat Completions conversation per line, `lengths[i]` messages in the i-th."""
    rng = random.Random(f"jsonl:{seed}")
    texts = _texts(rng)
    with path.open("w", encoding="utf-8") as out:
        for number, length in enumerate(lengths):
            record = {
                "id": f"conv-{number:07d}",
                "title": f"synthetic conversation {number}",
                "messages": list(_messages(rng, texts, length)),
            }
            out.write(json.dumps(record, ensure_ascii=False))
            out.write("\n")
    return JsonSourceConfig(path=path, format="chat_completions")


def lengths_for_total(messages: int, *, seed: int, longest: int = 500) -> list[int]:
    """Conversation lengths from `length_mix` adding up to exactly `messages`."""
    rng = random.Random(f"total:{seed}")
    mix = length_mix(1000, seed=seed, longest=longest)
    lengths: list[int] = []
    left = messages
    while left > 0:
        length = min(left, rng.choice(mix))
        lengths.append(length)
        left -= length
    return lengths


def write_sqlite_messages(path: Path, lengths: list[int], *, seed: int) -> SqlSourceConfig:
    """A `chat_messages` table, one row per message, read by the generic column mapping."""
    rng = random.Random(f"sqlite:{seed}")
    texts = _texts(rng)
    connection = sqlite3.connect(path)
    try:
        connection.execute(
            "CREATE TABLE chat_messages (id INTEGER PRIMARY KEY, conversation_id TEXT NOT NULL, "
            "created_at TEXT NOT NULL, role TEXT NOT NULL, content TEXT)"
        )

        def rows() -> Iterator[tuple[int, str, str, str, str]]:
            row_id = 0
            for number, length in enumerate(lengths):
                for index, message in enumerate(_messages(rng, texts, length)):
                    row_id += 1
                    stamp = f"2025-01-{1 + number % 28:02d}T{index // 3600 % 24:02d}:" + (
                        f"{index // 60 % 60:02d}:{index % 60:02d}Z"
                    )
                    yield (
                        row_id,
                        f"conv-{number:07d}",
                        stamp,
                        message["role"],
                        message["content"],
                    )

        connection.executemany("INSERT INTO chat_messages VALUES (?, ?, ?, ?, ?)", rows())
        connection.execute(
            "CREATE INDEX chat_messages_order ON chat_messages (conversation_id, id)"
        )
        connection.commit()
    finally:
        connection.close()
    return SqlSourceConfig(
        url=f"sqlite:///{path}",
        table="chat_messages",
        conversation_column="conversation_id",
        order_columns=("id",),
        message_id_column="id",
        role_column="role",
        content_column="content",
        timestamp_column="created_at",
    )


class ToolCorpus(BaseModel):
    """What `write_tool_jsonl` wrote: items per conversation and how its tool pairs fall."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lengths: list[int]
    """Items each conversation plans to (one per message, call and output)."""
    pairs: int
    parallel_groups: int
    """Assistant turns that make more than one call at once."""
    split_pairs: int
    """Pairs whose call and output fall on either side of a 20-item cut."""


def write_tool_jsonl(
    path: Path, lengths: list[int], *, seed: int
) -> tuple[JsonSourceConfig, ToolCorpus]:
    """Tool-heavy Chat Completions conversations of exactly `lengths[i]` items each.

    Most items are `function_call` / `function_call_output` pairs, single or parallel (two or
    three calls, then their outputs); wherever an item would sit at position 19 of a 20-item
    batch, a single call goes there, so its output opens the next batch.
    """
    rng = random.Random(f"tools:{seed}")
    texts = _texts(rng)
    pairs = groups = split = 0
    with path.open("w", encoding="utf-8") as out:
        for number, length in enumerate(lengths):
            messages: list[dict[str, Any]] = []
            position = 0
            while position < length:
                left = length - position
                width = 1 if position % 20 == 19 else rng.choice((1, 1, 2, 3))
                if left < 2 or (position % 20 != 19 and rng.random() < 0.3):
                    role = "user" if rng.random() < 0.5 else "assistant"
                    messages.append({"role": role, "content": rng.choice(texts)})
                    position += 1
                    continue
                width = min(width, left // 2)
                call_ids = [f"call_{number}_{position}_{k}" for k in range(width)]
                messages.append(
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": call_id,
                                "type": "function",
                                "function": {"name": "lookup", "arguments": '{"q": 1}'},
                            }
                            for call_id in call_ids
                        ],
                    }
                )
                messages += [
                    {"role": "tool", "tool_call_id": call_id, "content": rng.choice(texts)}
                    for call_id in call_ids
                ]
                pairs += width
                groups += width > 1
                split += sum(
                    (position + k) // 20 != (position + width + k) // 20 for k in range(width)
                )
                position += 2 * width
            record = {"id": f"tools-{number:07d}", "messages": messages}
            out.write(json.dumps(record, ensure_ascii=False))
            out.write("\n")
    corpus = ToolCorpus(lengths=lengths, pairs=pairs, parallel_groups=groups, split_pairs=split)
    return JsonSourceConfig(path=path, format="chat_completions"), corpus
