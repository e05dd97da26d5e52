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
import logging
import random
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from migrate.errors import CallError, CallRateLimited, ConversationError, JobError, RateLimitedError
from migrate.limits import MAX_METADATA_PAIRS
from migrate.plan.model import ConversationPlan
from migrate.replay.comparison import Comparison, compare
from migrate.replay.target import Target
from migrate.replay.unread import read_unread_ids
from migrate.state.records import ClaimLostError, ConversationRow, OpenIntent
from migrate.state.schema import IntentOutcome, Status
from migrate.state.store import StateStore

logger = logging.getLogger(__name__)

CrashPoint = Literal[
    "after_create_intent",
    "after_create_call",
    "after_create_outcome",
    "after_append_intent",
    "after_append_call",
    "after_append_outcome",
    "after_reconcile",
    "after_repair_intent",
    "after_repair_call",
]
"""Named moments between the steps of the protocol where a test may stop the process."""

CRASH_POINTS: tuple[CrashPoint, ...] = (
    "after_create_intent",
    "after_create_call",
    "after_create_outcome",
    "after_append_intent",
    "after_append_call",
    "after_append_outcome",
    "after_reconcile",
)
"""The moments every replay passes through; an audit's deletions add `REPAIR_CRASH_POINTS`."""

REPAIR_CRASH_POINTS: tuple[CrashPoint, ...] = ("after_repair_intent", "after_repair_call")

CrashHook = Callable[[CrashPoint, int], None]
"""Called at each `CrashPoint` with the conversation's `seq`; may raise `SimulatedCrash`."""


JOB_TOKEN_KEY = "migrate_token"
"""Conversation metadata key holding `<job id>/<seq>` on targets that list conversations."""


class SimulatedCrash(BaseException):
    """Stops the replayer at once, as if the process died; no `except Exception` catches it."""


class ReplayOptions(BaseModel):
    """How hard the replayer works and how patiently it retries."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    concurrency: int = Field(default=8, ge=1, le=1024)
    """Conversations in flight at once."""
    retry_budget: int = Field(default=10, ge=0)
    """Failed calls a conversation may take before it fails (the job goes on)."""
    backoff_base: float = Field(default=0.5, gt=0)
    backoff_max: float = Field(default=30.0, gt=0)
    max_wait: float | None = Field(default=None, gt=0)
    """Seconds a storm of 429s (no request served since the first) may last before the job
    stops for a later `migrate resume`; None: wait as long as it takes."""
    lease: float | None = Field(default=None, gt=0)
    """Seconds a claim on a conversation lasts unless renewed (other workers take it over
    after a crash); None: twice the call timeout, at least 30 s. Must exceed the timeout."""
    create_with_items: bool = False
    """On a target that cannot list conversations (OpenAI), send the first batch with the
    create call (one call fewer per conversation). A create whose answer is lost may then
    leave a conversation holding items whose id never reached us (`orphans_with_items`).
    Targets that list conversations (Azure) always do this: a lost create is found there."""
    read_item_ids: bool = False
    """After a create that carried items, list them at once for their ids (one call more).
    Without it those ids are recorded unread and the next listing of the conversation
    (a reconciliation, `migrate verify` at the latest) reads them."""
    settle: float | None = Field(default=None, ge=0)
    """Seconds after a write's intent before a write in doubt (timeout, dropped connection,
    5xx) counts as landed or lost, for reconciling and auditing; None: `default_settle`."""


MIN_SETTLE = 10.0
"""The least default settle time, in seconds."""


def default_settle(timeout: float) -> float:
    """Twice the call timeout, at least `MIN_SETTLE`: a request its client gave up on after
    `timeout` can sit in a server's queues about as long again before it is applied."""
    return max(MIN_SETTLE, 2 * timeout)


def settle_seconds(options: ReplayOptions, timeout: float) -> float:
    """The settle time a job uses with these options and this call timeout."""
    return options.settle if options.settle is not None else default_settle(timeout)


