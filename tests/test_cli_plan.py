"""`migrate plan` end to end on the bundled samples: counts, files, exit codes, output streams."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from migrate.cli import main
from migrate.errors import EXIT_OK, EXIT_PARTIAL, EXIT_USAGE

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def plan(args: list[str], job_dir: Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["plan", *args, "--job-dir", str(job_dir), "--write-plan"])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    "sample",
    [
        "json/chat_completions.jsonl",
        "json/chat_completions_single.json",
        "json/finetune.jsonl",
        "json/sharegpt.json",
        "json/chatgpt_conversations.json",
        "assistants",
    ],
)
def test_every_sample_plans_and_its_counts_add_up(sample: str, tmp_path: Path) -> None:
    code, stdout, _ = plan([str(SAMPLES / sample), "--json"], tmp_path)
    summary = json.loads(stdout)
    counts = summary["conversations"]
    assert counts["total"] == counts["planned"] + counts["failed"] + counts["skipped"]
    assert counts["planned"] > 0
    assert code == (EXIT_PARTIAL if summary["errors"] else EXIT_OK)
    assert len(summary["errors"]) == counts["failed"]
    requests = [json.loads(line) for line in (tmp_path / "plan.jsonl").read_text().splitlines()]
    creates = [r for r in requests if r["path"] == "/conversations"]
    appends = [r for r in requests if r["path"] == "/conversations/{conversation_id}/items"]
    assert len(creates) == counts["planned"]
    assert len(requests) == summary["api_calls"]
    assert sum(len(r["body"]["items"]) for r in appends) == summary["items"]["planned"]
    assert all(1 <= len(r["body"]["items"]) <= 20 for r in appends)
    assert all(r["body"] == {"metadata": r["body"]["metadata"]} for r in creates)
    findings = [json.loads(line) for line in (tmp_path / "findings.jsonl").read_text().splitlines()]
    assert sum(f["count"] for f in findings) == sum(summary["findings"].values())


def test_broken_records_are_errors_and_the_rest_is_planned(tmp_path: Path) -> None:
    code, stdout, _ = plan([str(SAMPLES / "json/chat_completions.jsonl"), "--json"], tmp_path)
    summary = json.loads(stdout)
    assert code == EXIT_PARTIAL
    codes = {error["code"] for error in summary["errors"]}
    assert {"malformed_json", "unknown_role", "missing_messages"} <= codes
    assert all("chat_completions.jsonl:" in error["location"] for error in summary["errors"])
    errors = (tmp_path / "errors.jsonl").read_text().splitlines()
    assert len(errors) == summary["conversations"]["failed"]


def test_a_long_conversation_is_split_into_batches_of_twenty(tmp_path: Path) -> None:
    plan([str(SAMPLES / "json/chat_completions.jsonl"), "--json"], tmp_path)
    per_conversation: dict[str, list[int]] = {}
    for line in (tmp_path / "plan.jsonl").read_text().splitlines():
        request = json.loads(line)
        if "items" in request["body"]:
            per_conversation.setdefault(request["source_id"], []).append(
                len(request["body"]["items"])
            )
    longest = max(per_conversation.values(), key=sum)
    assert sum(longest) > 20
    assert len(longest) >= 2


def test_readable_summary_goes_to_stdout_and_progress_to_stderr(tmp_path: Path) -> None:
    code, stdout, _ = plan([str(SAMPLES / "json/finetune.jsonl")], tmp_path)
    assert code == EXIT_OK
    assert "conversations:" in stdout
    assert "API calls:" in stdout
    assert f"plan written to {tmp_path}" in stdout


def test_policy_flag_changes_the_plan(tmp_path: Path) -> None:
    sample = str(SAMPLES / "json/chat_completions.jsonl")
    plan([sample, "--json", "--policy", "assistant_content=string"], tmp_path)
    bodies = [
        json.loads(line)["body"] for line in (tmp_path / "plan.jsonl").read_text().splitlines()
    ]
    assistants = [
        item for body in bodies for item in body.get("items", []) if item.get("role") == "assistant"
    ]
    assert assistants and all(isinstance(item["content"], str) for item in assistants)


@pytest.mark.parametrize(
    "args",
    [
        ["/no/such/file.jsonl"],
        [],
        ["chats.jsonl", "--preset", "langchain"],
        ["x.jsonl", "--policy", "reasoning"],
        ["x.jsonl", "--policy", "reasoning=maybe"],
    ],
)
def test_usage_and_configuration_errors_exit_2(args: list[str], tmp_path: Path) -> None:
    code, stdout, stderr = plan(args, tmp_path / "job")
    assert code == EXIT_USAGE
    assert stdout == ""
    assert stderr.strip()
