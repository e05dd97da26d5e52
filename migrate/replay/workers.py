"""Several worker processes on one job: claims with leases, heartbeats, one shared rate budget.

How work is shared. One process plans: `migrate run` (or `resume`) reads the source and stores
each plan in the state store as it goes; it is also a worker. Any number of `migrate work
--state URL --job JOB_ID` processes, on this machine or others, join the job and replay. A
worker started before planning finished polls for more until the planner marks planning
complete. Why one planner rather than a shard per worker: the workers then need no access to
the source (often a file or a database only the first machine can read), the source is read
once, `seq` stays the source order that `resume`'s source check relies on, and a worker that
joins late or leaves early changes nothing about who plans what.

How a conversation is held. A worker claims a few conversations at a time (`SELECT ... FOR
UPDATE SKIP LOCKED`, in-flight ones first) with a lease in the database's clock. A background
thread renews the worker's leases and heartbeat every `(lease - timeout) / 3` seconds. Before
each remote write the worker checks that its last renewal still covers the whole call (now +
timeout), and every state update of the replay protocol applies only while the row is still
claimed by this worker (`StateStore.owner`). So a worker that lost contact with the state store
stops writing before its lease can run out, and a conversation is never written by two workers
at once. When a worker dies, its leases expire and another worker claims the conversations and
reconciles them (list the target's items, compare with the plan) before any write, as `resume`
does. A dead worker on the same machine (its pid is gone) is recognised at once.

How the rate limit is shared. Every response carries the account's `x-ratelimit-remaining`,
so each worker's limiter takes only its share (1 / live workers) of what is left, and of
`--max-rate`. A 429 seen by one worker is published as a pause in the state store; the others
read it within `PACE_INTERVAL` and hold off too. That costs each worker about two small
queries per `PACE_INTERVAL` and one write per renewal, next to hundreds of API calls.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable

from sqlalchemy.exc import SQLAlchemyError

from migrate.errors import ConfigError, StateWriteError
from migrate.replay.options import Work
from migrate.replay.ratelimit import RateLimiter
from migrate.replay.target import Target
from migrate.state.records import ClaimLostError, WorkerRow
from migrate.state.store import StateStore

logger = logging.getLogger(__name__)

PACE_INTERVAL = 1.0
"""Seconds between two reads of the shared pause and of the live worker count."""
POLL_INTERVAL = 0.25
"""Seconds between two looks for work when there is none to claim."""
MIN_LEASE = 30.0

_LIVE_HERE: set[str] = set()
"""Workers running in this process (a crashed one in a test process is gone like a dead pid)."""


def default_lease(timeout: float) -> float:
    """A lease long enough that a call can never outlive it: twice the call timeout."""
    return max(MIN_LEASE, 2 * timeout)


def host_identity() -> str:
    """This machine and pid namespace: a pid means the same process only within it."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = "?"
    return f"{socket.gethostname()}|{namespace}"[:255]


