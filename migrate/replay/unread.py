"""Item ids recorded unread, read from a listing of their conversation.

A create that carries a conversation's first batch answers with the conversation only, so
the replayer records those items without their new ids (`unread_items`). Any later listing
of the conversation reads them: a reconciliation during the run, else `migrate verify`, which
lists every migrated conversation anyway and fills them in here; `migrate report` then writes
them into `items.csv`.
"""

from __future__ import annotations

from typing import Any

from migrate.plan.model import ConversationPlan
from migrate.replay.stored import item_difference
from migrate.state.store import StateStore


def read_unread_ids(
    store: StateStore, seq: int, plan: ConversationPlan, listed: list[dict[str, Any]]
) -> dict[int, str]:
    """The conversation's item ids by position, the unread ones taken from `listed` and
    recorded. An unread position is filled only when the item listed there is the planned one
    and its id is not already another position's: anything else stays unread for `verify`
    to report."""
    rows = store.item_rows(seq)
    known = {position: item_id for position, item_id in rows.items() if item_id is not None}
    unread = sorted(position for position, item_id in rows.items() if item_id is None)
    if not unread:
        return known
    taken = set(known.values())
    found: dict[int, str] = {}
    for position in unread:
        if position >= len(listed) or position >= len(plan.items):
            continue
        item = listed[position]
        item_id = str(item.get("id"))
        if item_id in taken or item_difference(plan.items[position].item, item) is not None:
            continue
        found[position] = item_id
        taken.add(item_id)
    store.fill_item_ids(seq, found)
    return known | found
