"""A rate limiter shared by every worker of a job, steered by the target's own signals.

It is a token bucket whose rate adapts: a 429 pauses every worker (for `Retry-After` /
`retry-after-ms`, or a short default) and sets the rate just below what the target actually
served in the last seconds (halving it when nothing was served); the server's
`x-ratelimit-remaining-requests` / `x-ratelimit-reset-requests` headers, where a target sends
them, cap what may be sent before the window resets; and once 429s stop the rate climbs back,
slowly at first and faster the longer the quiet lasts, so that it finds the account's limit
again within seconds after another client stops spending it. A long job therefore runs near
the account's limit instead of bouncing off it.

A 429 is pacing, never a failure: the limiter also tracks the current *storm* (429s with no
request served since the first of them), which the replayer compares with `--max-wait`.

Several processes on one job each hold a limiter: `set_share` gives each its part of the budget
(of `max_rate` and of what the server says remains), `hold` applies a pause another process
met, and `on_pause` tells the process's worker about a pause met here (`migrate.workers`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping

logger = logging.getLogger(__name__)

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
DEFAULT_PAUSE = 1.0
"""Seconds every worker waits after a 429 that carries no `Retry-After`."""
MEASURE_WINDOW = 2.0
"""Seconds of history used to measure the rates actually sent and served."""
CUT = 0.9
"""After a 429, the rate becomes this fraction of the rate the target served."""
_EPSILON = 1e-9
_MIN_WAIT = 0.001
"""Shortest wait: a shorter one could be lost in the clock's rounding and spin."""


