"""The replayer's reconciliation, audit and repair: list the target, compare it with the plan,
delete the surplus copies late writes left; and the settle wait that parks a conversation."""

from __future__ import annotations

import asyncio
import time

from migrate.errors import CallError, JobError
from migrate.plan.model import ConversationPlan
from migrate.replay.comparison import Comparison, compare
from migrate.replay.core import ReplayerCore, _Budget, _Failed, _Parked, logger
from migrate.replay.unread import read_unread_ids
from migrate.state.records import ConversationRow, OpenIntent


class Reconciler(ReplayerCore):
    """Reads a conversation back from the target and brings the state store in line with it."""

    def _in_doubt(
        self, seq: int, row: ConversationRow | None, open_intents: list[OpenIntent]
    ) -> float | None:
        """When the conversation's last write in doubt was recorded (None: no such write since
        its audit); a stopped process's open appends count from their intents."""
        at = None if row is None else row.ambiguous_at
        stopped = [
            intent.created_at
            for intent in open_intents
            if intent.kind in ("append", "append_missing")
        ]
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
        # What an audit's append left in doubt landed: those items are its repairs.
        repair_start = self.store.repair_start(seq) if new else None
        repairs = 0 if repair_start is None else sum(1 for p, _, _ in new if p >= repair_start)
        complete = comparison.landed == len(plan.items)
        self.store.record_appended(
            seq,
            None,
            landed=new,
            source_conversation_id=plan.source_id,
            migrated=complete and (in_doubt is None or audited),
            calls=calls,
            reconciled=True,
            repairs=repairs,
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


def _divergence(
    plan: ConversationPlan, listed: list[dict[str, object]], known: dict[int, str]
) -> str | None:
    """Why the listed items are not exactly a prefix of the plan (None when they are)."""
    comparison = compare(plan, listed, known)
    if comparison.diverged or comparison.surplus:
        return comparison.describe()
    return None
