"""Directory and archive sources: what is read, what is skipped (and why), what fails alone."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from migrate.cli import main
from migrate.errors import EXIT_OK, EXIT_PARTIAL, EXIT_USAGE

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "real"
CHATGPT = FIXTURES / "chatgpt-export-samples" / "0xsalt_sample_conversations.json"
SIDE_FILES = {
    "user.json": {"id": "user-1", "email": "someone@example.com"},
    "message_feedback.json": [{"conversation_id": "x", "rating": "thumbs_up"}],
    "model_comparisons.json": [],
    "shared_conversations.json": [{"id": "share-1", "conversation_id": "x"}],
}


def chat_line(number: int) -> str:
    return json.dumps({"id": f"c{number}", "messages": [{"role": "user", "content": "hi"}]})


def plan(source: Path, job_dir: Path, *extra: str) -> tuple[int, dict[str, Any], str, str]:
    result = CliRunner().invoke(main, ["plan", str(source), "--job-dir", str(job_dir), *extra])
    summary = json.loads((job_dir / "summary.json").read_text("utf-8")) if job_dir.exists() else {}
    return result.exit_code, summary, result.stdout, result.stderr


def write_export(target: Path, conversations: dict[str, list[Any]]) -> None:
    """A ChatGPT export's files: conversations file(s), side files, the viewer, an image."""
    files: dict[str, bytes] = {
        name: json.dumps(value).encode() for name, value in conversations.items()
    }
    files |= {name: json.dumps(value).encode() for name, value in SIDE_FILES.items()}
    files["chat.html"] = b"<html><script>var jsonData = [];</script></html>"
    files["file-abc123-photo.png"] = b"\x89PNG\r\n\x1a\n" + os.urandom(64)
    files["dalle-generations/image.webp"] = b"RIFF" + os.urandom(32)
    if target.suffix == ".zip":
        with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, content in files.items():
                archive.writestr(name, content)
        return
    for name, content in files.items():
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        (target / name).write_bytes(content)


def test_a_directory_lists_what_it_skips_and_a_bad_file_fails_alone(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    # Sorted first: an unreadable `.json` must not stop the job before it starts.
    (source / "0-binary.json").write_bytes(b"\x00\x01\x02PK\x03" + os.urandom(200))
    (source / "chats.jsonl").write_text("\n".join(chat_line(n) for n in range(3)) + "\n")
    (source / "notes.txt").write_text("not a conversation")
    (source / "export.csv").write_text("id,text\n1,hello\n")
    (source / "old.jsonl.gz").write_bytes(b"\x1f\x8b" + os.urandom(30))
    (source / "archive.zip").write_bytes(b"")
    with zipfile.ZipFile(source / "archive.zip", "w") as archive:
        archive.writestr("readme.txt", "no conversations here")
    (source / ".cache").mkdir()
    (source / ".cache" / "chats.jsonl").write_text(chat_line(9) + "\n")
    code, summary, stdout, _ = plan(source, tmp_path / "plan")
    assert code == EXIT_PARTIAL, stdout
    counts = summary["conversations"]
    assert (counts["total"], counts["planned"], counts["failed"]) == (4, 3, 1)
    (error,) = summary["errors"]
    assert error["location"].endswith("0-binary.json") and error["code"] == "not_json"
    skipped = {entry["path"]: entry["reason"] for entry in summary["skipped_files"]["files"]}
    assert summary["skipped_files"]["count"] == len(skipped) == 5
    assert set(skipped) == {".cache", "archive.zip", "export.csv", "notes.txt", "old.jsonl.gz"}
    assert "hidden folder" in skipped[".cache"]
    assert "compressed" in skipped["old.jsonl.gz"]
    assert "not a ChatGPT export" in skipped["archive.zip"]
    assert "not a JSON or JSON Lines file (.txt)" in skipped["notes.txt"]
    assert "skipped files: 5 (not read" in stdout
    assert f"notes.txt: {skipped['notes.txt']}" in stdout


def test_a_chatgpt_export_zip_is_read_in_place_and_its_side_files_skipped(
    tmp_path: Path,
) -> None:
    conversations = json.loads(CHATGPT.read_text("utf-8"))
    export = tmp_path / "chatgpt-export.zip"
    write_export(export, {"conversations.json": conversations})
    code, summary, stdout, stderr = plan(export, tmp_path / "plan", "--progress")
    assert code == EXIT_OK, stdout + stderr
    counts = summary["conversations"]
    assert counts["total"] == counts["planned"] == len(conversations) > 0
    skipped = {entry["path"]: entry["reason"] for entry in summary["skipped_files"]["files"]}
    for name in SIDE_FILES:
        assert "part of the ChatGPT export" in skipped[f"chatgpt-export.zip/{name}"], name
    assert "HTML viewer" in skipped["chatgpt-export.zip/chat.html"]
    assert "media" in skipped["chatgpt-export.zip/file-abc123-photo.png"]
    assert "media" in skipped["chatgpt-export.zip/dalle-generations/image.webp"]
    assert summary["skipped_files"]["count"] == len(SIDE_FILES) + 3
    # Streamed from the archive: nothing was unzipped beside it.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chatgpt-export.zip", "plan"]
    # The bar counts the bytes of the conversations file, to 100%.
    assert "planning: 100%" in stderr and "B/" in stderr
    # The same export unzipped reads the same conversations and skips the same files.
    unzipped = tmp_path / "unzipped"
    unzipped.mkdir()
    write_export(unzipped, {"conversations.json": conversations})
    code, again, stdout, _ = plan(unzipped, tmp_path / "plan-dir")
    assert code == EXIT_OK, stdout
    assert again["conversations"] == summary["conversations"]
    assert {entry["path"] for entry in again["skipped_files"]["files"]} == {
        path.removeprefix("chatgpt-export.zip/") for path in skipped
    }


def test_a_split_export_reads_every_part_and_a_zip_without_one_is_refused(
    tmp_path: Path,
) -> None:
    conversations = json.loads(CHATGPT.read_text("utf-8"))
    export = tmp_path / "split.zip"
    write_export(
        export,
        {"conversations-000.json": conversations[:2], "conversations-001.json": conversations[2:]},
    )
    code, summary, stdout, _ = plan(export, tmp_path / "plan")
    assert code == EXIT_OK, stdout
    assert summary["conversations"]["planned"] == len(conversations)
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("chats.jsonl", chat_line(1))
    result = CliRunner().invoke(main, ["plan", str(other), "--job-dir", str(tmp_path / "no")])
    assert result.exit_code == EXIT_USAGE
    assert "without a ChatGPT export's conversations.json" in result.stderr


def test_a_run_keeps_the_skipped_files_in_its_summary(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    (source / "chats.jsonl").write_text(chat_line(1) + "\n")
    (source / "notes.txt").write_text("not a conversation")
    job_dir = tmp_path / "job"
    result = CliRunner().invoke(main, ["run", str(source), "--job-dir", str(job_dir)])
    assert result.exit_code == EXIT_OK, result.output
    assert "skipped files:    1 (not read" in result.stdout
    summary = json.loads((job_dir / "summary.json").read_text("utf-8"))
    assert summary["skipped_files"]["count"] == 1
    assert summary["skipped_files"]["files"][0]["path"] == "notes.txt"
    status = CliRunner().invoke(main, ["status", str(job_dir)])
    assert "notes.txt: not a JSON or JSON Lines file" in status.stdout