def is_gone(row: WorkerRow, *, host: str | None = None) -> bool:
    """Whether a worker is certainly gone: it said so, or it ran here and its process is dead."""
    if row.stopped_at is not None:
        return True
    if row.host != (host or host_identity()) or "?" in row.host.split("|")[-1]:
        return False
    if row.pid == os.getpid():
        return row.worker_id not in _LIVE_HERE
    try:
        os.kill(row.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def forget_gone_workers(store: StateStore) -> list[WorkerRow]:
    """Free at once the claims of workers known to be dead; returns the workers still alive."""
    rows, now = store.worker_rows()
    host = host_identity()
    gone = [row for row in rows if row.stopped_at is None and is_gone(row, host=host)]
    if gone:
        logger.info("workers gone: %s; their conversations are free", [r.worker_id for r in gone])
        store.forget_workers([row.worker_id for row in gone])
    return [
        row
        for row in rows
        if row.stopped_at is None and row not in gone and row.seen_at + row.lease > now
    ]


class WorkerSession:
    """This process as one worker of a job: registered, its leases renewed, the pace shared."""

    def __init__(
        self,
        store: StateStore,
        *,
        timeout: float,
        lease: float | None = None,
        plans: bool = False,
        pace_interval: float = PACE_INTERVAL,
    ) -> None:
        self.store = store
        self.timeout = timeout
        self.lease = lease if lease is not None else default_lease(timeout)
        if self.lease <= timeout:
            raise ConfigError(
                f"the lease ({self.lease:g}s) must be longer than the call timeout ({timeout:g}s)",
                hint="a call must never outlive the claim it is made under",
            )
        self.plans = plans
        self.worker_id = f"{socket.gethostname()[:30]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.renew_every = (self.lease - timeout) / 3
        self.pace_interval = pace_interval
        self.live_workers = 1
        self._valid_until = 0.0
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._pause_to_publish = 0.0
        self._limiter: RateLimiter | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """Join the job: register, hold the store's writes to this worker's claims, heartbeat."""
        began = time.monotonic()
        self.store.register_worker(
            self.worker_id,
            host=host_identity(),
            pid=os.getpid(),
            plans=self.plans,
            lease=self.lease,
        )
        self._valid_until = began + self.lease
        self.store.owner = self.worker_id
        _LIVE_HERE.add(self.worker_id)
        self._thread = threading.Thread(
            target=self._keep_alive, name="migrate-worker-lease", daemon=True
        )
        self._thread.start()
        logger.info("worker %s joined (lease %.0fs)", self.worker_id, self.lease)

    def attach(self, target: Target) -> None:
        """Guard the target's writes with the lease and share its rate limiter's budget."""
        target.write_guard = self.check_lease
        self._limiter = target.limiter
        self._loop = asyncio.get_running_loop()
        target.limiter.on_pause = self._rate_limited
        target.limiter.set_share(1.0 / max(1, self.live_workers))

    def check_lease(self) -> None:
        """Raise `ClaimLostError` unless this worker's claims outlast a call started now."""
        if time.monotonic() + self.timeout >= self._valid_until:
            raise ClaimLostError(
                f"worker {self.worker_id} could not renew its leases in time",
                hint="the state store is unreachable or slow; other workers take over",
            )

    def stop(self, *, crashed: bool = False) -> None:
        """Leave the job; a crash leaves the claims for the leases to expire (or `is_gone`)."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        _LIVE_HERE.discard(self.worker_id)
        self._limiter = None
        self._loop = None
        if crashed:
            return
        try:
            self.store.stop_worker(self.worker_id)
        except (SQLAlchemyError, StateWriteError) as exc:
            logger.warning("could not release the claims of %s: %s", self.worker_id, exc)

    # --- background thread -------------------------------------------------------------------

    def _rate_limited(self, pause: float) -> None:
        with self._lock:
            self._pause_to_publish = max(self._pause_to_publish, pause)
        self._wake.set()

    def _keep_alive(self) -> None:
        next_renewal = time.monotonic() + self.renew_every
        next_pace = time.monotonic()
        while not self._stopping.is_set():
            now = time.monotonic()
            if now >= next_renewal:
                next_renewal = now + self.renew_every
                try:
                    self.store.renew(self.worker_id, lease=self.lease)
                    self._valid_until = now + self.lease
                except (SQLAlchemyError, StateWriteError) as exc:
                    logger.warning("worker %s could not renew its leases: %s", self.worker_id, exc)
            with self._lock:
                pause, self._pause_to_publish = self._pause_to_publish, 0.0
            if pause or now >= next_pace:
                next_pace = now + self.pace_interval
                try:
                    self._share_pace(pause)
                except (SQLAlchemyError, StateWriteError) as exc:
                    logger.warning("worker %s: shared pace unreadable: %s", self.worker_id, exc)
            self._wake.wait(max(0.0, min(next_renewal, next_pace) - time.monotonic()))
            self._wake.clear()

    def _share_pace(self, pause: float) -> None:
        if pause:
            self.store.publish_pause(pause)
        live, _ = self.store.live_workers()
        left = self.store.pause_left()
        self.live_workers = max(1, live)
        limiter, loop = self._limiter, self._loop
        if limiter is None or loop is None:
            return
        share = 1.0 / self.live_workers
        try:
            loop.call_soon_threadsafe(limiter.set_share, share)
            if left > 0 and not pause:
                loop.call_soon_threadsafe(limiter.hold, left)
        except RuntimeError:  # the event loop has closed: the worker is leaving
            pass


async def claimed_work(
    store: StateStore,
    session: WorkerSession,
    *,
    batch: int,
    stop: threading.Event,
    settle: float = 0.0,
    planning: asyncio.Task[None] | None = None,
    planned: asyncio.Event | None = None,
    idle: Callable[[], None] | None = None,
) -> AsyncIterator[Work]:
    """Claim conversations until the job is done (every one final, planning complete).

    `planning` is this process's own planner, if it has one (its failure is raised here);
    `planned` is set whenever it stores new plans. A conversation parked while a write in
    doubt settles comes back `settle` seconds after that write; audits are claimed once
    nothing else is left to claim and the source is fully planned. Without work to claim,
    the worker waits for other workers' conversations: if one of them dies, its leases run
    out and they come here.
    """
    while not stop.is_set():
        settled_before = time.time() - settle
        claims = store.claim_work(
            session.worker_id, limit=batch, lease=session.lease, settled_before=settled_before
        )
        if claims:
            for claim in claims:
                yield Work(seq=claim.seq, plan=claim.plan, fresh=claim.status == "pending")
            continue
        if planning is not None and planning.done():
            planning.result()
        if planning is None or planning.done():
            if store.job().planning_complete:
                audits = store.claim_audits(
                    session.worker_id,
                    limit=batch,
                    lease=session.lease,
                    settled_before=settled_before,
                )
                if audits:
                    for claim in audits:
                        yield Work(seq=claim.seq, plan=claim.plan, audit=True)
                    continue
            if store.unfinished_count() == 0:
                if store.job().planning_complete:
                    return
                live = forget_gone_workers(store)
                if not any(row.plans for row in live):
                    logger.warning(
                        "the source is not fully planned and no process is planning it; "
                        "`migrate resume` (where the source is readable) continues it"
                    )
                    return
            else:
                forget_gone_workers(store)
        if idle is not None:
            idle()
        await _wait(planned, POLL_INTERVAL)


async def _wait(event: asyncio.Event | None, timeout: float) -> None:
    if event is None:
        await asyncio.sleep(timeout)
        return
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({waiter}, timeout=timeout)
    finally:
        waiter.cancel()
    event.clear()
