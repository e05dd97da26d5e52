"""The base of the state store's parts: its engine, its owner, and the guarded update."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    update,
)

from migrate.plan.model import ConversationPlan
from migrate.state.prepared import PreparedStatements
from migrate.state.records import ClaimLostError
from migrate.state.schema import conversations

RECENT_PLANS = 2048
"""Most plans kept in memory between planning them and claiming them in the same process."""


class RecentPlans(dict[int, ConversationPlan]):
    """Plans this process stored lately, by `seq`, so that its own claims need not parse them
    back from the store; the oldest are dropped beyond `RECENT_PLANS`."""

    def remember(self, seq: int, plan: ConversationPlan) -> None:
        self[seq] = plan
        while len(self) > RECENT_PLANS:
            del self[next(iter(self))]


class StoreBase:
    """What the parts of the store share: the engine, the owning worker and guarded updates."""

    engine: Engine
    owner: str | None
    recent_plans: RecentPlans
    _statements: PreparedStatements | None = None

    def _update(self, conn: Connection, seq: int, **values: Any) -> None:
        """Update one conversation the replay protocol works on, if this worker still holds it."""
        query = update(conversations).where(conversations.c.seq == seq)
        if self.owner is not None:
            query = query.where(conversations.c.claimed_by == self.owner)
        if conn.execute(query.values(**values)).rowcount == 0 and self.owner is not None:
            raise self._claim_lost(seq)

    def _claim_lost(self, seq: int) -> ClaimLostError:
        return ClaimLostError(
            f"conversation #{seq} is no longer held by worker {self.owner}",
            hint="its lease ran out (the state store was unreachable or too slow); another "
            "worker takes it over and reconciles it",
        )

    @property
    def statements(self) -> PreparedStatements:
        """The hot statements of the replay protocol, compiled once for this engine."""
        if self._statements is None or self._statements.engine is not self.engine:
            self._statements = PreparedStatements(self.engine)
        return self._statements
