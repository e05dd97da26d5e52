"""Verify: read every migrated conversation back and compare it with its plan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import openai

from migrate.context.count import count_items
from migrate.context.exact import TokenCheck, exact_input_tokens
from migrate.context.models import ModelSpec, model_spec
from migrate.errors import CallError, ConfigError, ConversationError
from migrate.jobs.bounded import for_each
from migrate.jobs.directory import clean_target, open_job
from migrate.jobs.models import (
    ConversationCheck,
    CountCallback,
    ItemProblem,
    JobRef,
    VerifyReport,
)
from migrate.plan.model import ConversationPlan
from migrate.replay.comparison import Comparison, compare
from migrate.replay.failures import UNWRAPPED_ERRORS, classify, with_retries
from migrate.replay.options import ReplayOptions
from migrate.replay.replayer import Replayer
from migrate.replay.target import Target, open_target
from migrate.replay.unread import read_unread_ids
from migrate.replay.workers import forget_gone_workers
from migrate.state.records import ConversationRow
from migrate.state.store import StateStore

logger = logging.getLogger(__name__)


def verify_job(
    ref: JobRef,
    *,
    concurrency: int = 8,
    count_tokens: str | None = None,
    progress: CountCallback | None = None,
    repair: bool = False,
) -> VerifyReport:
    """Read every migrated conversation back and compare it item by item with its plan.

    With `count_tokens` (a model name), also ask the target for each conversation's input
    tokens (`POST /responses/input_tokens`) and compare them with the estimate. `progress` is
    called with (checked, to check) after each conversation. With `repair`, a conversation
    whose only differences are what late writes leave (surplus copies of planned items,
    planned items missing at the end) is audited as `run` audits (`Replayer.audit`: surplus
    deleted, the rest appended, each write journaled) and then checked again; one that holds
    anything else is left as it is.
    """
    token_model = None if count_tokens is None else model_spec(count_tokens)
    store = open_job(ref)
    try:
        target_config = clean_target(store)
        if repair:
            _refuse_while_running(store)
        replay = ReplayOptions.model_validate(store.job().config.get("replay") or {})
        to_check = store.totals().migrated
        if progress is not None:
            progress(0, to_check)

        async def check_all() -> VerifyReport:
            async with open_target(target_config, job_dir=ref.job_dir) as target:
                report = VerifyReport(
                    job_dir=None if ref.job_dir is None else str(ref.job_dir),
                    target=target.description,
                    tokens=None if count_tokens is None else TokenCheck(model=count_tokens),
                )

                replayer = Replayer(store, target, options=replay, parking=False)

                async def check(row_and_plan: tuple[ConversationRow, ConversationPlan]) -> None:
                    row, plan = row_and_plan
                    result, comparison = await _check_conversation(store, target, row, plan)
                    if repair and comparison is not None and _repairable(comparison):
                        try:
                            repairs = await replayer.audit(row.seq, plan)
                        except ConversationError as error:
                            logger.warning("cannot repair %s: %s", row.source_id, error.message)
                        else:
                            report.repaired += repairs
                            report.repaired_conversations += 1 if repairs else 0
                        result, _ = await _check_conversation(store, target, row, plan)
                    # An appending plan holds only the new items, the target the whole thread.
                    if (
                        report.tokens is not None
                        and token_model is not None
                        and plan.append is None
                    ):
                        await _check_tokens(target, row, plan, report.tokens, token_model)
                    report.checked += 1
                    if progress is not None:
                        progress(report.checked, max(to_check, report.checked))
                    if result is None:
                        report.matching += 1
                    else:
                        report.differing += 1
                        report.conversations.append(result)

                def migrated() -> Iterator[tuple[ConversationRow, ConversationPlan]]:
                    for row, plan in store.iter_conversations(with_plans=True):
                        if row.status != "migrated" or row.deleted_at is not None:
                            if row.status in ("pending", "in_progress"):
                                report.not_migrated += 1
                            continue
                        assert plan is not None
                        yield row, plan

                await for_each(migrated(), check, concurrency=concurrency)
                report.conversations.sort(key=lambda c: c.location)
                return report

        return asyncio.run(check_all())
    finally:
        store.close()


def _repairable(comparison: Comparison) -> bool:
    """Differences a late write of ours explains, and nothing else."""
    return not comparison.diverged and not comparison.exact


def _refuse_while_running(store: StateStore) -> None:
    live = forget_gone_workers(store)
    if live:
        raise ConfigError(
            f"{len(live)} worker(s) of this job are still alive; --repair writes into the "
            "job's conversations",
            hint="repair once the job has stopped (a running job audits its own conversations)",
        )


async def _check_conversation(
    store: StateStore, target: Target, row: ConversationRow, plan: ConversationPlan
) -> tuple[ConversationCheck | None, Comparison | None]:
    """The conversation's problems (None: it matches), and the comparison they come from
    (None: it could not be read)."""
    conversation_id = row.conversation_id
    assert conversation_id is not None
    check = ConversationCheck(
        source_id=row.source_id,
        location=row.location,
        target_conversation_id=conversation_id,
        planned=len(plan.items),
        found=0,
        problems=[],
    )
    try:
        listed = await with_retries(lambda: target.list_items(conversation_id))
    except CallError as error:
        check.problems.append(
            ItemProblem(kind="missing", detail=f"cannot read the conversation: {error.message}")
        )
        return check, None
    own = listed if plan.append is None else listed[plan.append.position :]
    recorded = read_unread_ids(store, row.seq, plan, own)
    comparison = compare(plan, listed, recorded)
    # Only the items this job appended are its own (after an earlier job's, for a sync).
    check.found = comparison.listed
    check.problems = problems_of(plan, comparison, recorded)
    return (check if check.problems else None), comparison


async def _check_tokens(
    target: Target,
    row: ConversationRow,
    plan: ConversationPlan,
    check: TokenCheck,
    model: ModelSpec,
) -> None:
    conversation_id = row.conversation_id
    assert conversation_id is not None
    estimate = count_items([planned.item for planned in plan.items], model).total

    async def count() -> int:
        try:
            return await exact_input_tokens(
                target.client, conversation_id=conversation_id, model=check.model
            )
        except (openai.APIError, *UNWRAPPED_ERRORS) as exc:
            raise classify(exc) from exc

    check.add(row.source_id, conversation_id, estimate, await with_retries(count))


def compare_with_plan(
    plan: ConversationPlan, listed: list[dict[str, Any]], recorded: dict[int, str]
) -> list[ItemProblem]:
    """Every difference between the items a conversation holds (all of them, oldest first)
    and its plan, from the one comparison of target and plan (`migrate.replay.comparison`)."""
    return problems_of(plan, compare(plan, listed, recorded), recorded)


def problems_of(
    plan: ConversationPlan, comparison: Comparison, recorded: dict[int, str]
) -> list[ItemProblem]:
    """`verify`'s problems from a comparison: missing items first, by position, then what
    else differs."""
    found = {matched.position for matched in comparison.matched}
    missing = [
        ItemProblem(
            kind="missing",
            position=position,
            detail=f"planned item {position}"
            + (f" (source item {planned.source_id})" if planned.source_id else "")
            + " is not there",
        )
        for position, planned in enumerate(plan.items)
        if position not in recorded and position not in found
    ]
    problems = [
        ItemProblem(
            kind="missing" if d.kind in ("missing", "short") else d.kind,
            position=d.position,
            item_id=d.item_id,
            detail=d.detail,
        )
        for d in comparison.foreign
    ]
    problems += [
        ItemProblem(
            kind="duplicated",
            position=copy.copies,
            item_id=copy.item_id,
            detail=f"item {copy.index} repeats planned item {copy.copies}",
        )
        for copy in comparison.surplus
    ]
    return sorted(
        missing + problems,
        key=lambda p: (p.kind != "missing", p.position or 0 if p.kind == "missing" else 0),
    )
