"""The base of the state store's parts: its engine, its owner, and the guarded update."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    update,
)

from migrate.state.records import ClaimLostError
from migrate.state.schema import conversations


class StoreBase:
    """What the parts of the store share: the engine, the owning worker and guarded updates."""

    engine: Engine
    owner: str | None

    def _update(self, conn: Connection, seq: int, **values: Any) -> None:
        """Update one conversation the replay protocol works on, if this worker still holds it."""
        query = update(conversations).where(conversations.c.seq == seq)
        if self.owner is not None:
            query = query.where(conversations.c.claimed_by == self.owner)
        if conn.execute(query.values(**values)).rowcount == 0 and self.owner is not None:
            raise ClaimLostError(
                f"conversation #{seq} is no longer held by worker {self.owner}",
                hint="its lease ran out (the state store was unreachable or too slow); another "
                "worker takes it over and reconciles it",
            )
