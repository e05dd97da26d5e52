"""A `.json` file holding one pretty-printed object is read as one framed record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from adapters import JsonSourceConfig, open_source
from adapters.model import SourceConversation, SourceFailure
from migrate.cli import main
from migrate.errors import EXIT_PARTIAL


def write(path: Path, content: str) -> bytes:
    """A pretty-printed conversation whose user text is `content` (raw JSON string body)."""
    data = (
        '{\n "id": "c1",\n "messages": [\n  {"role": "user", "content": "'
        + content
        + '"},\n  {"role": "assistant", "content": "ok"}\n ]\n}\n'
    ).encode()
    path.write_bytes(data)
    return data


@pytest.mark.parametrize("escape", ["\\udc00", "\\ud800", "\\ud83d"])
def test_a_lone_surrogate_fails_or_is_replaced_never_a_question_mark(
    tmp_path: Path, escape: str
) -> None:
    path = tmp_path / "one.json"
    write(path, f"hi {escape}!")
    (failure,) = open_source(JsonSourceConfig(path=path)).read()
    assert isinstance(failure, SourceFailure)
    assert failure.code == "lone_surrogate" and "messages[0].content" in failure.message
    config = JsonSourceConfig(path=path, lone_surrogates="replace")
    (conversation,) = open_source(config).read()
    assert isinstance(conversation, SourceConversation)
    assert "hi \ufffd!" in conversation.model_dump_json()
    assert [n.code for n in conversation.notes] == ["lone_surrogate_replaced"]


def test_a_surrogate_pair_is_text(tmp_path: Path) -> None:
    path = tmp_path / "one.json"
    write(path, "smile \\ud83d\\ude00")
    (conversation,) = open_source(JsonSourceConfig(path=path)).read()
    assert isinstance(conversation, SourceConversation)
    assert (
        "smile 😀" in json.loads(conversation.model_dump_json())["entries"][0]["parts"][0]["text"]
    )


def test_a_bad_byte_fails_the_file_by_offset_and_the_job_goes_on(tmp_path: Path) -> None:
    folder = tmp_path / "chats"
    folder.mkdir()
    data = write(folder / "a.json", "caf\\u00e9")
    bad = data.replace(b"caf", b"c\xffaf")
    (folder / "a.json").write_bytes(bad)
    write(folder / "b.json", "fine")
    (folder / "c.json").write_bytes(data.replace(b'"ok"', b'"ok" oops'))
    result = CliRunner().invoke(
        main, ["plan", str(folder), "--job-dir", str(tmp_path / "job"), "--json"]
    )
    assert result.exit_code == EXIT_PARTIAL, result.output
    summary = json.loads(result.stdout)
    assert summary["conversations"] == {"total": 3, "planned": 1, "failed": 2, "skipped": 0}
    errors = {Path(e["location"]).name: e for e in summary["errors"]}
    offset = bad.index(b"\xff")
    assert errors[f"a.json byte {offset}"]["code"] == "invalid_utf8"
    (malformed,) = [e for name, e in errors.items() if name.startswith("c.json byte ")]
    assert malformed["code"] == "malformed_json" and "line 5" in malformed["message"]
