"""Assistants export files are framed: one bad record or byte fails its thread alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from adapters import JsonSourceConfig, open_source
from adapters.json.threads import read_export
from adapters.model import SourceConversation, SourceFailure, SourceRecord
from migrate.cli import main

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "assistants"


def thread(n: int, text: str = "hello") -> dict[str, Any]:
    """A canonical thread document with a user and an assistant message."""
    thread_id = f"thread_{n:04d}"
    return {
        "thread": {"id": thread_id, "object": "thread", "created_at": 1_700_000_000 + n},
        "messages": [
            {
                "id": f"msg_{n}_{k}",
                "object": "thread.message",
                "thread_id": thread_id,
                "created_at": 1_700_000_000 + n + k,
                "role": role,
                "content": [{"type": "text", "text": {"value": text, "annotations": []}}],
            }
            for k, role in enumerate(("user", "assistant"))
        ],
        "runs": [],
        "run_steps": [],
    }


def outcome(records: list[SourceRecord]) -> list[tuple[str, str, str | None]]:
    return [
        (
            type(r).__name__,
            r.id if isinstance(r, SourceConversation) else r.location.rsplit("/", 1)[-1],
            r.code if isinstance(r, SourceFailure) else None,
        )
        for r in records
    ]


def test_an_array_of_threads_fails_only_the_bad_ones(tmp_path: Path) -> None:
    items = [json.dumps(thread(n), indent=1).encode() for n in range(5)]
    items[1] = items[1].replace(b'"hello"', b'"hel\xfflo"', 1)  # invalid UTF-8
    items[3] = items[3].replace(b'"role": "user",', b'"role": "user" "x",', 1)  # malformed
    data = b"[\n" + b",\n".join(items) + b"\n]\n"
    path = tmp_path / "threads.json"
    path.write_bytes(data)
    records = list(read_export(path))
    bad_byte, bad_json = data.index(b"\xff"), data.index(b'"x"')
    assert outcome(records) == [
        ("SourceConversation", "thread_0000", None),
        ("SourceFailure", f"threads.json byte {bad_byte}", "invalid_utf8"),
        ("SourceConversation", "thread_0002", None),
        ("SourceFailure", f"threads.json byte {bad_json}", "malformed_json"),
        ("SourceConversation", "thread_0004", None),
    ]
    good = [r for r in records if isinstance(r, SourceConversation)]
    assert [r.location.rsplit("/", 1)[-1] for r in good] == [
        "threads.json[0]",
        "threads.json[2]",
        "threads.json[4]",
    ]
    assert all(len(r.entries) == 2 for r in good)


def test_a_directory_of_exported_threads_reads_on_past_bad_files(tmp_path: Path) -> None:
    for n in range(4):
        text = json.dumps(thread(n), ensure_ascii=False, indent=1)  # as export-threads writes
        (tmp_path / f"thread_{n:04d}.json").write_text(text, encoding="utf-8")
    broken = tmp_path / "thread_0001.json"
    raw = broken.read_bytes().replace(b'"hello"', b'"caf\xc3"', 1)  # a cut UTF-8 sequence
    broken.write_bytes(raw)
    cut = tmp_path / "thread_0002.json"
    cut.write_bytes(cut.read_bytes()[:200])  # a file cut short
    records = list(read_export(tmp_path))
    bad_byte = raw.index(b"\xc3")
    assert outcome(records) == [
        ("SourceConversation", "thread_0000", None),
        ("SourceFailure", f"thread_0001.json byte {bad_byte}", "invalid_utf8"),
        ("SourceFailure", "thread_0002.json byte 195", "malformed_json"),
        ("SourceConversation", "thread_0003", None),
    ]
    failure = records[2]
    assert isinstance(failure, SourceFailure)
    # the string the cut runs through starts at byte 195
    assert cut.read_bytes()[195:196] == b'"' and "Unterminated string" in failure.message


def test_a_bad_item_in_a_bare_message_array_fails_that_thread(tmp_path: Path) -> None:
    messages = [json.dumps(m).encode() for m in thread(7)["messages"]]
    messages[1] = messages[1].replace(b'"role"', b'"role" : :', 1)
    data = b"[" + b", ".join(messages) + b"]"
    path = tmp_path / "messages.json"
    path.write_bytes(data)
    (failure,) = read_export(path)
    assert isinstance(failure, SourceFailure)
    assert failure.code == "malformed_json"
    assert failure.location.endswith(f"messages.json byte {data.index(b': :') + 2}")
    assert "one conversation" in failure.message


def test_a_lone_surrogate_fails_its_thread_or_is_replaced_by_policy(tmp_path: Path) -> None:
    lines = [json.dumps(thread(n)) for n in range(3)]
    lines[1] = lines[1].replace('"hello"', '"he\\udc00llo"', 1)
    path = tmp_path / "threads.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    failed = list(open_source(JsonSourceConfig(path=path, format="assistants")).read())
    assert outcome(failed)[1] == ("SourceFailure", "threads.jsonl:2", "lone_surrogate")
    assert [type(r).__name__ for r in failed] == [
        "SourceConversation",
        "SourceFailure",
        "SourceConversation",
    ]
    config = JsonSourceConfig(path=path, format="assistants", lone_surrogates="replace")
    replaced = list(open_source(config).read())
    assert all(isinstance(r, SourceConversation) for r in replaced)
    fixed = replaced[1]
    assert isinstance(fixed, SourceConversation)
    assert [n.code for n in fixed.notes] == ["lone_surrogate_replaced"]
    assert "he\ufffdllo" in fixed.model_dump_json()


def test_plan_counts_every_thread_of_a_broken_export(tmp_path: Path) -> None:
    items = [json.dumps(thread(n)).encode() for n in range(6)]
    items[2] = items[2][:-40]  # brackets that never close: framing resumes at the next thread
    items[4] = items[4].replace(b"hello", b"\xfe\xff", 1)
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "all.json").write_bytes(b"[" + b",".join(items) + b"]")
    result = CliRunner().invoke(
        main,
        [
            "plan",
            str(tmp_path / "export"),
            "--format",
            "assistants",
            "--job-dir",
            str(tmp_path / "job"),
            "--json",
        ],
    )
    summary = json.loads(result.stdout)
    assert summary["conversations"] == {"total": 6, "planned": 4, "failed": 2, "skipped": 0}
    assert sorted(e["code"] for e in summary["errors"]) == ["invalid_utf8", "malformed_json"]
    assert all(" byte " in e["location"] for e in summary["errors"])
