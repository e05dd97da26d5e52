"""Each fault the target can throw at a write: no item is lost and none lands twice."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from migrate.jobs.run import run_job
from migrate.limits import MAX_INPUT_TEXT_CHARS
from migrate.replay.replayer import CrashPoint
from migrate.replay.target import TargetConfig
from migrate.server.options import FaultKind
from migrate.server.testing import AdminClient, ServerFactory
from tests.replay.helpers import assert_exactly_once, run_config

FAULTS: list[FaultKind] = [
    "error_before",
    "error_after_commit",
    "drop_after_commit",
    "stall_after_commit",
    "burst_503",
]


@pytest.mark.parametrize("fault", FAULTS)
def test_every_fault_kind_leaves_each_conversation_exactly_once(
    fault: FaultKind, tmp_path: Path, source_file: Callable[..., Path]
) -> None:
    source = source_file(conversations=4, messages=30)
    # One writer, so the script hits known writes: the first create, a first batch, a second
    # batch, and twice in a row (the resend after a fault).
    script = [fault, "none", fault, "none", "none", fault, fault]
    config = run_config(
        source,
        tmp_path / "job",
        concurrency=1,
        timeout=0.5,
        server={"faults": {"script": script, "stall_seconds": 5, "burst_length": 2}},
    )
    summary = run_job(config)
    assert summary.exit_code == 0, summary
    assert summary.retries >= 4
    if fault != "error_before":
        # A write that may have happened is never resent blindly.
        assert summary.reconciliations >= 2
    assert_exactly_once(tmp_path / "job", migrated=4)


def test_an_ambiguous_create_is_counted_as_a_possible_orphan(
    tmp_path: Path, source_file: Callable[..., Path]
) -> None:
    source = source_file(conversations=2, messages=4)
    config = run_config(
        source,
        tmp_path / "job",
        concurrency=1,
        server={"faults": {"script": ["drop_after_commit"]}},
    )
    summary = run_job(config)
    assert summary.possible_orphans == 1
    assert_exactly_once(tmp_path / "job", migrated=2)
    lines = (tmp_path / "job" / "summary.json").read_text(encoding="utf-8")
    assert '"possible_orphans": 1' in lines


def test_rate_limits_are_honoured_without_a_storm_of_429s(
    tmp_path: Path, source_file: Callable[..., Path], local_server: ServerFactory
) -> None:
    base_url = local_server(rpm=600)
    source = source_file(conversations=6, messages=4)
    target = TargetConfig(kind="openai", base_url=base_url, timeout=10)
    with AdminClient(base_url) as admin:
        spent: list[int] = []

        def spend_the_bucket(point: CrashPoint, seq: int) -> None:
            # The job's first write meets an exhausted limit, however slowly the job started.
            if point == "after_create_intent" and not spent:
                spent.append(seq)
                admin.drain(0)

        config = run_config(source, tmp_path / "job", concurrency=4, target=target)
        summary = run_job(config, crash_hook=spend_the_bucket)
        assert summary.exit_code == 0
        rate_limited = admin.stats()["rate_limited"]
    assert rate_limited >= 1
    assert summary.retries >= 1
    # The limiter learns the server's bucket from the first answers and paces itself.
    assert rate_limited <= 4 + 2
    assert summary.items.landed == summary.items.planned


def test_a_rejected_batch_fails_its_conversation_and_the_job_goes_on(
    tmp_path: Path, source_file: Callable[..., Path]
) -> None:
    source = source_file(conversations=3, messages=25, tools=False)
    lines = source.read_text(encoding="utf-8").splitlines()
    # A policy that allows longer texts than the API does: the target refuses the second batch.
    huge = "x" * (MAX_INPUT_TEXT_CHARS + 1)
    lines[1] = lines[1].replace('"conv 1 says 22"', f'"{huge}"')
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = run_config(source, tmp_path / "job")
    policy = config.job.policy.model_copy(update={"max_text_chars": 2 * MAX_INPUT_TEXT_CHARS})
    config = config.model_copy(update={"job": config.job.model_copy(update={"policy": policy})})
    summary = run_job(config)
    assert summary.conversations.migrated == 2
    assert summary.conversations.failed == 1
    assert summary.exit_code == 1
    assert summary.retries == 0  # a 400 is not retried
    text = (tmp_path / "job" / "errors.jsonl").read_text(encoding="utf-8")
    errors = [json.loads(line) for line in text.splitlines()]
    assert [error["source_id"] for error in errors] == ["conv-0001"]
    assert errors[0]["code"].startswith("api_")
    assert "maximum length 10485760" in errors[0]["message"]
    # The first batch landed before the refusal; the report says where the conversation is.
    assert errors[0]["target_conversation_id"].startswith("conv_")
