"""Streaming: broken JSON arrays name their byte offset, big files read with flat memory."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import ijson
import pytest

from adapters import JsonSourceConfig, open_source
from adapters.model import SourceConversation, SourceFailure, SourceRecord

ReadJson = Callable[..., list[SourceRecord]]
BIG_FILE_BYTES = 50 * 1024 * 1024
PEAK_LIMIT_BYTES = 25 * 1024 * 1024
"""Half the file size: loading the file whole would exceed it, streaming stays far below."""


def _record(index: int, text: str = "hello") -> dict[str, object]:
    return {"id": f"c{index}", "messages": [{"role": "user", "content": text}]}


def test_c_backend_is_in_use() -> None:
    assert ijson.backend == "yajl2_c"


def test_truncated_array_fails_the_rest_and_the_next_file_is_read(
    read_json: ReadJson, tmp_path: Path
) -> None:
    body = json.dumps([_record(0), _record(1), _record(2)])
    cut = body.index('{"id": "c2"') + 20
    broken = tmp_path / "a.json"
    broken.write_bytes(body[:cut].encode())
    (tmp_path / "b.json").write_text(json.dumps([_record(9)]), encoding="utf-8")
    records = read_json(tmp_path)
    assert [type(r).__name__ for r in records] == [
        "SourceConversation",
        "SourceConversation",
        "SourceFailure",
        "SourceConversation",
    ]
    failure = records[2]
    assert isinstance(failure, SourceFailure)
    assert failure.code == "malformed_json"
    assert failure.location == f"{broken} byte {cut}"
    assert "after 2 item(s)" in failure.message and "rest of the file" in failure.message
    assert records[3].location == f"{tmp_path / 'b.json'}[0]"


@pytest.mark.parametrize("padding", [0, 25, 3_000_000])
def test_malformed_array_names_the_exact_byte(
    read_json: ReadJson, tmp_path: Path, padding: int
) -> None:
    head = json.dumps([_record(0, "x" * padding), _record(1)])[:-1]
    text = head + ', {"id": "c2", "messages": oops}]'
    offset = len(text.encode()) - len("oops}]")
    path = tmp_path / "broken.json"
    path.write_text(text, encoding="utf-8")
    records = read_json(path)
    assert [r.id for r in records if isinstance(r, SourceConversation)] == ["c0", "c1"]
    failure = records[-1]
    assert isinstance(failure, SourceFailure)
    assert failure.location == f"{path} byte {offset}"
    assert f"at byte {offset}" in failure.message


def test_array_items_that_are_not_conversations_fail_alone(
    read_json: ReadJson, tmp_path: Path
) -> None:
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps([_record(0), 42, {"id": "c2"}, _record(3)]), encoding="utf-8")
    records = read_json(path, format="chat_completions")
    assert [(type(r).__name__, r.location) for r in records] == [
        ("SourceConversation", f"{path}[0]"),
        ("SourceFailure", f"{path}[1]"),
        ("SourceFailure", f"{path}[2]"),
        ("SourceConversation", f"{path}[3]"),
    ]
    assert [r.code for r in records if isinstance(r, SourceFailure)] == [
        "not_an_object",
        "missing_messages",
    ]


def _big_records() -> Iterator[str]:
    """Records of about 20 KB: ten 2 KB messages each."""
    index = 0
    while True:
        messages = [
            {"role": "user" if i % 2 == 0 else "assistant", "content": f"{index}-{i} " + "w" * 2000}
            for i in range(10)
        ]
        yield json.dumps({"id": f"c{index}", "messages": messages})
        index += 1


@pytest.fixture(scope="module")
def big_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, int]:
    """A ~50 MB JSONL file and the same records as one JSON array."""
    folder = tmp_path_factory.mktemp("big")
    jsonl, array = folder / "big.jsonl", folder / "big.json"
    count = 0
    with jsonl.open("w", encoding="utf-8") as lines, array.open("w", encoding="utf-8") as arr:
        arr.write("[\n")
        for line in _big_records():
            lines.write(line + "\n")
            arr.write(("," if count else "") + line + "\n")
            count += 1
            if lines.tell() >= BIG_FILE_BYTES:
                break
        arr.write("]\n")
    return jsonl, array, count


@pytest.mark.slow
@pytest.mark.parametrize("which", ["jsonl", "array"])
def test_big_files_read_with_flat_memory(big_files: tuple[Path, Path, int], which: str) -> None:
    jsonl, array, count = big_files
    path = jsonl if which == "jsonl" else array
    assert path.stat().st_size >= BIG_FILE_BYTES
    source = open_source(JsonSourceConfig(path=path))
    seen = messages = 0
    tracemalloc.start()
    try:
        for record in source.read():
            assert isinstance(record, SourceConversation)
            seen += 1
            messages += len(record.entries)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (seen, messages) == (count, count * 10)
    assert peak < PEAK_LIMIT_BYTES


def test_invalid_utf8_in_an_array_names_the_byte(read_json: ReadJson, tmp_path: Path) -> None:
    head = json.dumps([_record(0)])[:-1].encode() + b', {"id": "c1", "messages": [{"role": "user", '
    path = tmp_path / "latin1.json"
    path.write_bytes(head + b'"content": "caf\xe9"}]}]')
    records = read_json(path)
    assert isinstance(records[0], SourceConversation)
    failure = records[1]
    assert isinstance(failure, SourceFailure)
    assert failure.code == "invalid_utf8"
    offset = int(failure.location.rsplit(" ", 1)[1])
    assert len(head) < offset <= len(head) + len('"content": "caf\xe9')
    assert "after 1 item(s)" in failure.message
