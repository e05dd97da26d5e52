"""Responses histories end to end: every item type, and a 300-item chain through faults and kills.

The chain is exported from the local server's stored responses (`--responses DIR`) with
`export-responses`, then migrated with `run` into the local Conversations target.
"""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest

from adapters.responses.chains import export_chains, history_file
from migrate.config import build_job_config
from migrate.jobs.models import JobRef
from migrate.jobs.plan import plan_job
from migrate.jobs.run import run_job
from migrate.jobs.status import job_status
from migrate.jobs.verify import verify_job
from migrate.server.options import FaultKind
from migrate.server.testing import ServerFactory
from tests.replay.helpers import assert_exactly_once, run_config, server_contents
from tests.replay.test_replay_kill import start, wait_until_started
from tests.responses_chain import chain_context, write_chain

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "responses" / "histories.jsonl"

EXPECTED_FINDINGS = {
    # One per hosted-tool item: each of the 21 hosted types once, `web_search_call` twice.
    "hosted_tool_as_text": 22,
    "reasoning_dropped": 2,
    "compaction_dropped": 1,
    "compaction_trigger_dropped": 1,
    "item_reference_unresolved": 1,
    "inline_image_not_sent": 2,
    "logprobs_dropped": 1,
    "phase_dropped": 1,
    "refusal_as_text": 1,
    "tool_output_part_as_text": 1,
    # The user message and its copy through `item_reference`: twice each.
    "image_not_returned": 2,
    "unresolved_image_as_text": 2,
    "file_data_not_returned": 2,
}


def test_every_item_type_round_trips_with_each_lossy_rule_counted(tmp_path: Path) -> None:
    config = run_config(SAMPLE, tmp_path / "job")
    planned = plan_job(config.job, tmp_path / "plan")
    assert planned.conversations.planned == 3 and planned.conversations.failed == 0
    assert planned.findings == EXPECTED_FINDINGS

    summary = run_job(config)
    assert summary.exit_code == 0, summary
    assert_exactly_once(tmp_path / "job", migrated=3)
    report = verify_job(JobRef(job_dir=tmp_path / "job"))
    assert (report.checked, report.differing) == (3, 0)

    contents = server_contents(tmp_path / "job")
    every = next(items for items in contents.by_conversation.values() if len(items) > 30)
    answer = every[-1]
    # Annotations of every kind landed with the assistant's text.
    kinds = [a["type"] for a in answer["content"][0]["annotations"]]
    assert kinds == ["url_citation", "file_citation", "container_file_citation", "file_path"]
    assert every[0]["role"] == "developer"  # the instructions
    calls = [item for item in every if item["type"] in ("function_call", "custom_tool_call")]
    assert [c["call_id"] for c in calls] == ["call_fn1", "call_fn2", "call_ct1"]
    texts = "\n".join(part.get("text", "") for item in every for part in item.get("content") or [])
    for kept in ("Q1 revenue ACME 2025", "print(1.2 + 1.5)", "Total revenue: $1.2M", "ls"):
        assert kept in texts


def test_same_project_policies_keep_provider_items_as_they_are(tmp_path: Path) -> None:
    job = build_job_config(
        source=str(SAMPLE),
        job_file=None,
        policy_overrides={"provider_items": "keep", "reasoning": "keep"},
    )
    planned = plan_job(job, tmp_path / "plan", write_plan=True)
    assert planned.conversations.planned == 3
    for code in (
        "hosted_tool_as_text",
        "compaction_dropped",
        "item_reference_unresolved",
        "reasoning_dropped",
    ):
        assert code not in planned.findings
    sent = [
        item
        for line in (tmp_path / "plan" / "plan.jsonl").read_text().splitlines()
        for item in json.loads(line)["body"].get("items", [])
    ]
    kept = {item["id"]: item for item in sent if "id" in item}
    source = json.loads(SAMPLE.read_text().splitlines()[0])["items"]
    originals = {item["id"]: item for item in source if "id" in item}
    for item_id in ("ws_1", "mcp_1", "cmp_1", "rs_1", "rs_2", "ig_1"):
        assert kept[item_id] == originals[item_id]
    assert kept["msg_elsewhere"] == {"type": "item_reference", "id": "msg_elsewhere"}
    # Messages and function calls never carry ids or status.
    assert all(
        "id" not in item and "status" not in item
        for item in sent
        if item["type"] in ("message", "function_call", "function_call_output")
    )


def export(base_url: str, ids: list[str], out: Path) -> None:
    client = openai.OpenAI(api_key="test", base_url=base_url, max_retries=0)
    summary = export_chains(client, ids, out)
    assert summary.written == 1 and summary.input_item_pages == 3


def landed_in_order(job_dir: Path, expected: list[dict[str, Any]]) -> None:
    """The one conversation holds the chain's items, each once, in the chain's order."""
    contents = server_contents(job_dir)
    # Besides it, only empty possible orphans (an ambiguous create) may exist.
    (items,) = [found for found in contents.by_conversation.values() if found]
    # A leading developer message from the leaf's instructions, then the 300 items.
    assert len(items) == 301
    assert items[0]["role"] == "developer"
    assert [_fingerprint(i) for i in items[1:]] == [_fingerprint(i) for i in expected]


