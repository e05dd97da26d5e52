"""Sync, lookup, subsets and `resume --retry-failed` through the command line."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from click.testing import CliRunner

from migrate.cli import main
from migrate.errors import EXIT_OK, EXIT_PARTIAL, EXIT_USAGE
from migrate.jobs.models import JobRef, RunConfig
from migrate.jobs.run import run_job
from migrate.jobs.status import job_status
from migrate.replay.replayer import CrashPoint, SimulatedCrash
from migrate.server.store import ConversationStore
from tests.replay.helpers import run_config, server_contents, write_source


def test_limit_and_ids_take_a_subset_and_sync_brings_the_rest(tmp_path: Path) -> None:
    source = write_source(tmp_path / "source.jsonl", conversations=10, messages=3)
    job_dir = tmp_path / "job"
    ids = tmp_path / "ids.txt"
    ids.write_text("# a comment\nconv-0007\n\nconv-0002\n", encoding="utf-8")
    runner = CliRunner()
    ran = runner.invoke(
        main, ["run", str(source), "--job-dir", str(job_dir), "--ids", str(ids), "--limit", "1"]
    )
    assert ran.exit_code == EXIT_OK, ran.output
    assert "1 total: 1 migrated" in ran.stdout
    state = f"sqlite:///{job_dir / 'state.db'}"
    found = runner.invoke(main, ["lookup", "--state", state, "conv-0002", "--json"])
    assert found.exit_code == EXIT_OK, found.output
    row = json.loads(found.stdout)
    assert row["source_id"] == "conv-0002"
    assert row["target_conversation_id"].startswith("conv_") and "conversation_id" not in row
    missing = runner.invoke(main, ["lookup", "--state", state, "conv-0007"])
    assert missing.exit_code == EXIT_PARTIAL
    assert "not found: conv-0007" in missing.stderr

    synced = runner.invoke(main, ["sync", str(source), "--job-dir", str(job_dir), "--limit", "5"])
    assert synced.exit_code == EXIT_OK, synced.output
    assert "5 total: 4 migrated, 0 failed, 1 skipped (1 up to date, 0 diverged)" in synced.stdout
    rest = runner.invoke(main, ["sync", str(source), "--job-dir", str(job_dir)])
    assert "10 total: 5 migrated, 0 failed, 5 skipped (5 up to date, 0 diverged)" in rest.stdout
    lookup = runner.invoke(
        main, ["lookup", "--state", state, *[f"conv-{n:04d}" for n in range(10)]]
    )
    assert lookup.exit_code == EXIT_OK, lookup.output
    assert len(lookup.stdout.splitlines()) == 10
    contents = server_contents(job_dir)
    assert contents.conversations == 10
    csv_path = tmp_path / "ledger.csv"
    report = runner.invoke(main, ["report", str(job_dir), "--ledger-csv", str(csv_path)])
    assert report.exit_code == EXIT_OK, report.output
    assert len(csv_path.read_text(encoding="utf-8").splitlines()) == 11


def test_where_and_since_are_refused_on_files(tmp_path: Path) -> None:
    source = write_source(tmp_path / "source.jsonl", conversations=1, messages=2)
    result = CliRunner().invoke(main, ["plan", str(source), "--since", "2025-01-01"])
    assert result.exit_code == EXIT_USAGE
    assert "apply to SQL sources" in result.stderr


def test_retry_failed_takes_a_conversation_again_once_its_cause_is_fixed(
    tmp_path: Path,
) -> None:
    source = write_source(tmp_path / "source.jsonl", conversations=3, messages=4, tools=False)
    job_dir = tmp_path / "job"
    config: RunConfig = run_config(source, job_dir)

    def stop_after_create(point: CrashPoint, seq: int) -> None:
        if point == "after_create_outcome" and seq == 1:
            raise SimulatedCrash()

    with contextlib.suppress(SimulatedCrash):
        run_job(
            config.model_copy(
                update={"replay": config.replay.model_copy(update={"concurrency": 1})}
            ),
            crash_hook=stop_after_create,
        )
    # Someone writes into the new conversation before the job is resumed.
    store = ConversationStore.from_path(job_dir / "server.db")
    (conversation,) = [s for s in store.summaries(include_deleted=False) if s.item_count == 0]
    added = store.add_items(
        conversation.id,
        [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "x"}]}],
    )
    store.close()
    assert added is not None
    runner = CliRunner()
    resumed = runner.invoke(main, ["resume", str(job_dir)])
    assert resumed.exit_code == EXIT_PARTIAL, resumed.output
    errors = [json.loads(line) for line in (job_dir / "errors.jsonl").read_text().splitlines()]
    assert [e["code"] for e in errors] == ["target_diverged"]
    # A plain resume leaves a conversation that failed for a lasting reason alone.
    assert runner.invoke(main, ["resume", str(job_dir)]).exit_code == EXIT_PARTIAL
    store = ConversationStore.from_path(job_dir / "server.db")
    store.delete_item(conversation.id, added[0].id)
    store.close()
    retried = runner.invoke(main, ["resume", str(job_dir), "--retry-failed"])
    assert retried.exit_code == EXIT_OK, retried.output
    summary = job_status(JobRef(job_dir=job_dir))
    assert summary.conversations.migrated == 3
    assert summary.items.landed == summary.items.planned
