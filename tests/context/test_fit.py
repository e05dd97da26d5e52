"""Context fit through `plan`, `run` and `verify --count-tokens`: findings, trimming, counts."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from migrate.cli import main
from migrate.context.count import TokenCount, count_items
from migrate.context.fit import keep_recent_start
from migrate.context.models import model_spec
from migrate.errors import EXIT_OK, EXIT_PARTIAL
from migrate.server.store import ConversationStore

GPT_4O_LIMIT = 128_000
# about 1,000 tokens of varied text per message
PARAGRAPH = " ".join(f"word{n} of the long thread, line {n % 97}." for n in range(170))


def long_thread(turns: int) -> dict[str, Any]:
    """A chat of `turns` user/assistant pairs, with a parallel tool call every fifth turn."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": "You are terse."}]
    for turn in range(turns):
        messages.append({"role": "user", "content": f"turn {turn}: {PARAGRAPH}"})
        if turn % 5 == 0:
            calls = [
                {
                    "id": f"call_{turn}_{n}",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": json.dumps({"q": turn, "n": n})},
                }
                for n in range(2)
            ]
            messages.append({"role": "assistant", "content": None, "tool_calls": calls})
            for n in range(2):
                messages.append(
                    {"role": "tool", "tool_call_id": f"call_{turn}_{n}", "content": PARAGRAPH}
                )
        messages.append({"role": "assistant", "content": f"answer {turn}: {PARAGRAPH}"})
    return {"id": "long", "messages": messages}


def write_threads(path: Path, *threads: dict[str, Any]) -> Path:
    path.write_text("".join(json.dumps(thread) + "\n" for thread in threads), encoding="utf-8")
    return path