class Work(BaseModel):
    """One conversation to land: its row number in the state store and its plan."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seq: int
    plan: ConversationPlan
    fresh: bool = False
    """Claimed while still pending: nothing was ever sent for it, so there is no state to read."""
    audit: bool = False
    """Claimed for its audit (every item landed, a write was in doubt)."""


class ReplayListener(Protocol):
    """What the replayer tells the job as it goes (for progress bars)."""

    def items_landed(self, count: int) -> None: ...

    def conversation_finished(self, status: Status) -> None: ...


class _Failed(ConversationError):
    """This conversation cannot go on (`retryable`: a resume tries it again)."""

    def __init__(
        self, code: str, message: str, *, hint: str | None = None, retryable: bool = False
    ) -> None:
        super().__init__(code, message, hint=hint)
        self.retryable = retryable


class _Stopped(Exception):
    """A stop was requested; the conversation stays in progress for `migrate resume`."""


class _Parked(Exception):
    """The conversation waits, its claim let go: for a write in doubt to settle, or its audit."""


class _Budget:
    def __init__(self, allowed: int, source_id: str) -> None:
        self.source_id = source_id
        self.left = allowed
        self.spent = 0
        self.attempts = 0

    def spend(self, error: CallError) -> None:
        if isinstance(error, CallRateLimited):
            # The account is busy, not this conversation: the shared limiter paces it.
            return
        self.attempts += 1
        if error.target_silent:
            # The target answered nobody: that is the job's problem (it stops after
            # `unreachable_after`), not this conversation's.
            return
        if self.left <= 0:
            raise _Failed(
                "retries_exhausted",
                f"gave up after {self.spent + 1} failed calls; last: {error.message}",
                hint="the target kept failing; `migrate resume` tries this conversation again",
                retryable=True,
            )
        self.left -= 1
        self.spent += 1


class Replayer:
    """Replays conversations into one target, recording every step in one state store.

    `parking` (the default) lets go of a conversation that must wait for a write in doubt to
    settle, for a claim loop to bring back (`migrate.replay.workers.claimed_work`); without
    it, the conversation waits in place (`migrate verify --repair`).
    """

    def __init__(
        self,
        store: StateStore,
        target: Target,
        *,
        options: ReplayOptions | None = None,
        listener: ReplayListener | None = None,
        stop: threading.Event | None = None,
        crash_hook: CrashHook | None = None,
        parking: bool = True,
    ) -> None:
        self.store = store
        self.target = target
        self.options = options or ReplayOptions()
        self.settle = settle_seconds(self.options, target.timeout)
        self.listener = listener
        self.stop = stop or threading.Event()
        self.crash_hook = crash_hook
        self.parking = parking
        self._random = random.Random()
        self._job_id: str | None = None
        self._rate_limited: RateLimitedError | None = None
        """Set when a storm of 429s outlasted `max_wait`: the job stops, then raises it."""
        self._budgets: dict[int, _Budget] = {}
        """Budgets of conversations parked by this process: a park does not refill them."""

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
            conversation_id = await self._create(seq, plan, budget)
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
        while landed < total:
            self._check_stop()
            end = next(e for e in ends if e > landed)
            batch = plan.items[landed:end]
            intent = self.store.record_intent(seq, "append", start=landed, count=len(batch))
            self._crash_point("after_append_intent", seq)
            try:
                created = await self.target.create_items(
                    conversation_id, [planned.item for planned in batch]
                )
            except CallError as error:
                landed, in_doubt = await self._after_failed_append(
                    seq, plan, conversation_id, intent, error, budget, landed, in_doubt
                )
                continue
            self._crash_point("after_append_call", seq)
            self.store.record_appended(
                seq,
                intent,
                landed=[
                    (landed + offset, planned.source_id, str(created[offset].get("id")))
                    for offset, planned in enumerate(batch)
                ],
                source_conversation_id=plan.source_id,
                migrated=end == total and in_doubt is None,
                repairs=len(batch) if audit else 0,
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

    def _in_doubt(
        self, seq: int, row: ConversationRow | None, open_intents: list[OpenIntent]
    ) -> float | None:
        """When the conversation's last write in doubt was recorded (None: no such write since
        its audit); a stopped process's open appends count from their intents."""
        at = None if row is None else row.ambiguous_at
        stopped = [intent.created_at for intent in open_intents if intent.kind == "append"]
        if stopped and (at is None or max(stopped) > at):
            at = max(stopped)
            self.store.record_in_doubt(seq, at)
        return at

    async def _settle(self, seq: int, since: float) -> None:
        """Return once a write in doubt recorded at `since` can no longer be in flight; parks
        the conversation (`_Parked`) if that is later and this replayer parks."""
        left = since + self.settle - time.time()
        if left <= 0:
            return
        if self.parking:
            self._park(seq)
        await asyncio.sleep(left)

    def _park(self, seq: int) -> None:
        if not self.parking:
            return
        self.store.park(seq)
        raise _Parked()

    async def _create(self, seq: int, plan: ConversationPlan, budget: _Budget) -> str:
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
            self.store.record_created(seq, intent, conversation_id)
            self._crash_point("after_create_outcome", seq)
            return conversation_id

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

    async def _read_back(
        self, seq: int, plan: ConversationPlan, conversation_id: str, budget: _Budget
    ) -> int:
        """Record the ids of the items a create made (one listing); returns the landed count."""
        listed, calls = await self._list(seq, plan, conversation_id, budget)
        problem = _divergence(plan, listed, {})
        if problem is not None:
            self.store.record_reads(seq, calls=calls, reconciled=False)
            raise _Failed(
                "target_diverged",
                f"conversation {conversation_id} on the target does not match the plan: {problem}",
                hint="someone else wrote into it; check it, then `migrate rollback` the job",
            )
        self.store.record_appended(
            seq,
            None,
            landed=[
                (position, plan.items[position].source_id, str(item["id"]))
                for position, item in enumerate(listed)
            ],
            source_conversation_id=plan.source_id,
            migrated=len(listed) == len(plan.items),
            calls=calls,
        )
        self._items_landed(len(listed))
        return len(listed)

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

    async def _reconcile(
        self,
        seq: int,
        plan: ConversationPlan,
        conversation_id: str,
        budget: _Budget,
        open_intents: list[OpenIntent],
        in_doubt: float | None = None,
        *,
        audited: bool = False,
    ) -> int:
        """Compare the target with the plan, delete the surplus copies our late writes left,
        and record what landed; returns the landed count.

        `in_doubt`: when the conversation's last write in doubt was recorded (it has settled);
        `audited`: this listing is the conversation's audit, so a complete one is migrated.
        """
        listed, calls = await self._list(seq, plan, conversation_id, budget)
        present = {str(item.get("id")) for item in listed}
        for intent in open_intents:
            if intent.kind == "delete_item":
                # A stopped process's deletion: done if the item is gone (the audit below
                # deletes it again otherwise).
                self.store.record_item_deleted(
                    seq, intent.id, applied=intent.item_id not in present
                )
        # Ids a create with items left unread are read first: the comparison takes an item
        # whose id it does not know, before the last recorded one, for a surplus copy.
        known = read_unread_ids(self.store, seq, plan, listed)
        comparison = compare(plan, listed, known)
        if comparison.diverged:
            self.store.record_reads(seq, calls=calls, reconciled=True)
            raise _Failed(
                "target_diverged",
                f"conversation {conversation_id} on the target does not match the plan: "
                f"{comparison.describe()}",
                hint="someone else wrote into it; nothing was deleted: check it, then "
                "`migrate rollback` the job or fix the conversation by hand",
            )
        if comparison.surplus:
            await self._delete_surplus(seq, plan, conversation_id, comparison, budget)
        new = [
            (position, plan.items[position].source_id, item_id)
            for position, item_id in comparison.found_ids()
        ]
        complete = comparison.landed == len(plan.items)
        self.store.record_appended(
            seq,
            None,
            landed=new,
            source_conversation_id=plan.source_id,
            migrated=complete and (in_doubt is None or audited),
            calls=calls,
            reconciled=True,
        )
        if open_intents:
            self.store.resolve_intents(
                [intent.id for intent in open_intents if intent.kind != "delete_item"],
                "reconciled",
            )
        self._crash_point("after_reconcile", seq)
        self._items_landed(len(new))
        return comparison.landed

    async def _delete_surplus(
        self,
        seq: int,
        plan: ConversationPlan,
        conversation_id: str,
        comparison: Comparison,
        budget: _Budget,
    ) -> None:
        """Delete each surplus copy of a planned item (a late write's), journaled one by one."""
        logger.info(
            "conversation %s: deleting %d surplus copies a late write left",
            plan.source_id,
            len(comparison.surplus),
            extra={
                "event": "repair",
                "source_id": plan.source_id,
                "target_conversation_id": conversation_id,
                "surplus": len(comparison.surplus),
            },
        )
        for copy in comparison.surplus:
            self._check_stop()
            intent = self.store.record_intent(
                seq, "delete_item", start=copy.copies, count=1, item_id=copy.item_id
            )
            self._crash_point("after_repair_intent", seq)
            while True:
                try:
                    await self.target.delete_item(conversation_id, copy.item_id)
                except CallError as error:
                    if error.kind == "not_found":
                        break  # already gone: an earlier attempt of this deletion did it
                    if error.kind == "fatal":
                        self.store.record_attempt_failed(seq, intent, "rejected")
                        raise JobError(
                            f"the target refuses every call: {error.message}",
                            hint="check OPENAI_API_KEY, the organization/project and the "
                            "account's quota",
                        ) from error
                    if error.kind == "rejected":
                        self.store.resolve_intents([intent], "rejected")
                        raise _Failed(
                            f"api_{error.code or error.status or 'rejected'}",
                            f"the target refused to delete surplus item {copy.item_id}: "
                            f"{error.message}",
                            hint="delete it by hand, then `migrate verify --repair` the job",
                        ) from error
                    # A deletion is safe to repeat: no settle, no reconciliation.
                    self.store.record_attempt_failed(seq, None, "not_applied")
                    budget.spend(error)
                    await self._back_off(error, budget)
                    continue
                break
            self._crash_point("after_repair_call", seq)
            self.store.record_item_deleted(seq, intent)

    async def _list(
        self, seq: int, plan: ConversationPlan, conversation_id: str, budget: _Budget
    ) -> tuple[list[dict[str, object]], int]:
        # Count this conversation's own pages: the target's counter is shared by every task.
        earlier_pages = 0
        while True:
            pages = 0

            def count_page() -> None:
                nonlocal pages
                pages += 1

            try:
                listed = await self.target.list_items(conversation_id, on_page=count_page)
                return listed, earlier_pages + pages
            except CallError as error:
                # The page that failed is counted with the failed attempt, the ones before not.
                earlier_pages += max(pages - 1, 0)
                if error.kind == "fatal":
                    raise JobError(f"the target refuses every call: {error.message}") from error
                if error.kind in ("not_found", "rejected"):
                    raise _Failed(
                        "target_missing" if error.kind == "not_found" else "target_rejected",
                        f"cannot list conversation {conversation_id}: {error.message}",
                        hint="it was deleted on the target, or the job points at another target",
                    ) from error
                self.store.record_attempt_failed(seq, None, "not_applied")
                budget.spend(error)
                await self._back_off(error, budget)

    def _raise_if_final(
        self,
        error: CallError,
        seq: int,
        plan: ConversationPlan,
        intent: int,
        conversation_id: str | None = None,
    ) -> None:
        if error.kind == "fatal":
            self.store.record_attempt_failed(seq, intent, "rejected")
            raise JobError(
                f"the target refuses every call: {error.message}",
                hint="check OPENAI_API_KEY, the organization/project and the account's quota",
            )
        if error.kind == "rejected":
            self.store.resolve_intents([intent], "rejected")
            raise _Failed(
                f"api_{error.code or error.status or 'rejected'}",
                f"the target rejected the request: {error.message}",
                hint="fix the source or the policy, then migrate this conversation again",
            )
        if error.kind == "not_found" and conversation_id is None:
            # Creating a conversation cannot find nothing: there is no Conversations API here.
            self.store.resolve_intents([intent], "rejected")
            raise JobError(
                f"the target has no Conversations API at this address: {error.message}",
                hint="check --base-url (or OPENAI_BASE_URL), then `migrate resume` the job",
            )
        if error.kind == "not_found":
            self.store.resolve_intents([intent], "rejected")
            raise _Failed(
                "target_missing",
                f"conversation {conversation_id} no longer exists on the target",
                hint="it was deleted on the target; roll back and run the job again",
            )

    async def _back_off(self, error: CallError, budget: _Budget) -> None:
        if isinstance(error, CallRateLimited):
            self._paced(error, budget)
            return
        self.target.raise_if_unreachable()
        logger.info(
            "conversation %s: retrying after %s",
            budget.source_id,
            error.message,
            extra={"event": "retry", "source_id": budget.source_id, "attempt": budget.attempts},
        )
        attempt = min(30, max(0, budget.attempts - 1))
        delay = min(self.options.backoff_max, self.options.backoff_base * 2**attempt)
        await asyncio.sleep(delay * (0.5 + self._random.random() / 2))

    def _paced(self, error: CallRateLimited, budget: _Budget) -> None:
        """After a 429: the shared limiter already holds every worker; stop after `max_wait`."""
        limiter = self.target.limiter
        logger.info(
            "conversation %s: rate limited; every worker waits %.1f s",
            budget.source_id,
            error.retry_after or 0.0,
            extra={
                "event": "rate_limited",
                "source_id": budget.source_id,
                "retry_after": error.retry_after,
            },
        )
        max_wait = self.options.max_wait
        since = limiter.storm_since
        if max_wait is None or since is None or limiter.storm_seconds < max_wait:
            return
        if self._rate_limited is None:
            when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(since))
            self._rate_limited = RateLimitedError(
                f"the account is rate limited since {when}: the target answered only 429s for "
                f"{limiter.storm_seconds:.0f} s (--max-wait {max_wait:g}); the calls in flight "
                "have ended and nothing is lost; `migrate resume` the job later"
            )
            logger.error(
                "stopping: %s",
                self._rate_limited.message,
                extra={"event": "rate_limit_stop", "since": since},
            )
            self.stop.set()
        raise _Stopped()

    def _check_stop(self) -> None:
        if self.stop.is_set():
            raise _Stopped()

    def _crash_point(self, point: CrashPoint, seq: int) -> None:
        if self.crash_hook is not None:
            self.crash_hook(point, seq)

    def _items_landed(self, count: int) -> None:
        if self.listener is not None and count:
            self.listener.items_landed(count)

    def _finished(self, status: Status) -> None:
        if self.listener is not None:
            self.listener.conversation_finished(status)


def _batch_ends(plan: ConversationPlan) -> list[int]:
    ends: list[int] = []
    total = 0
    for size in plan.batch_sizes:
        total += size
        ends.append(total)
    return ends


def _divergence(
    plan: ConversationPlan, listed: list[dict[str, object]], known: dict[int, str]
) -> str | None:
    """Why the listed items are not exactly a prefix of the plan (None when they are)."""
    comparison = compare(plan, listed, known)
    if comparison.diverged or comparison.surplus:
        return comparison.describe()
    return None
