"""Rollback: delete what a job created in the target, bounded like verify."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path

from migrate.errors import CallError
from migrate.jobs.bounded import for_each
from migrate.jobs.directory import clean_target, open_job
from migrate.jobs.models import CountCallback, JobRef, RollbackResult
from migrate.jobs.status import output_dir
from migrate.replay.failures import with_retries
from migrate.replay.target import TargetConfig, describe_target, open_target
from migrate.state.records import ConversationRow

logger = logging.getLogger(__name__)


def rollback_preview(ref: JobRef) -> tuple[int, str]:
    """How many conversations a rollback would delete, and from which target."""
    store = open_job(ref)
    try:
        return store.created_count(), describe_target(
            TargetConfig.model_validate(store.job().target)
        )
    finally:
        store.close()


def rollback_job(
    ref: JobRef,
    *,
    concurrency: int = 8,
    out: Path | None = None,
    progress: CountCallback | None = None,
) -> RollbackResult:
    """Delete every conversation the job created; record each deletion (and `rollback.jsonl`).

    Conversations the job only appended to (`migrate sync`) were created by an earlier job:
    they are kept, with the appended items.

    The log goes to `out`, by default the job directory. `progress` is called with
    (done, to delete) after each conversation.
    """
    log_path = output_dir(ref, out, "the rollback log") / "rollback.jsonl"
    store = open_job(ref)
    try:
        target_config = clean_target(store)

        async def delete_all() -> RollbackResult:
            async with open_target(target_config, job_dir=ref.job_dir) as target:
                result = RollbackResult(
                    job_dir=None if ref.job_dir is None else str(ref.job_dir),
                    target=target.description,
                    log=str(log_path),
                )
                total = store.created_count()
                finished = [0]
                with log_path.open("a", encoding="utf-8") as log:

                    async def delete(row: ConversationRow) -> None:
                        conversation_id = row.conversation_id
                        assert conversation_id is not None
                        intent = store.record_intent(row.seq, "delete", start=0, count=0)
                        outcome = "deleted"
                        try:
                            await with_retries(lambda: target.delete_conversation(conversation_id))
                        except CallError as error:
                            if error.kind != "not_found":
                                store.resolve_intents([intent], "rejected")
                                result.failed.append(f"{conversation_id}: {error.message}")
                                outcome = "failed"
                            else:
                                outcome = "already_gone"
                        if outcome != "failed":
                            store.record_deleted(row.seq, intent)
                        if outcome == "deleted":
                            result.deleted += 1
                        elif outcome == "already_gone":
                            result.already_gone += 1
                        entry = {
                            "source_id": row.source_id,
                            "target_conversation_id": conversation_id,
                            "outcome": outcome,
                            "at": time.time(),
                        }
                        log.write(json.dumps(entry) + "\n")
                        finished[0] += 1
                        if progress is not None:
                            progress(finished[0], max(total, finished[0]))

                    created = (
                        row
                        for row, _ in store.iter_conversations()
                        if row.conversation_id is not None
                        and row.deleted_at is None
                        and row.base_items is None
                    )
                    await for_each(created, delete, concurrency=concurrency)
                totals = store.totals()
                result.possible_orphans = totals.possible_orphans
                result.possible_orphans_with_items = totals.orphans_with_items
                return result

        result = asyncio.run(delete_all())
        if not result.failed:
            store.update_job(state="rolled_back")
        return result
    finally:
        store.close()