SHORT = {"id": "short", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return write_threads(tmp_path / "threads.jsonl", long_thread(60), SHORT)


def invoke(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


def conversation_lines(job_dir: Path) -> dict[str, dict[str, Any]]:
    lines = (job_dir / "conversations.jsonl").read_text().splitlines()
    return {line["source_id"]: line for line in map(json.loads, lines)}


def test_plan_reports_a_conversation_over_the_model_limit(source: Path, tmp_path: Path) -> None:
    job = tmp_path / "plan"
    result = invoke("plan", str(source), "--model", "gpt-4o", "--json", "--job-dir", str(job))
    assert result.exit_code == EXIT_OK, result.output
    summary = json.loads(result.stdout)
    assert summary["findings"]["context_over_limit"] == 1
    figures = summary["tokens"]
    assert (figures["model"], figures["limit"], figures["over_limit"]) == ("gpt-4o", 128_000, 1)
    lines = conversation_lines(job)
    assert lines["long"]["tokens"] > GPT_4O_LIMIT
    assert figures["max"] == lines["long"]["tokens"]
    assert figures["total"] == lines["long"]["tokens"] + lines["short"]["tokens"]
    findings = [json.loads(line) for line in (job / "findings.jsonl").read_text().splitlines()]
    (over,) = [f for f in findings if f["code"] == "context_over_limit"]
    assert over["source_id"] == "long" and "compaction" in over["message"]
    # gpt-5's 272k limit holds it
    result = invoke("plan", str(source), "--json", "--job-dir", str(tmp_path / "gpt5"))
    assert "context_over_limit" not in json.loads(result.stdout)["findings"]


def test_oversize_fail_fails_only_the_conversation_over_the_limit(
    source: Path, tmp_path: Path
) -> None:
    job = tmp_path / "plan"
    args = ["--model", "gpt-4o", "--policy", "oversize=fail", "--json", "--job-dir", str(job)]
    result = invoke("plan", str(source), *args)
    assert result.exit_code == EXIT_PARTIAL
    summary = json.loads(result.stdout)
    assert summary["conversations"] == {"total": 2, "planned": 1, "failed": 1, "skipped": 0}
    assert [error["code"] for error in summary["errors"]] == ["context_over_limit"]
    assert summary["tokens"]["over_limit"] == 1


def test_a_conversation_at_80_percent_is_near_the_limit(source: Path, tmp_path: Path) -> None:
    job = tmp_path / "plan"
    invoke("plan", str(source), "--job-dir", str(job))
    tokens = conversation_lines(job)["long"]["tokens"]
    args = ["--context-limit", str(int(tokens / 0.85)), "--json", "--job-dir", str(tmp_path / "n")]
    summary = json.loads(invoke("plan", str(source), *args).stdout)
    assert summary["findings"]["context_near_limit"] == 1
    assert summary["tokens"]["near_limit"] == 1 and summary["tokens"]["over_limit"] == 0


def test_keep_recent_lands_under_the_limit_with_every_pair_intact(
    source: Path, tmp_path: Path
) -> None:
    whole = tmp_path / "whole"
    invoke("plan", str(source), "--model", "gpt-4o", "--job-dir", str(whole))
    planned_whole = conversation_lines(whole)["long"]["items"]

    job = tmp_path / "run"
    policy = ["--model", "gpt-4o", "--policy", "oversize=keep_recent"]
    ran = invoke("run", str(source), *policy, "--job-dir", str(job))
    assert ran.exit_code == EXIT_OK, ran.output
    findings = [json.loads(line) for line in (job / "findings.jsonl").read_text().splitlines()]
    (trimmed,) = [f for f in findings if f["code"] == "context_trimmed"]
    with (job / "conversations.csv").open(encoding="utf-8", newline="") as table:
        rows = {row["source_id"]: row for row in csv.DictReader(table)}
    landed = int(rows["long"]["landed_items"])
    assert trimmed["count"] + landed == planned_whole
    assert int(rows["long"]["tokens"]) <= GPT_4O_LIMIT

    # what the server holds: the newest items, every call with its output
    server = ConversationStore.from_path(job / "server.db")
    try:
        items = server.all_items(rows["long"]["target_conversation_id"])
    finally:
        server.close()
    assert len(items) == landed
    calls = [item["call_id"] for item in items if item["type"] == "function_call"]
    outputs = [item["call_id"] for item in items if item["type"] == "function_call_output"]
    assert calls and sorted(calls) == sorted(outputs)
    for position, item in enumerate(items):
        if item["type"] == "function_call_output":
            earlier = [i["call_id"] for i in items[:position] if i["type"] == "function_call"]
            assert item["call_id"] in earlier
    assert "answer 59" in json.dumps(items[-1])
    assert count_items(items, model_spec("gpt-4o")).total <= GPT_4O_LIMIT

    # the target's own count agrees with the estimate
    verified = invoke("verify", str(job), "--count-tokens", "--model", "gpt-4o", "--json")
    assert verified.exit_code == EXIT_OK, verified.output
    report = json.loads(verified.stdout)
    tokens = report["tokens"]
    assert tokens["checked"] == 2 and tokens["exact_matches"] == 2
    assert tokens["exact_total"] == int(rows["long"]["tokens"]) + int(rows["short"]["tokens"])
    summary = json.loads((job / "summary.json").read_text())
    assert summary["tokens"]["trimmed"] == 1 and summary["tokens"]["over_limit"] == 0


def test_keep_recent_fails_a_conversation_whose_newest_item_alone_is_over(
    tmp_path: Path,
) -> None:
    source = write_threads(tmp_path / "one.jsonl", long_thread(1))
    args = ["--context-limit", "50", "--policy", "oversize=keep_recent", "--json"]
    result = invoke("plan", str(source), *args, "--job-dir", str(tmp_path / "p"))
    assert result.exit_code == EXIT_PARTIAL
    (error,) = json.loads(result.stdout)["errors"]
    assert error["code"] == "context_over_limit" and "newest item" in error["message"]


def message(tokens: int) -> dict[str, Any]:
    return {"type": "message", "tokens": tokens}


def call(call_id: str) -> dict[str, Any]:
    return {"type": "function_call", "call_id": call_id}


def output(call_id: str) -> dict[str, Any]:
    return {"type": "function_call_output", "call_id": call_id}


@pytest.mark.parametrize(
    ("items", "per_item", "limit", "start"),
    [
        # the newest three fit
        ([message(0)] * 5, [10, 10, 10, 10, 10], 32, 2),
        # a cut between a call and its output moves back before the call...
        ([message(0), call("a"), output("a"), message(0)], [50, 5, 5, 5], 16, 3),
        # ... or forward past the output: never inside the pair
        ([message(0), call("a"), output("a"), message(0)], [50, 5, 5, 5], 18, 1),
        # parallel calls: the cut waits until both outputs are dropped too
        (
            [message(0), call("a"), call("b"), output("a"), output("b"), message(0)],
            [50, 1, 1, 1, 1, 5],
            9,
            5,
        ),
        # nothing fits
        ([message(0), message(0)], [10, 10], 9, None),
    ],
)
def test_keep_recent_start_never_splits_a_pair(
    items: list[dict[str, Any]], per_item: list[int], limit: int, start: int | None
) -> None:
    count = TokenCount(per_item=per_item, reply_overhead=2)
    assert keep_recent_start(items, count, limit) == start
