"""Marks: a JSON Lines read can start where an earlier read found a record, if nothing before
it changed."""

from __future__ import annotations

import json
from pathlib import Path

from adapters import JsonSourceConfig
from adapters.json.files import JsonFilesSource
from adapters.model import SourceConversation, SourceRecord


def _line(index: int) -> str:
    record = {"id": f"c{index}", "messages": [{"role": "user", "content": f"hello {index}"}]}
    return json.dumps(record) + "\n"


def _seen(records: list[SourceRecord]) -> list[tuple[str, str]]:
    return [(r.id, r.location) for r in records if isinstance(r, SourceConversation)]


def _source(path: Path) -> JsonFilesSource:
    return JsonFilesSource(JsonSourceConfig(path=path))


def test_a_read_started_at_a_mark_yields_the_records_from_there_with_their_locations(
    tmp_path: Path,
) -> None:
    path = tmp_path / "chats.jsonl"
    # A blank line and a broken one before the mark: both are part of what it vouches for.
    path.write_text(_line(0) + "\n" + "{broken\n" + _line(1) + _line(2), encoding="utf-8")
    source = _source(path)
    whole = list(source.read())
    mark = source.mark(f"{path}:4")
    assert mark is not None
    assert source.start_at(mark)
    assert (
        _seen(list(source.read()))
        == _seen(whole)[1:]
        == [
            ("c1", f"{path}:4"),
            ("c2", f"{path}:5"),
        ]
    )
    # Once: the next read starts at the beginning again.
    assert _seen(list(source.read())) == _seen(whole)


def test_a_mark_taken_after_a_read_started_at_one_is_as_good_as_one_from_the_beginning(
    tmp_path: Path,
) -> None:
    path = tmp_path / "chats.jsonl"
    path.write_text("".join(_line(n) for n in range(4)), encoding="utf-8")
    source = _source(path)
    list(source.read())
    from_start = source.mark(f"{path}:4")
    first = source.mark(f"{path}:2")
    assert first is not None and source.start_at(first)
    list(source.read())
    assert source.mark(f"{path}:4") == from_start


def test_a_change_before_the_mark_makes_the_read_start_at_the_beginning(tmp_path: Path) -> None:
    path = tmp_path / "chats.jsonl"
    path.write_text(_line(0) + _line(1), encoding="utf-8")
    source = _source(path)
    list(source.read())
    mark = source.mark(f"{path}:2")
    assert mark is not None
    # The same length, one byte changed: only the digest tells.
    path.write_text(_line(0).replace("hello", "hallo") + _line(1), encoding="utf-8")
    changed = _source(path)
    assert not changed.start_at(mark)
    assert [r.id for r in changed.read() if isinstance(r, SourceConversation)] == ["c0", "c1"]


def test_a_directory_keeps_no_marks(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text(_line(0), encoding="utf-8")
    (tmp_path / "b.jsonl").write_text(_line(1), encoding="utf-8")
    source = _source(tmp_path)
    records = list(source.read())
    assert [r.location for r in records] == [
        f"{tmp_path / 'a.jsonl'}:1",
        f"{tmp_path / 'b.jsonl'}:1",
    ]
    assert source.mark(records[0].location) is None
    assert not source.start_at("jsonl:1:0:" + "0" * 32)
