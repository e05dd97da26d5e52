"""Counters and a log of committed writes, served under `/_admin` for tests and rehearsals."""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from typing import Any

from pydantic import BaseModel, ConfigDict

LOG_CAPACITY = 100_000
"""Committed writes kept in memory (oldest dropped first)."""


class CommitRecord(BaseModel):
    """One committed write: what changed, and the fault (if any) applied after the commit."""

    model_config = ConfigDict(frozen=True)

    seq: int
    at: float
    operation: str
    conversation_id: str
    item_ids: list[str] = []
    fault: str | None = None


class ServerStats:
    """Request counts by route and status, commit counts and the commit log; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: Counter[tuple[str, str]] = Counter()
        self._log: deque[CommitRecord] = deque(maxlen=LOG_CAPACITY)
        self._seq = 0
        self.items_committed = 0
        self.conversations_created = 0

    def count_request(self, route: str, status: str) -> None:
        """Count one answered request (`status` is a code, or `dropped`)."""
        with self._lock:
            self._requests[(route, status)] += 1

    def record_commit(
        self,
        operation: str,
        conversation_id: str,
        item_ids: list[str],
        *,
        fault: str | None = None,
    ) -> None:
        """Log a committed write."""
        with self._lock:
            self._seq += 1
            self._log.append(
                CommitRecord(
                    seq=self._seq,
                    at=time.time(),
                    operation=operation,
                    conversation_id=conversation_id,
                    item_ids=item_ids,
                    fault=fault,
                )
            )
            self.items_committed += len(item_ids)
            if operation == "conversations.create":
                self.conversations_created += 1

    def requests(self) -> dict[str, dict[str, int]]:
        """`{"POST /v1/conversations": {"200": 3, "429": 1}, ...}`."""
        with self._lock:
            snapshot = dict(self._requests)
        result: dict[str, dict[str, int]] = {}
        for (route, status), count in sorted(snapshot.items()):
            result.setdefault(route, {})[status] = count
        return result

    def count(self, status: str) -> int:
        """How many requests were answered with `status`, over every route."""
        with self._lock:
            return sum(n for (_, code), n in self._requests.items() if code == status)

    def log(self, *, after: int = 0) -> list[dict[str, Any]]:
        """Committed writes with `seq > after`, oldest first."""
        with self._lock:
            records = [record for record in self._log if record.seq > after]
        return [record.model_dump() for record in records]
