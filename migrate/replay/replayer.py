"""The replayer: lands each planned conversation in the target exactly once.

The protocol, per conversation (strictly sequential within one, concurrent across them):

1. Create the conversation empty (metadata only). The intent is written to the state store
   before the call; the new id is written with the outcome, in one transaction. On a target
   that lists conversations (Azure), and with `create_with_items`, the create carries the
   first batch; its answer has no item ids, so those items are recorded unread and the next
   listing of the conversation reads them (`read_item_ids`: one listing right away).
2. Append the planned items in batches of at most 20, from the first item not yet landed;
   intent before each call, outcome (new item ids) after, one transaction each.
3. Retry by kind of failure (`migrate.errors.CallError`): `not_applied` (429, connection
   refused) waits and resends; `rejected` (400) fails the conversation with the API's message;
   `ambiguous` (timeout, dropped connection, 5xx) is a write that may still land: a server
   goes on with a request its client gave up on. Such a conversation is *parked* (its claim
   let go, its concurrency slot free for others) until the settle time (`ReplayOptions.settle`)
   has passed since the write's intent was recorded; then it is reconciled: its items are
   listed oldest first, compared with the plan (`migrate.replay.comparison`), and the job goes
   on from the first planned item that is not there. An ambiguous create cannot be reconciled
   where no endpoint lists conversations: it is sent again and counted as a possible orphan
   (an empty conversation, or one holding the first batch with `create_with_items`). Where one
   does (Azure), it is looked up by its job token.
4. The audit. A conversation that had an ambiguous write is not `migrated` when its last batch
   lands: it waits until the end of the job (every other conversation claimed, planning
   complete) and at least the settle time after its last ambiguous write, and is listed again.
   The conversation is this job's alone, so a surplus copy of a planned item can only be a
   write of ours that landed after it was resent: it is deleted; planned items missing at the
   end are appended. Each deletion and append is journaled like any other write (intent
   before, outcome after) and counted (`repairs`, reported as `late_writes_repaired`). Only
   then is the conversation `migrated`.
5. A conversation picked up with an id already recorded (a resumed job, a dead worker's
   conversation) is reconciled before any write, and only once the writes the stopped process
   left in doubt (open intents) have settled; it is audited at the end like any other. A plan
   that appends to a conversation an earlier job landed (`plan.append`, made by
   `migrate sync`) skips the create call and counts its positions after the items already
   there; before its first append it sets the conversation's metadata to the plan's
   (`plan.append.update_metadata`), once, journaled (an ambiguous update is simply sent again:
   it is idempotent). If the target holds anything that is not a copy of a planned item, or a
   recorded item is gone, changed or moved, someone else wrote into it: the conversation fails with
   `target_diverged` and nothing is deleted.

Each conversation has a retry budget; when it runs out the conversation fails (retryable on
resume) and the job goes on. 429s never spend it: however long the account stays busy, no
conversation fails for it. Only a `fatal` failure (bad key, no quota) stops the job, and a storm
of 429s longer than `max_wait`, which stops it cleanly (`RateLimitedError`) for a later resume.

Several processes may replay one job (`migrate.workers`); each works only on conversations it
has claimed. If this process loses its claim (`ClaimLostError`: its lease could not be renewed
in time), it stops at once and leaves the conversation to the worker that takes it over.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from migrate.errors import CallError
from migrate.plan.model import ConversationPlan
from migrate.replay.core import _Budget, _Failed, _Parked, _Stopped, logger
from migrate.replay.create import Creator, _batch_ends
from migrate.replay.options import (
    CRASH_POINTS,
    REPAIR_CRASH_POINTS,
    CrashHook,
    CrashPoint,
    ReplayOptions,
    SimulatedCrash,
    Work,
)
from migrate.state.records import ClaimLostError
from migrate.state.schema import IntentKind, IntentOutcome, Status

__all__ = [
    "CRASH_POINTS",
    "REPAIR_CRASH_POINTS",
    "CrashHook",
    "CrashPoint",
    "ReplayOptions",
    "Replayer",
    "SimulatedCrash",
    "Work",
]


class Replayer(Creator):
    """Replays conversations into one target, recording every step in one state store.

    `parking` (the default) lets go of a conversation that must wait for a write in doubt to
    settle, for a claim loop to bring back (`migrate.replay.workers.claimed_work`); without
    it, the conversation waits in place (`migrate verify --repair`).
    """

    async def replay_all(self, work: AsyncIterator[Work]) -> None:
        """Replay everything `work` yields with `options.concurrency` workers.

        Returns when `work` is exhausted and every conversation is finished or parked, or a
        stop was requested and the calls in flight have ended. Re-raises the first job-level
        failure (`JobError`, `SimulatedCrash`) after cancelling the other workers; raises
        `RateLimitedError` once the calls in flight have ended after a storm of 429s outlasted
        `options.max_wait`.
        """
        queue: asyncio.Queue[Work | None] = asyncio.Queue(maxsize=self.options.concurrency * 2)
        workers = self.options.concurrency

        async def feed() -> None:
            async for item in work:
                if self.stop.is_set():
                    break
                await queue.put(item)
            # Not on cancellation: the drains are cancelled too, and a full queue would block.
            for _ in range(workers):
                await queue.put(None)

        async def drain() -> None:
            while (item := await queue.get()) is not None:
                if self.stop.is_set():
                    continue
                await self.replay(item.seq, item.plan, fresh=item.fresh, audit=item.audit)

        tasks = [asyncio.create_task(feed())]
        tasks += [asyncio.create_task(drain()) for _ in range(workers)]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                error = task.exception()
                if error is not None:
                    raise error
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._rate_limited is not None:
            raise self._rate_limited

    async def replay(
        self, seq: int, plan: ConversationPlan, *, fresh: bool = False, audit: bool = False
    ) -> Status:
        """Land one conversation (or record why not); returns its status afterwards.

        `fresh` says nothing was ever sent for it (it was claimed while pending); `audit`
        that it was claimed for its audit. A parked conversation is `in_progress`.
        """
        try:
            return await self._replay(seq, plan, fresh=fresh, audit=audit)
        except ClaimLostError as lost:
            if not self.stop.is_set():
                logger.error("stopping: %s", lost)
            self.stop.set()
            return "in_progress"

    async def audit(self, seq: int, plan: ConversationPlan) -> int:
        """Audit one migrated conversation now (`migrate verify --repair`): delete the surplus
        copies a late write left and append what is missing; returns the repairs made.

        Raises `ConversationError` (nothing changed) when the target holds what no write of
        ours explains, or the conversation cannot be read.
        """
        before = self.store.conversation(seq).repairs
        budget = _Budget(self.options.retry_budget, plan.source_id)
        await self._land(seq, plan, budget, fresh=False, audit=True)
        return self.store.conversation(seq).repairs - before

    async def _replay(
        self, seq: int, plan: ConversationPlan, *, fresh: bool, audit: bool
    ) -> Status:
        if not fresh:
            row = self.store.conversation(seq)
            if row.status in ("migrated", "failed", "skipped"):
                return row.status
        budget = self._budgets.pop(seq, None) or _Budget(self.options.retry_budget, plan.source_id)
        try:
            await self._land(seq, plan, budget, fresh=fresh, audit=audit)
        except _Failed as failure:
            logger.warning(
                "conversation %s (%s) failed: %s",
                plan.source_id,
                plan.location,
                failure.message,
                extra={
                    "event": "conversation_failed",
                    "source_id": plan.source_id,
                    "location": plan.location,
                    "code": failure.code,
                },
            )
            self.store.record_failed(
                seq,
                code=failure.code,
                message=failure.message,
                hint=failure.hint,
                retryable=failure.retryable,
            )
            self._finished("failed")
            return "failed"
        except _Parked:
            self._budgets[seq] = budget
            return "in_progress"
        except _Stopped:
            return "in_progress"
        self._finished("migrated")
        return "migrated"

    # --- the protocol ------------------------------------------------------------------------

    async def _land(
        self, seq: int, plan: ConversationPlan, budget: _Budget, *, fresh: bool, audit: bool
    ) -> None:
        row = None if fresh else self.store.conversation(seq)
        open_intents = [] if fresh else self.store.open_intents(seq)
        conversation_id = None if row is None else row.conversation_id
        in_doubt = self._in_doubt(seq, row, open_intents)
        intent: int | None = None  # the next batch's, when the last outcome wrote it down
        if conversation_id is None and plan.append is not None:
            # Appending to a conversation an earlier job landed, and nothing sent for it yet.
            conversation_id = plan.append.conversation_id
            landed = 0
        elif conversation_id is None and (
            self.target.can_list_conversations or self.options.create_with_items
        ):
            conversation_id, landed = await self._create_findable(seq, plan, budget, open_intents)
        elif conversation_id is None:
            self._count_lost_creates(seq, open_intents)
            conversation_id, intent = await self._create(seq, plan, budget, then_append=fresh)
            landed = 0
        else:
            if in_doubt is not None:
                await self._settle(seq, in_doubt)
            landed = await self._reconcile(
                seq, plan, conversation_id, budget, open_intents, in_doubt, audited=audit
            )
            if audit:
                in_doubt = None
        if plan.append is not None and plan.append.update_metadata:
            await self._update_metadata(seq, plan, conversation_id, budget, fresh=fresh)
        total = len(plan.items)
        ends = _batch_ends(plan)
        # An audit's append left in doubt is finished by whoever takes the conversation next
        # (a fresh one was never audited).
        repairing = audit or (
            landed < total and not fresh and self.store.repair_start(seq) is not None
        )
        kind: IntentKind = "append_missing" if repairing else "append"
        while landed < total:
            end = next(e for e in ends if e > landed)
            batch = plan.items[landed:end]
            if intent is None:
                self._check_stop()
                intent = self.store.record_intent(seq, kind, start=landed, count=len(batch))
            self._crash_point("after_append_intent", seq)
            try:
                created = await self.target.create_items(
                    conversation_id, [planned.item for planned in batch]
                )
            except CallError as error:
                landed, in_doubt = await self._after_failed_append(
                    seq, plan, conversation_id, intent, error, budget, landed, in_doubt
                )
                intent = None
                continue
            self._crash_point("after_append_call", seq)
            # The outcome and the next batch's intent go in one transaction (nothing is sent
            # between them), unless a stop was asked for: then nothing more is written down.
            following = next((e for e in ends if e > end), None)
            intent = self.store.record_appended(
                seq,
                intent,
                landed=[
                    (landed + offset, planned.source_id, str(created[offset].get("id")))
                    for offset, planned in enumerate(batch)
                ],
                source_conversation_id=plan.source_id,
                migrated=end == total and in_doubt is None,
                repairs=len(batch) if repairing else 0,
                next_intent=(
                    None
                    if following is None or self.stop.is_set()
                    else (kind, end, following - end)
                ),
            )
            self._crash_point("after_append_outcome", seq)
            self._items_landed(len(batch))
            landed = end
        if in_doubt is not None:
            # Every item is there, but a write in doubt may still land: the audit decides.
            self._park(seq)

    async def _update_metadata(
        self,
        seq: int,
        plan: ConversationPlan,
        conversation_id: str,
        budget: _Budget,
        *,
        fresh: bool,
    ) -> None:
        """Set the metadata of a conversation a sync appends to, once per job, journaled like
        every write. An update whose answer is lost (timeout, dropped connection, 5xx) is sent
        again at once, without waiting to settle: it sets the same whole metadata however often
        it lands, so a repeat or a late copy changes nothing."""
        if not fresh and self.store.metadata_updated(seq):
            return
        while True:
            self._check_stop()
            intent = self.store.record_intent(seq, "update_metadata", start=0, count=0)
            try:
                await self.target.update_conversation(conversation_id, plan.metadata)
            except CallError as error:
                self._raise_if_final(error, seq, plan, intent, conversation_id)
                outcome: IntentOutcome = "ambiguous" if error.kind == "ambiguous" else "not_applied"
                self.store.record_attempt_failed(seq, intent, outcome)
                budget.spend(error)
                await self._back_off(error, budget)
                continue
            self.store.record_metadata_updated(seq, intent)
            return

    async def _after_failed_append(
        self,
        seq: int,
        plan: ConversationPlan,
        conversation_id: str,
        intent: int,
        error: CallError,
        budget: _Budget,
        landed: int,
        in_doubt: float | None,
    ) -> tuple[int, float | None]:
        """Handle a failed append; returns how many planned items are now known to be there,
        and when the conversation's last write in doubt was recorded."""
        self._raise_if_final(error, seq, plan, intent, conversation_id)
        if error.kind == "not_applied":
            self.store.record_attempt_failed(seq, intent, "not_applied")
            budget.spend(error)
            await self._back_off(error, budget)
            return landed, in_doubt
        since = self.store.record_ambiguous_append(seq, intent)
        budget.spend(error)
        logger.info(
            "conversation %s: %s; reconciling once the write has settled (%.1f s)",
            plan.source_id,
            error.message,
            self.settle,
            extra={
                "event": "reconcile",
                "source_id": plan.source_id,
                "target_conversation_id": conversation_id,
            },
        )
        await self._settle(seq, since)
        # Waited in place (no claim loop to come back): this listing is the audit.
        audited = not self.parking
        landed = await self._reconcile(
            seq, plan, conversation_id, budget, [], since, audited=audited
        )
        return landed, None if audited else since
