"""The replayer's create step: an empty conversation, or one carrying its first batch, and the
lookup that finds a create whose answer was lost on targets that list conversations."""

from __future__ import annotations

import asyncio
import time

from migrate.errors import CallError, JobError
from migrate.limits import MAX_METADATA_PAIRS
from migrate.plan.model import ConversationPlan
from migrate.replay.core import _Budget
from migrate.replay.options import JOB_TOKEN_KEY
from migrate.replay.reconcile import Reconciler
from migrate.state.records import OpenIntent
from migrate.state.schema import IntentOutcome


class Creator(Reconciler):
    """Creates conversations on the target, exactly once where the target can be searched."""

    async def _create(
        self, seq: int, plan: ConversationPlan, budget: _Budget, *, then_append: bool
    ) -> tuple[str, int | None]:
        """Create the empty conversation; returns its id and, with `then_append`, the intent of
        its first append, written down with the create's outcome (None if a stop was asked
        for or there is nothing to append)."""
        first = _batch_ends(plan)[0] if then_append and plan.items else None
        while True:
            self._check_stop()
            intent = self.store.record_intent(seq, "create", start=0, count=0)
            self._crash_point("after_create_intent", seq)
            try:
                conversation_id = await self.target.create_conversation(plan.metadata)
            except CallError as error:
                self._raise_if_final(error, seq, plan, intent)
                orphan = error.kind == "ambiguous"
                self.store.record_attempt_failed(
                    seq, intent, "ambiguous" if orphan else "not_applied", orphan=orphan
                )
                budget.spend(error)
                await self._back_off(error, budget)
                continue
            self._crash_point("after_create_call", seq)
            append = self.store.record_created(
                seq,
                intent,
                conversation_id,
                next_intent=None if first is None or self.stop.is_set() else ("append", 0, first),
            )
            self._crash_point("after_create_outcome", seq)
            return conversation_id, append

    # --- creating with the first batch (Azure; `create_with_items` elsewhere) ----------------

    async def _create_findable(
        self, seq: int, plan: ConversationPlan, budget: _Budget, open_intents: list[OpenIntent]
    ) -> tuple[str, int]:
        """Create the conversation with its first batch; returns its id and the landed count.

        On a target that lists conversations the metadata carries a token unique to this job
        and conversation, so a create whose outcome is unknown (a dropped connection, a crash)
        is looked up in the target's list instead of being sent again blindly: nothing is left
        orphaned. Elsewhere (`create_with_items`) it is sent again and counted as a possible
        orphan holding items. The create answers with the conversation only, so the first
        batch's ids are recorded unread unless `read_item_ids` lists them at once.
        """
        findable = self.target.can_list_conversations
        metadata = self._findable_metadata(seq, plan) if findable else dict(plan.metadata)
        first = plan.items[: _batch_ends(plan)[0]] if plan.items else []
        lost = [intent for intent in open_intents if intent.kind == "create"]
        if lost and findable:
            since = min(intent.created_at for intent in lost)
            await self._until_settled(max(intent.created_at for intent in lost))
            found = await self._find_created(seq, metadata, since, budget)
            outcome: IntentOutcome = "reconciled" if found else "not_applied"
            self.store.resolve_intents([intent.id for intent in lost], outcome)
            if found is not None:
                self.store.record_conversation_found(seq, found)
                return found, await self._reconcile(seq, plan, found, budget, [])
        elif lost:
            self._count_lost_creates(seq, lost)
        while True:
            self._check_stop()
            since = time.time()
            intent = self.store.record_intent(seq, "create", start=0, count=len(first))
            self._crash_point("after_create_intent", seq)
            try:
                conversation_id = await self.target.create_conversation(
                    metadata, [planned.item for planned in first]
                )
            except CallError as error:
                self._raise_if_final(error, seq, plan, intent)
                if not findable:
                    orphan = error.kind == "ambiguous"
                    self.store.record_attempt_failed(
                        seq,
                        intent,
                        "ambiguous" if orphan else "not_applied",
                        orphan=orphan,
                        with_items=bool(first),
                    )
                    budget.spend(error)
                    await self._back_off(error, budget)
                    continue
                budget.spend(error)
                found = None
                if error.kind == "ambiguous":
                    await self._until_settled(since)
                    found = await self._find_created(seq, metadata, since, budget)
                self.store.record_attempt_failed(
                    seq, intent, "reconciled" if found else "not_applied"
                )
                if found is not None:
                    self.store.record_conversation_found(seq, found)
                    return found, await self._reconcile(seq, plan, found, budget, [])
                await self._back_off(error, budget)
                continue
            self._crash_point("after_create_call", seq)
            if not first or self.options.read_item_ids:
                self.store.record_created(seq, intent, conversation_id)
                self._crash_point("after_create_outcome", seq)
                if not first:
                    return conversation_id, 0
                return conversation_id, await self._read_back(seq, plan, conversation_id, budget)
            self.store.record_created_with_items(
                seq,
                intent,
                conversation_id,
                unread=[(position, planned.source_id) for position, planned in enumerate(first)],
                source_conversation_id=plan.source_id,
                migrated=len(first) == len(plan.items),
            )
            self._crash_point("after_create_outcome", seq)
            self._items_landed(len(first))
            return conversation_id, len(first)

    def _count_lost_creates(self, seq: int, open_intents: list[OpenIntent]) -> None:
        """Creates whose outcome was never recorded, on a target that cannot list: each may
        have made a conversation whose id we will never learn (holding the items it carried)."""
        lost = [intent for intent in open_intents if intent.kind == "create"]
        for with_items in (False, True):
            ids = [intent.id for intent in lost if (intent.count > 0) == with_items]
            if ids:
                self.store.record_orphans(seq, ids, len(ids), with_items=with_items)

    async def _until_settled(self, since: float) -> None:
        """Wait until a create sent at `since` can no longer be in flight: looked up sooner, a
        conversation the target is still creating would not be found, and the create would be
        sent again (a duplicate). Rare enough (ambiguous creates) to hold the slot meanwhile."""
        left = since + self.settle - time.time()
        if left > 0:
            await asyncio.sleep(left)

    def _findable_metadata(self, seq: int, plan: ConversationPlan) -> dict[str, str]:
        """The plan's metadata with this conversation's job token, when a pair is free.

        With all 16 pairs taken, the plan's metadata alone identifies the conversation among
        those created since the intent (`migrate.replay.azure.matches`).
        """
        metadata = dict(plan.metadata)
        if len(metadata) < MAX_METADATA_PAIRS and JOB_TOKEN_KEY not in metadata:
            if self._job_id is None:
                self._job_id = self.store.job().job_id
            metadata[JOB_TOKEN_KEY] = f"{self._job_id}/{seq}"
        return metadata

    async def _find_created(
        self, seq: int, metadata: dict[str, str], since: float, budget: _Budget
    ) -> str | None:
        """Look for the conversation a create may have made (listing is safe to repeat)."""
        while True:
            pages = 0

            def count_page() -> None:
                nonlocal pages
                pages += 1

            try:
                found = await self.target.find_conversation(
                    metadata, since=since, on_page=count_page
                )
            except CallError as error:
                if error.kind == "fatal":
                    raise JobError(f"the target refuses every call: {error.message}") from error
                self.store.record_reads(seq, calls=max(pages - 1, 0), reconciled=False)
                self.store.record_attempt_failed(seq, None, "not_applied")
                budget.spend(error)
                await self._back_off(error, budget)
                continue
            self.store.record_reads(seq, calls=pages, reconciled=True)
            return found


def _batch_ends(plan: ConversationPlan) -> list[int]:
    ends: list[int] = []
    total = 0
    for size in plan.batch_sizes:
        total += size
        ends.append(total)
    return ends
