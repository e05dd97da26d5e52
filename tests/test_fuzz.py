"""Property tests: every reader fed random and mutated records.

Whatever the bytes, no exception escapes but the product's own errors, every record written is
counted once (`total = planned + failed + skipped` = records written), and every planned item
is text the API can take (JSON that encodes as UTF-8).
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters import JsonSourceConfig, Source, SqlSourceConfig, open_source
from migrate.plan.model import ConversationPlan
from migrate.plan.pipeline import iterate_plans
from migrate.transform.policy import Policy

FUZZ = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
parts = st.one_of(
    st.builds(lambda t: {"type": "text", "text": t}, st.text(max_size=40)),
    st.builds(lambda u: {"type": "image_url", "image_url": {"url": u}}, st.text(max_size=20)),
    st.builds(
        lambda k, v: {"type": k, "x": v},
        st.sampled_from(["hologram", "file", "input_audio"]),
        values,
    ),
)
messages = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["user", "assistant", "system", "tool", "developer", "bot", ""]),
        "content": st.one_of(st.text(max_size=60), st.none(), st.lists(parts, max_size=3), values),
    },
    optional={
        "tool_calls": st.lists(
            st.fixed_dictionaries(
                {
                    "id": st.text(max_size=6),
                    "function": st.fixed_dictionaries({"name": st.text(max_size=6)}),
                }
            ),
            max_size=2,
        ),
        "tool_call_id": st.text(max_size=6),
        "weight": values,
        "annotations": st.lists(values, max_size=2),
    },
)
records = st.builds(
    lambda i, m: {"id": f"conv-{i}", "messages": m},
    st.integers(min_value=0, max_value=5),
    st.lists(messages, min_size=1, max_size=4),
)
MUTATIONS = ["none", "utf8", "escape", "surrogate", "garbage", "unterminated", "deep", "huge"]


def mutate(data: bytes, how: str, where: int) -> bytes:
    """`data` (one record's JSON object) broken in one way; never adds a newline, and keeps its
    leading keys (the array framer finds items after a broken one by them)."""
    inside = data.find(b'"role": "') + 9  # inside a string
    match how:
        case "utf8":
            return data[:inside] + b"\xff\xfe" + data[inside:]
        case "escape":
            return data[:inside] + b"\\q" + data[inside:]
        case "surrogate":
            return data[:inside] + b"\\udc00" + data[inside:]
        case "garbage":
            return data.replace(b'"messages": ', b'"messages": oops ', 1)
        case "unterminated":
            return data[: data.rfind(b'"')] + data[data.rfind(b'"') + 1 :]
        case "deep":
            depth = 500 + where * 300
            return data[:-1] + b', "x": ' + b"[" * depth + b"]" * depth + b"}"
        case "huge":
            return data[:-1] + b', "x": "' + b"w" * 3_000_000 + b'"}'
    return data


def count_outcomes(source: Source) -> int:
    """How many outcomes the pipeline yields; checks every plan is sendable text."""
    planned = failed = skipped = 0
    for outcome in iterate_plans(source, Policy(unknown_role="user")):
        if isinstance(outcome, ConversationPlan):
            for planned_item in outcome.items:
                json.dumps(planned_item.item, ensure_ascii=False).encode("utf-8")
            json.dumps(outcome.metadata, ensure_ascii=False).encode("utf-8")
            json.dumps(
                [f.model_dump(mode="json") for f in outcome.findings], ensure_ascii=False
            ).encode("utf-8")
            if outcome.items:
                planned += 1
            else:
                skipped += 1
        else:
            failed += 1
    return planned + failed + skipped


def mutated_records(chosen: list[dict[str, Any]], how: list[str], where: int) -> list[bytes]:
    return [
        mutate(json.dumps(record, ensure_ascii=False).encode(), how[i % len(how)], where)
        for i, record in enumerate(chosen)
    ]


@FUZZ
@given(
    st.lists(records, min_size=1, max_size=6),
    st.lists(st.sampled_from(MUTATIONS), min_size=1, max_size=6),
    st.integers(min_value=0, max_value=3),
)
def test_jsonl_files(chosen: list[dict[str, Any]], how: list[str], where: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "chats.jsonl"
        path.write_bytes(b"\n".join(mutated_records(chosen, how, where)) + b"\n")
        assert count_outcomes(
            open_source(JsonSourceConfig(path=path, format="chat_completions"))
        ) == len(chosen)


@FUZZ
@given(
    st.lists(records, min_size=1, max_size=6),
    st.lists(st.sampled_from(MUTATIONS), min_size=1, max_size=6),
    st.integers(min_value=0, max_value=3),
)
def test_json_arrays(chosen: list[dict[str, Any]], how: list[str], where: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "conversations.json"
        path.write_bytes(b"[" + b",\n".join(mutated_records(chosen, how, where)) + b"]")
        assert count_outcomes(
            open_source(JsonSourceConfig(path=path, format="chat_completions"))
        ) == len(chosen)


@FUZZ
@given(st.lists(st.binary(max_size=200), min_size=1, max_size=6))
def test_random_bytes_as_json_lines(lines: list[bytes]) -> None:
    lines = [line.replace(b"\n", b" ").replace(b"\r", b" ") or b"x" for line in lines]
    lines = [line if line.strip() else b"x" for line in lines]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "chats.jsonl"
        path.write_bytes(b"\n".join(lines) + b"\n")
        # Some lines may happen to be valid conversations; every line is counted once.
        assert count_outcomes(
            open_source(JsonSourceConfig(path=path, format="chat_completions"))
        ) == len(lines)


def _thread(index: int, messages_: list[dict[str, Any]]) -> dict[str, Any]:
    thread_id = f"thread_{index}"
    return {
        "thread": {"id": thread_id, "object": "thread", "created_at": 1},
        "messages": [
            {
                "id": f"msg_{n}",
                "object": "thread.message",
                "thread_id": thread_id,
                "created_at": n,
                "role": m["role"],
                "content": [{"type": "text", "text": {"value": m["content"], "annotations": []}}]
                if isinstance(m["content"], str)
                else m["content"],
            }
            for n, m in enumerate(messages_)
        ],
        "runs": [],
        "run_steps": [],
    }


@FUZZ
@given(
    st.lists(records, min_size=1, max_size=5),
    st.lists(st.sampled_from(MUTATIONS), min_size=1, max_size=5),
    st.integers(min_value=0, max_value=3),
)
def test_assistants_exports(chosen: list[dict[str, Any]], how: list[str], where: int) -> None:
    threads = [_thread(i, r["messages"]) for i, r in enumerate(chosen)]
    lines = [
        mutate(json.dumps(t, ensure_ascii=False).encode(), how[i % len(how)], where).replace(
            b'"messages": oops', b'"messages": oops'
        )
        for i, t in enumerate(threads)
    ]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "threads.jsonl"
        path.write_bytes(b"\n".join(lines) + b"\n")
        config = JsonSourceConfig(path=path, format="assistants")
        assert count_outcomes(open_source(config)) == len(threads)


@FUZZ
@given(
    st.lists(records, min_size=1, max_size=6),
    st.lists(
        st.sampled_from(["none", "utf8", "escape", "surrogate", "garbage", "deep"]), min_size=1
    ),
    st.integers(min_value=0, max_value=3),
)
def test_sql_json_columns(chosen: list[dict[str, Any]], how: list[str], where: int) -> None:
    bodies = [
        mutate(json.dumps(r["messages"], ensure_ascii=False).encode(), how[i % len(how)], where)
        for i, r in enumerate(chosen)
    ]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "chat.db"
        with sqlite3.connect(path) as connection:
            connection.execute(
                "CREATE TABLE chats (id INTEGER PRIMARY KEY, thread TEXT, body TEXT)"
            )
            connection.executemany(
                "INSERT INTO chats VALUES (?, ?, CAST(? AS TEXT))",
                [(i, f"t{i}", body) for i, body in enumerate(bodies)],
            )
        connection.close()
        config = SqlSourceConfig(
            url=f"sqlite:///{path}",
            table="chats",
            conversation_column="thread",
            messages_json_column="body",
        )
        assert count_outcomes(open_source(config)) == len(bodies)


@FUZZ
@given(
    st.lists(records, min_size=1, max_size=5),
    st.lists(st.sampled_from(MUTATIONS), min_size=1, max_size=5),
    st.integers(min_value=0, max_value=3),
    st.booleans(),
)
def test_assistants_thread_arrays_and_files(
    chosen: list[dict[str, Any]], how: list[str], where: int, one_file: bool
) -> None:
    """Threads in one JSON array, or one pretty-printed file per thread (`export-threads`)."""
    threads = [_thread(i, r["messages"]) for i, r in enumerate(chosen)]
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "export"
        root.mkdir()
        if one_file:
            items = [
                mutate(json.dumps(t, ensure_ascii=False).encode(), how[i % len(how)], where)
                for i, t in enumerate(threads)
            ]
            (root / "threads.json").write_bytes(b"[" + b",\n".join(items) + b"]")
        else:
            for i, t in enumerate(threads):
                text = json.dumps(t, ensure_ascii=False, indent=1).encode()
                (root / f"thread_{i}.json").write_bytes(mutate(text, how[i % len(how)], where))
        config = JsonSourceConfig(path=root, format="assistants")
        assert count_outcomes(open_source(config)) == len(threads)


def _as_format(kind: str, index: int, messages_: list[dict[str, Any]]) -> dict[str, Any]:
    """One record of a JSON format other than Chat Completions, built from random messages."""
    if kind == "sharegpt":
        turns = [{"from": m["role"] or "human", "value": m["content"]} for m in messages_]
        return {"id": f"share-{index}", "conversations": turns}
    if kind == "responses":
        items = [{"type": "message", "role": m["role"], "content": m["content"]} for m in messages_]
        return {"id": f"resp_{index}", "items": items}
    nodes: dict[str, Any] = {}
    parent: str | None = None
    for n, m in enumerate(messages_):
        node = f"n{n}"
        nodes[node] = {
            "id": node,
            "parent": parent,
            "children": [f"n{n + 1}"] if n + 1 < len(messages_) else [],
            "message": {
                "id": node,
                "author": {"role": m["role"]},
                "content": {"content_type": "text", "parts": [m["content"]]},
            },
        }
        parent = node
    return {"id": f"chat-{index}", "title": "t", "mapping": nodes, "current_node": parent}


@FUZZ
@given(
    st.sampled_from(["sharegpt", "chatgpt", "responses"]),
    st.lists(records, min_size=1, max_size=5),
    st.lists(st.sampled_from(MUTATIONS), min_size=1, max_size=5),
    st.integers(min_value=0, max_value=3),
)
def test_other_json_formats(
    kind: str, chosen: list[dict[str, Any]], how: list[str], where: int
) -> None:
    shaped = [_as_format(kind, i, r["messages"]) for i, r in enumerate(chosen)]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "records.jsonl"
        path.write_bytes(b"\n".join(mutated_records(shaped, how, where)) + b"\n")
        config = JsonSourceConfig(path=path, format=kind)
        assert count_outcomes(open_source(config)) == len(shaped)


cells = st.one_of(
    st.none(),
    st.text(max_size=20),
    st.binary(max_size=12),
    st.sampled_from(["user", "assistant", "tool", "wizard", '{"a": 1}', "[1,", "\\udc00"]),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
)


@FUZZ
@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", None]), cells, cells, cells, cells),
        min_size=1,
        max_size=8,
    )
)
def test_sql_column_mapping(rows: list[tuple[Any, ...]]) -> None:
    """Random cells (bytes that are not UTF-8 included) in the role, content, tool call and
    metadata columns: every conversation key is counted once, and plans stay sendable."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "chat.db"
        with sqlite3.connect(path) as connection:
            connection.execute(
                "CREATE TABLE m (id INTEGER PRIMARY KEY, conv TEXT, role TEXT, content TEXT, "
                "calls TEXT, tag TEXT)"
            )
            connection.executemany(
                "INSERT INTO m VALUES (?, ?, CAST(? AS TEXT), CAST(? AS TEXT), "
                "CAST(? AS TEXT), CAST(? AS TEXT))",
                [(i, *row) for i, row in enumerate(rows)],
            )
        connection.close()
        config = SqlSourceConfig(
            url=f"sqlite:///{path}",
            table="m",
            conversation_column="conv",
            role_column="role",
            content_column="content",
            tool_calls_column="calls",
            metadata_columns=["tag"],
        )
        keys = {row[0] for row in rows}
        assert count_outcomes(open_source(config)) == len(keys)


PRESET_TABLES = {
    "langchain": ("message_store", "session_id", "message"),
    "agents-sdk": ("agent_messages", "session_id", "message_data"),
    "llamaindex": ("llama_index_memory", "key", "data"),
}


def _preset_body(preset: str, message: dict[str, Any]) -> dict[str, Any]:
    role, content = message["role"], message["content"]
    if preset == "langchain":
        kind = {"user": "human", "assistant": "ai"}.get(role, role)
        return {"type": kind, "data": {"content": content, "type": kind}}
    if preset == "agents-sdk":
        return {"role": role, "content": content}
    return {"role": role, "content": content, "additional_kwargs": {}}


@FUZZ
@given(
    st.sampled_from(sorted(PRESET_TABLES)),
    st.lists(messages, min_size=1, max_size=6),
    st.lists(st.sampled_from(["none", "utf8", "escape", "surrogate", "garbage", "deep"])),
    st.integers(min_value=0, max_value=3),
)
def test_sql_presets(preset: str, chosen: list[dict[str, Any]], how: list[str], where: int) -> None:
    table, key, body = PRESET_TABLES[preset]
    bodies = [
        mutate(
            json.dumps(_preset_body(preset, m), ensure_ascii=False).encode(),
            how[i % len(how)] if how else "none",
            where,
        )
        for i, m in enumerate(chosen)
    ]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "chat.db"
        with sqlite3.connect(path) as connection:
            extra = ", timestamp INTEGER, role TEXT" if preset == "llamaindex" else ""
            connection.execute(
                f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, {key} TEXT, {body} TEXT{extra})"
            )
            values = "?, ?, CAST(? AS TEXT)" + (", ?, ?" if extra else "")
            connection.executemany(
                f"INSERT INTO {table} VALUES ({values})",
                [
                    (i, f"s{i % 3}", b, *((i, "user") if extra else ()))
                    for i, b in enumerate(bodies)
                ],
            )
        connection.close()
        config = SqlSourceConfig(url=f"sqlite:///{path}", preset=preset)
        assert count_outcomes(open_source(config)) == len({i % 3 for i in range(len(bodies))})
