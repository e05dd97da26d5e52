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
from migrate.errors import CallError
from migrate.jobs.bounded import for_each
from migrate.jobs.directory import clean_target, open_job
from migrate.jobs.models import (
    ConversationCheck,
    CountCallback,
    ItemProblem,
    JobRef,
    VerifyReport,
)
from migrate.jobs.unread import read_unread_ids
from migrate.plan.model import ConversationPlan
from migrate.replay.target import (
    Target,
    classify,
    item_difference,
    open_target,
    with_retries,
)
from migrate.state.records import ConversationRow
from migrate.state.store import StateStore

logger = logging.getLogger(__name__)


def verify_job(
    ref: JobRef,
    *,
    concurrency: int = 8,
    count_tokens: str | None = None,
    progress: CountCallback | None = None,
) -> VerifyReport:
    """Read every migrated conversation back and compare it item by item with its plan.

    With `count_tokens` (a model name), also ask the target for each conversation's input
    tokens (`POST /responses/input_tokens`) and compare them with the estimate. `progress` is
    called with (checked, to check) after each conversation.
    """
    token_model = None if count_tokens is None else model_spec(count_tokens)
    store = open_job(ref)
    try:
        target_config = clean_target(store)
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

                async def check(row_and_plan: tuple[ConversationRow, ConversationPlan]) -> None:
                    row, plan = row_and_plan
                    result = await _check_conversation(store, target, row, plan)
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


async def _check_conversation(
    store: StateStore, target: Target, row: ConversationRow, plan: ConversationPlan
) -> ConversationCheck | None:
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
        return check
    if plan.append is not None:
        # Only the items this job appended are its own to compare.
        listed = listed[plan.append.position :]
    check.found = len(listed)
    check.problems = compare_with_plan(plan, listed, read_unread_ids(store, row.seq, plan, listed))
    return check if check.problems else None


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
        except openai.APIError as exc:
            raise classify(exc) from exc

    check.add(row.source_id, conversation_id, estimate, await with_retries(count))


def compare_with_plan(
    plan: ConversationPlan, listed: list[dict[str, Any]], recorded: dict[int, str]
) -> list[ItemProblem]:
    """Every difference between the items a conversation holds and its plan.

    Items are matched by the ids the job recorded when they landed; content is compared after
    the target's normalisation (`migrate.target.item_difference`).
    """
    problems: list[ItemProblem] = []
    index_of = {str(item.get("id")): index for index, item in enumerate(listed)}
    expected_ids = {item_id: position for position, item_id in recorded.items()}
    found_positions: list[int] = []
    for position, planned in enumerate(plan.items):
        item_id = recorded.get(position)
        if item_id is None or item_id not in index_of:
            problems.append(
                ItemProblem(
                    kind="missing",
                    position=position,
                    item_id=item_id,
                    detail=f"planned item {position}"
                    + (f" (source item {planned.source_id})" if planned.source_id else "")
                    + " is not there",
                )
            )
            continue
        found_positions.append(index_of[item_id])
        difference = item_difference(planned.item, listed[index_of[item_id]])
        if difference is not None:
            problems.append(
                ItemProblem(kind="changed", position=position, item_id=item_id, detail=difference)
            )
    if found_positions != sorted(found_positions):
        problems.append(
            ItemProblem(kind="reordered", detail="the items are not in the planned order")
        )
    for index, item in enumerate(listed):
        listed_id = str(item.get("id"))
        if listed_id in expected_ids:
            continue
        copies = [
            position
            for position, planned in enumerate(plan.items)
            if item_difference(planned.item, item) is None
        ]
        if copies:
            problems.append(
                ItemProblem(
                    kind="duplicated",
                    position=copies[0],
                    item_id=listed_id,
                    detail=f"item {index} repeats planned item {copies[0]}",
                )
            )
        else:
            problems.append(
                ItemProblem(
                    kind="extra",
                    item_id=listed_id,
                    detail=f"item {index} ({item.get('type')}) is not in the plan",
                )
            )
    return problems
