"""Format detection: every sample and real fixture, mixed directories, and what cannot be read."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from adapters import JsonSourceConfig, SourceOpenError, open_source
from adapters.json.detect import detect_file_format
from adapters.json.stream import Layout, sniff_layout
from adapters.json.threads import read_export
from adapters.model import SourceConversation, SourceFailure, SourceRecord

ReadJson = Callable[..., list[SourceRecord]]
SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def _detect(path: Path) -> str | None:
    return detect_file_format(path, sniff_layout(path), JsonSourceConfig(path=path))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("json/chat_completions.jsonl", "chat_completions"),
        ("json/chat_completions_single.json", "chat_completions"),
        ("json/finetune.jsonl", "finetune"),
        ("json/sharegpt.json", "sharegpt"),
        ("json/chatgpt_conversations.json", "chatgpt"),
        ("assistants/thread_9bQ2mVtX4aLpR7cN1eHwZs3K.json", "assistants"),
    ],
)
def test_samples_are_detected(read_json: ReadJson, name: str, expected: str) -> None:
    path = SAMPLES / name
    assert _detect(path) == expected
    kinds = {r.source_kind for r in read_json(path)}
    assert kinds == {expected}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("finetune-jsonl/openai-dotnet_fine_tuning_sample.jsonl", "finetune"),
        ("sharegpt-llamafactory/glaive_toolcall_en_demo.json", "sharegpt"),
        ("sharegpt-llamafactory/mllm_demo.json", "sharegpt"),
        ("chatgpt-export-samples/0xsalt_sample_conversations.json", "chatgpt"),
    ],
)
def test_real_fixtures_are_detected(real_fixtures: Path, name: str, expected: str) -> None:
    assert _detect(real_fixtures / name) == expected


def test_layouts(tmp_path: Path) -> None:
    cases = {
        "lines.json": '{"messages": []}\n{"messages": []}\n',
        "pretty.json": '{\n  "messages": []\n}\n',
        "array.json": '\ufeff  [\n {"messages": []}]',
        "empty.json": "  \n",
        "scalar.json": '"hello"',
        "any.jsonl": '[{"role": "user", "content": "x"}]\n',
    }
    for name, text in cases.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    assert {name: sniff_layout(tmp_path / name) for name in cases} == {
        "lines.json": Layout.JSONL,
        "pretty.json": Layout.OBJECT,
        "array.json": Layout.ARRAY,
        "empty.json": Layout.EMPTY,
        "scalar.json": Layout.NOT_JSON,
        "any.jsonl": Layout.JSONL,
    }


def test_mixed_directory_is_detected_per_file(read_json: ReadJson, tmp_path: Path) -> None:
    for name in ("chat_completions_single.json", "finetune.jsonl", "sharegpt.json"):
        shutil.copy(SAMPLES / "json" / name, tmp_path / name)
    (tmp_path / "nested").mkdir()
    shutil.copy(SAMPLES / "json" / "chatgpt_conversations.json", tmp_path / "nested" / "x.json")
    shutil.copy(
        SAMPLES / "assistants" / "thread_9bQ2mVtX4aLpR7cN1eHwZs3K.json", tmp_path / "thread.json"
    )
    (tmp_path / "package.json").write_text('{"name": "web-app", "version": "1.0.0"}', "utf-8")
    records = read_json(tmp_path)
    by_file: dict[str, set[str]] = {}
    for record in records:
        by_file.setdefault(Path(record.location.split(":")[0].split("[")[0]).name, set()).add(
            record.source_kind
        )
    assert by_file == {
        "chat_completions_single.json": {"chat_completions"},
        "finetune.jsonl": {"finetune"},
        "x.json": {"chatgpt"},
        "package.json": {"json"},
        "sharegpt.json": {"sharegpt"},
        "thread.json": {"assistants"},
    }
    [unknown] = [r for r in records if r.source_kind == "json"]
    assert isinstance(unknown, SourceFailure)
    assert (unknown.code, unknown.location) == ("unknown_format", str(tmp_path / "package.json"))
    # Files come in sorted path order, nested folders included.
    order = [Path(r.location.split(":")[0].split("[")[0]).name for r in records]
    assert order.index("chat_completions_single.json") < order.index("finetune.jsonl")
    assert order.index("finetune.jsonl") < order.index("x.json") < order.index("package.json")


def test_unknown_first_file_is_an_open_error(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text('{"theme": "dark"}', encoding="utf-8")
    with pytest.raises(SourceOpenError, match="pass the format") as info:
        open_source(JsonSourceConfig(path=path))
    assert str(path) in str(info.value)
    # Told the format, the reader tries and reports the record instead.
    [failure] = open_source(JsonSourceConfig(path=path, format="chat_completions")).read()
    assert isinstance(failure, SourceFailure) and failure.code == "missing_messages"


def test_missing_paths_and_empty_directories(tmp_path: Path) -> None:
    with pytest.raises(SourceOpenError, match="does not exist"):
        open_source(JsonSourceConfig(path=tmp_path / "nope.jsonl"))
    with pytest.raises(SourceOpenError, match=r"no \.json"):
        open_source(JsonSourceConfig(path=tmp_path))


def test_empty_files_are_skipped_for_detection(read_json: ReadJson, tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text("", encoding="utf-8")
    shutil.copy(SAMPLES / "json" / "finetune.jsonl", tmp_path / "b.jsonl")
    records = read_json(tmp_path)
    assert len(records) == 4 and {r.source_kind for r in records} == {"finetune"}


def test_assistants_format_hands_the_whole_path_to_the_export_reader(read_json: ReadJson) -> None:
    folder = SAMPLES / "assistants"
    records = read_json(folder, format="assistants")
    assert records == list(read_export(folder))
    assert {r.id for r in records if isinstance(r, SourceConversation)} >= {
        "thread_9bQ2mVtX4aLpR7cN1eHwZs3K"
    }


def test_assistants_list_envelope_is_detected(tmp_path: Path) -> None:
    message = {"id": "msg_1", "object": "thread.message", "role": "user", "content": []}
    path = tmp_path / "page.json"
    path.write_text(json.dumps({"object": "list", "data": [message], "has_more": False}), "utf-8")
    assert _detect(path) == "assistants"
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps([message]), "utf-8")
    assert _detect(bare) == "assistants"