# Read on every answer, and a server sends few distinct values.
@functools.lru_cache(maxsize=256)
def parse_duration(value: str) -> float | None:
    """Seconds in an `x-ratelimit-reset-*` value such as `1s`, `6m0s`, `20ms` or `0.5`."""
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    total = 0.0
    end = 0
    for match in _DURATION_PART.finditer(text):
        if match.start() != end:
            return None
        number, unit = float(match.group(1)), match.group(2)
        total += number * {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[unit]
        end = match.end()
    return total if end == len(text) and end > 0 else None


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """The delay a response asks for: `retry-after-ms`, else `retry-after` in seconds."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            return max(0.0, float(raw) * scale)
        except ValueError:
            continue
    return None


class RateLimiter:
    """Token bucket with an adaptive rate, shared by all concurrent callers of one target.

    Call `acquire()` before each request and `release(headers)` after it (with the response
    headers, or `None` when there was no response); call `rate_limited(delay)` on a 429.
    """

    def __init__(
        self,
        *,
        max_rate: float | None = None,
        min_rate: float = 0.5,
        recovery: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """`max_rate` caps requests per second (None: no cap until the target pushes back).

        `recovery` sets how fast the rate climbs back once 429s stop: after `q` quiet
        seconds it grows by `recovery * q` (a fraction) per second, so it creeps up near the
        limit it just met and comes back fast after a long storm has passed.
        """
        self.max_rate = max_rate
        self.min_rate = min_rate
        self.recovery = recovery
        self._clock = clock
        self._sleep = sleep
        self._rate: float | None = max_rate
        self._tokens = 1.0
        self._refilled_at = clock()
        self._paused_until = 0.0
        self._mirror: _ServerBucket | None = None
        self._last_decrease = float("-inf")
        self._last_limited = float("-inf")
        self._last_increase = clock()
        self._sent: deque[float] = deque()
        self._served: deque[float] = deque()
        self._storm: tuple[float, float] | None = None
        self._in_flight = 0
        self._lock: asyncio.Lock | None = None
        self._queued = 0
        """Callers in `acquire` that hold the lock or wait for it."""
        self._share = 1.0
        self.rate_limited_count = 0
        self.on_pause: Callable[[float], None] | None = None
        """Called with the pause after each 429 (to share it with other processes)."""

    @property
    def rate(self) -> float | None:
        """Current requests-per-second ceiling; None when unlimited."""
        return self._rate

    @property
    def pause_left(self) -> float:
        """Seconds every call still waits because of a 429 (0 when not paused)."""
        return max(0.0, self._paused_until - self._clock())

    @property
    def storm_seconds(self) -> float:
        """Seconds since the first 429 of the current storm (0 when a request was served since)."""
        return 0.0 if self._storm is None else self._clock() - self._storm[0]

    @property
    def storm_since(self) -> float | None:
        """Wall time (Unix) of the first 429 not followed by any served request, if any."""
        return None if self._storm is None else self._storm[1]

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def share(self) -> float:
        """This limiter's part of the account's budget (1.0 when alone)."""
        return self._share

    def set_share(self, share: float) -> None:
        """Take only `share` (0..1] of `max_rate` and of what the server says remains."""
        share = min(1.0, max(1e-6, share))
        if share == self._share:
            return
        self._share = share
        cap = self._cap()
        # A larger share lets the rate grow back to the new cap as it recovers, not at once.
        if cap is not None and (self._rate is None or self._rate > cap):
            self._rate = cap
            self._tokens = min(self._tokens, max(1.0, cap))

    def hold(self, seconds: float) -> None:
        """Send nothing for `seconds` (a pause another process of the job met)."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    async def acquire(self) -> None:
        """Wait until one more request may be sent, and count it as sent."""
        # With no caller ahead, a call that need not wait takes its token at once, as it
        # would through the lock (which it would hold without waiting).
        if not self._queued and self._wait_time() <= 0:
            self._take()
            return
        if self._lock is None:
            self._lock = asyncio.Lock()
        self._queued += 1
        try:
            # The lock makes waiters take tokens in arrival order instead of racing on wake-up.
            async with self._lock:
                while (wait := self._wait_time()) > 0:
                    await self._sleep(wait)
                self._take()
        finally:
            self._queued -= 1

    def _take(self) -> None:
        now = self._clock()
        if self._rate is not None:
            self._tokens -= 1.0
        if self._mirror is not None:
            self._mirror.tokens -= 1.0
        self._sent.append(now)
        self._in_flight += 1

    def release(self, headers: Mapping[str, str] | None, *, served: bool = False) -> None:
        """A request finished; learn from its response headers when there was a response.

        `served`: the target answered it with success (which also ends a storm of 429s).
        """
        self._in_flight = max(0, self._in_flight - 1)
        now = self._clock()
        if served:
            self._served.append(now)
            self._storm = None
        # Keep only the measuring window, however long the job runs.
        _rate_in(self._served, now)
        _rate_in(self._sent, now)
        if headers is not None:
            self._observe(headers)
        self._recover()

    def rate_limited(self, delay: float | None, headers: Mapping[str, str] | None = None) -> float:
        """A 429 came back: pause everyone and slow down. Returns the pause in seconds.

        When the answer describes the server's bucket (`x-ratelimit-*-requests`), that
        description paces what follows; otherwise the rate drops to just below what the target
        served in the last seconds (half the rate when it served nothing).
        """
        now = self._clock()
        self.rate_limited_count += 1
        self._last_limited = now
        if self._storm is None:
            self._storm = (now, time.time())
        pause = DEFAULT_PAUSE if delay is None else delay
        self._paused_until = max(self._paused_until, now + pause)
        described = headers is not None and "x-ratelimit-remaining-requests" in headers
        # Concurrent requests answered by the same burst of 429s count as one signal.
        if not described and now - self._last_decrease >= max(pause, 1.0):
            served = _rate_in(self._served, now)
            if served > 0:
                self._rate = max(self.min_rate, CUT * served)
            else:
                sent = _rate_in(self._sent, now)
                base = sent if self._rate is None else min(self._rate, sent or self._rate)
                self._rate = max(self.min_rate, 0.5 * (base or self.min_rate * 2))
            self._tokens = min(self._tokens, 1.0)
            self._last_decrease = now
            logger.info("rate limited: pausing %.2fs, rate now %.1f/s", pause, self._rate)
        self._last_increase = now
        if self.on_pause is not None:
            self.on_pause(pause)
        return pause

    def _cap(self) -> float | None:
        return None if self.max_rate is None else self.max_rate * self._share

    def _wait_time(self) -> float:
        now = self._clock()
        if now < self._paused_until:
            return self._paused_until - now
        if self._mirror is not None:
            if now >= self._mirror.full_at:
                self._mirror = None
            else:
                wait = self._mirror.wait_time(now)
                if wait > 0:
                    return wait
        if self._rate is None:
            return 0.0
        burst = max(1.0, self._rate)
        self._tokens = min(burst, self._tokens + (now - self._refilled_at) * self._rate)
        self._refilled_at = now
        if self._tokens >= 1.0 - _EPSILON:
            return 0.0
        return max(_MIN_WAIT, (1.0 - self._tokens) / self._rate)

    def _observe(self, headers: Mapping[str, str]) -> None:
        remaining = _number(headers.get("x-ratelimit-remaining-requests"))
        if remaining is None:
            return
        reset = headers.get("x-ratelimit-reset-requests")
        seconds = parse_duration(reset) if reset is not None else None
        if seconds is None:
            return
        limit = _number(headers.get("x-ratelimit-limit-requests"))
        now = self._clock()
        refill = None
        if limit is not None and seconds > 0 and limit > remaining:
            refill = (limit - remaining) / seconds * self._share
        # Requests already sent but not yet seen by the server will spend part of what is left.
        self._mirror = _ServerBucket(
            tokens=remaining * self._share - self._in_flight,
            refill=refill,
            updated_at=now,
            full_at=now + seconds,
        )

    def _recover(self) -> None:
        if self._rate is None:
            return
        now = self._clock()
        elapsed = now - self._last_increase
        if elapsed <= 0:
            return
        self._last_increase = now
        # The longer no 429 came, the faster the rate grows: near a limit just met it creeps
        # up, after a storm it doubles within a few seconds.
        quiet = now - self._last_limited
        grown = self._rate * math.exp(min(self.recovery * quiet * elapsed, 1.0))
        cap = self._cap()
        if cap is not None:
            self._rate = min(cap, grown)
            return
        measured = _rate_in(self._sent, now)
        # Far above what is being sent: the cap no longer binds, so drop it.
        self._rate = None if measured and grown > 4 * measured else grown


def _rate_in(times: deque[float], now: float) -> float:
    """Events per second in the last `MEASURE_WINDOW` seconds (older ones are dropped)."""
    while times and times[0] < now - MEASURE_WINDOW:
        times.popleft()
    return len(times) / MEASURE_WINDOW


class _ServerBucket:
    """The server's request bucket as its last response described it."""

    def __init__(self, *, tokens: float, refill: float | None, updated_at: float, full_at: float):
        self.tokens = tokens
        self.refill = refill
        self.updated_at = updated_at
        self.full_at = full_at

    def wait_time(self, now: float) -> float:
        if self.refill is not None:
            self.tokens += (now - self.updated_at) * self.refill
        self.updated_at = now
        if self.tokens >= 1.0 - _EPSILON:
            return 0.0
        if self.refill is None:
            # Without the limit the refill speed is unknown: look again shortly.
            return min(self.full_at - now, 0.5)
        return max(_MIN_WAIT, (1.0 - self.tokens) / self.refill)


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None
