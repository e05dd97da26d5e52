"""The one comparison of a conversation's items on the target with its plan.

Reconciliation (after a write whose outcome is unknown, on `resume`, on a take-over), the audit
that ends every conversation that had such a write, and `migrate verify` all read the target
through `compare`. It answers, for the items the job owns (after `plan.append.position` items an
earlier job landed, for a `migrate sync` plan):

- `matched`: the planned items found, positions 0..landed-1 in order, each with its target id
  (the id the job recorded, or the one found for a write whose answer never came);
- `surplus`: copies of planned items beyond those, which only a write of ours that landed
  late (after it was resent) can leave: the audit deletes them;
- the missing tail (`landed` up to the plan's length): still to be appended;
- `foreign`: anything else (an item that is no planned item, a recorded item gone, changed or
  moved, fewer items than an earlier job landed). Someone else wrote into the conversation:
  nothing may be deleted, and the conversation fails with `target_diverged`.

Items are matched by the ids the job recorded first; an item whose id the job never learnt is
matched by content (`migrate.replay.stored.item_difference`): it continues the recorded prefix
when it repeats the next planned item, and is a surplus copy when it repeats any other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from migrate.plan.model import ConversationPlan
from migrate.replay.stored import item_difference

DivergenceKind = Literal["missing", "changed", "reordered", "extra", "short"]


@dataclass(frozen=True)
class Matched:
    """A planned item found on the target."""

    position: int
    item_id: str
    recorded: bool
    """The job had recorded this id (False: found for a write whose answer never came)."""


@dataclass(frozen=True)
class Surplus:
    """A copy of a planned item beyond the one that counts: what a late write leaves."""

    index: int
    """Where it is among the job's items on the target (0 = the first after the base)."""
    item_id: str
    copies: int
    """The planned position it repeats."""


@dataclass(frozen=True)
class Divergence:
    """A difference no write of ours can explain."""

    kind: DivergenceKind
    detail: str
    position: int | None = None
    item_id: str | None = None


@dataclass(frozen=True)
class Comparison:
    """What the target holds of a plan (see the module docstring)."""

    planned: int
    listed: int
    """Items listed after the base (those the plan owns)."""
    matched: tuple[Matched, ...]
    surplus: tuple[Surplus, ...]
    foreign: tuple[Divergence, ...]

    @property
    def landed(self) -> int:
        """Planned items in place, in order: the first missing position."""
        return len(self.matched)

    @property
    def missing(self) -> int:
        """Planned items not on the target yet (the tail)."""
        return self.planned - self.landed

    @property
    def diverged(self) -> bool:
        return bool(self.foreign)

    @property
    def exact(self) -> bool:
        """The target holds exactly the plan, in order, and nothing else."""
        return not self.foreign and not self.surplus and self.landed == self.planned

    def found_ids(self) -> list[tuple[int, str]]:
        """`(position, item id)` of the matched items the job had not recorded."""
        return [(m.position, m.item_id) for m in self.matched if not m.recorded]

    def describe(self) -> str:
        """One line on what differs (the first foreign divergence, else the repairs needed)."""
        if self.foreign:
            return self.foreign[0].detail
        parts = []
        if self.surplus:
            parts.append(f"{len(self.surplus)} surplus copies of planned items")
        if self.missing:
            parts.append(f"{self.missing} planned items missing at the end")
        return ", ".join(parts) or "matches the plan"


def compare(
    plan: ConversationPlan,
    listed: Sequence[Mapping[str, Any]],
    recorded: Mapping[int, str],
) -> Comparison:
    """Compare the target's items (all of them, oldest first) with `plan` and the ids the job
    recorded by position."""
    base = 0 if plan.append is None else plan.append.position
    if len(listed) < base:
        short = Divergence(
            kind="short",
            detail=f"it holds {len(listed)} items, fewer than the {base} an earlier job landed",
        )
        return Comparison(len(plan.items), 0, (), (), (short,))
    own = listed[base:]
    foreign: list[Divergence] = []
    position_of = {item_id: position for position, item_id in recorded.items()}
    index_of = {str(item.get("id")): index for index, item in enumerate(own)}
    for position, item_id in sorted(recorded.items()):
        if item_id not in index_of:
            foreign.append(
                Divergence(
                    kind="missing",
                    position=position,
                    item_id=item_id,
                    detail=f"item {item_id} (position {position}) recorded as landed is missing",
                )
            )
    order = [position_of[item_id] for item_id in index_of if item_id in position_of]
    if order != sorted(order):
        foreign.append(
            Divergence(kind="reordered", detail="the items are not in the planned order")
        )
    top = max(recorded, default=-1)
    last_recorded = max(
        (index for item_id, index in index_of.items() if item_id in position_of), default=-1
    )
    matched: list[Matched] = []
    surplus: list[Surplus] = []
    for index, item in enumerate(own):
        item_id = str(item.get("id"))
        at = position_of.get(item_id)
        if at is not None:
            difference = _difference_at(plan, at, item)
            if difference is not None:
                foreign.append(
                    Divergence(kind="changed", position=at, item_id=item_id, detail=difference)
                )
            if at == len(matched):
                matched.append(Matched(at, item_id, recorded=True))
            continue
        following = len(matched)
        if (
            index > last_recorded
            and following < len(plan.items)
            and following > top
            and _difference_at(plan, following, item) is None
        ):
            matched.append(Matched(following, item_id, recorded=False))
            continue
        copies = _copied_position(plan, item)
        if copies is None:
            foreign.append(
                Divergence(
                    kind="extra",
                    item_id=item_id,
                    detail=f"item {base + index} ({item.get('type')}) is not in the plan",
                )
            )
        else:
            surplus.append(Surplus(index=index, item_id=item_id, copies=copies))
    return Comparison(len(plan.items), len(own), tuple(matched), tuple(surplus), tuple(foreign))


def _difference_at(plan: ConversationPlan, position: int, item: Mapping[str, Any]) -> str | None:
    if position >= len(plan.items):
        return f"position {position} is beyond the plan's {len(plan.items)} items"
    difference = item_difference(plan.items[position].item, item)
    if difference is None:
        return None
    source = plan.items[position].source_id
    where = f"position {position}" + (f" (source item {source})" if source else "")
    return f"{where} differs: {difference}"


def _copied_position(plan: ConversationPlan, item: Mapping[str, Any]) -> int | None:
    for position, planned in enumerate(plan.items):
        if item_difference(planned.item, item) is None:
            return position
    return None