def _fingerprint(item: dict[str, Any]) -> str:
    if item["type"] == "message":
        return f"{item['role']}:{item['content'][0]['text']}"
    return f"{item['type']}:{item['call_id']}"


FAULTS: list[FaultKind] = [
    "error_before",
    "error_after_commit",
    "drop_after_commit",
    "stall_after_commit",
    "burst_503",
]


@pytest.fixture
def chain(tmp_path: Path) -> tuple[Path, list[str]]:
    stored = tmp_path / "stored"
    return stored, write_chain(stored, turns=150)


@pytest.mark.parametrize("fault", FAULTS)
def test_a_300_item_chain_lands_whole_through_each_fault(
    fault: FaultKind, tmp_path: Path, chain: tuple[Path, list[str]]
) -> None:
    stored, ids = chain
    out = tmp_path / "histories"
    with ServerFactory(tmp_path) as servers:
        export(servers(responses_dir=stored), ids, out)
    script = [fault, "none", fault, "none", "none", fault, fault, "none", fault]
    config = run_config(
        out,
        tmp_path / "job",
        concurrency=1,
        timeout=0.5,
        # One conversation takes every fault of the script (and 503 bursts hit its reads
        # too): the budget is not what this test is about.
        retry_budget=40,
        server={"faults": {"script": script, "stall_seconds": 5, "burst_length": 2}},
    )
    summary = run_job(config)
    assert summary.exit_code == 0, summary
    assert summary.retries >= 4
    assert_exactly_once(tmp_path / "job", migrated=1)
    landed_in_order(tmp_path / "job", chain_context(stored, ids[-1]))
    id_map_names_the_chain(tmp_path / "job", ids, chain_context(stored, ids[-1]))


def id_map_names_the_chain(job_dir: Path, ids: list[str], expected: list[dict[str, Any]]) -> None:
    """The report maps the chain's first and leaf response ids and every source item id."""
    with (job_dir / "conversations.csv").open(encoding="utf-8", newline="") as table:
        (row,) = list(csv.DictReader(table))
    assert (row["source_id"], row["first_response_id"], row["leaf_response_id"]) == (
        ids[-1],
        ids[0],
        ids[-1],
    )
    with (job_dir / "items.csv").open(encoding="utf-8", newline="") as table:
        items = list(csv.DictReader(table))
    mapped = [item["source_item_id"] for item in items if item["source_item_id"]]
    assert mapped == [item["id"] for item in expected]
    assert all(
        item["target_item_id"] and item["target_conversation_id"] == row["target_conversation_id"]
        for item in items
    )


@pytest.mark.slow
def test_export_and_run_survive_kill_9_then_resume(
    tmp_path: Path, chain: tuple[Path, list[str]]
) -> None:
    stored, ids = chain
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("\n".join(ids) + "\n", encoding="utf-8")
    out = tmp_path / "histories"
    log = tmp_path / "migrate.log"
    chance = random.Random(20261201)
    with ServerFactory(tmp_path) as servers:
        base_url = servers(responses_dir=stored, latency_ms=10)
        export_args = [
            "export-responses",
            "--base-url",
            base_url,
            "--response-ids-file",
            str(ids_file),
            "--out",
            str(out),
        ]
        env_key = {"OPENAI_API_KEY": "test"}
        process = start_with(export_args, log, env_key)
        _wait_for(lambda: len(list((out / ".responses").glob("*.json"))) >= 40, process)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        assert not history_file(out, ids[-1]).exists()
        finished = start_with(export_args, log, env_key)
        assert finished.wait(timeout=120) == 0, log.read_text(errors="replace")
    assert "1 chains: 1 written (300 items, 3 input_items pages)" in log.read_text()

    job_dir = tmp_path / "job"
    killed = 0
    for round_number in range(4):
        if round_number == 0:
            arguments = ["run", str(out), "--job-dir", str(job_dir)]
        else:
            arguments = ["resume", str(job_dir)]
        offset = log.stat().st_size
        process = start([*arguments, "--latency-ms", "40", "--settle", "0.2"], log)
        wait_until_started(log, offset, process)
        time.sleep(chance.uniform(0.0, 0.5))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            killed += 1
        process.wait(timeout=30)
    assert killed >= 2, log.read_text(errors="replace")
    final = start(["resume", str(job_dir), "--settle", "0.2"], log)
    assert final.wait(timeout=120) == 0, log.read_text(errors="replace")
    assert job_status(JobRef(job_dir=job_dir)).items.landed == 301
    assert_exactly_once(job_dir, migrated=1)
    landed_in_order(job_dir, chain_context(stored, ids[-1]))


def start_with(arguments: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "migrate", *arguments],
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
        )


def _wait_for(condition: Callable[[], bool], process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60.0
    while process.poll() is None and time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError("the export finished or stalled before it could be interrupted")
