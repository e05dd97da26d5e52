"""Rehearsal switches: latency, a requests-per-minute token bucket, and seeded fault injection."""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from migrate.server.options import FAULT_KINDS, FaultKind, FaultSettings, ScriptStep

UNLIMITED_RPM = 1_000_000
"""What the rate-limit headers announce when no limit is configured."""


def format_duration(seconds: float) -> str:
    """A duration as the `x-ratelimit-reset-*` headers spell it: `120ms`, `1s`, `6m0s`."""
    millis = max(0, math.ceil(seconds * 1000))
    if millis < 1000:
        return f"{millis}ms"
    minutes, rest_ms = divmod(millis, 60_000)
    secs = f"{rest_ms / 1000:.3f}".rstrip("0").rstrip(".")
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


@dataclass(frozen=True)
class RateDecision:
    """The outcome of one request against the bucket, with what the headers report."""

    allowed: bool
    limit: int
    remaining: int
    reset_seconds: float
    retry_after_seconds: float

    def headers(self) -> list[tuple[bytes, bytes]]:
        """The `x-ratelimit-*-requests` headers every response carries."""
        return [
            (b"x-ratelimit-limit-requests", str(self.limit).encode()),
            (b"x-ratelimit-remaining-requests", str(self.remaining).encode()),
            (b"x-ratelimit-reset-requests", format_duration(self.reset_seconds).encode()),
        ]


class TokenBucket:
    """Requests per minute: `rpm` tokens, full at start, refilled continuously."""

    def __init__(self, rpm: int | None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._rpm = rpm
        self._clock = clock
        self._tokens = float(rpm or 0)
        self._updated = clock()
        self._drained_until = float("-inf")
        self._drain_first: float | None = None
        self._lock = threading.Lock()

    def drain_from_first(self, seconds: float) -> None:
        """Like `drain(seconds)`, starting with the first request the bucket decides."""
        self._drain_first = seconds

    def drain(self, seconds: float) -> None:
        """For `seconds` from now, another client of the account takes every token as it comes.

        The bucket is emptied now and stays empty until then, as if a busier neighbour always
        asked first; afterwards it refills from zero. A new drain replaces the one in force
        (`drain(0)` ends it).
        """
        with self._lock:
            self._drain_first = None
            now = self._clock()
            self._tokens = 0.0
            self._updated = now
            self._drained_until = now + seconds

    def take(self) -> RateDecision:
        """Spend one token if there is one."""
        return self._decide(spend=True)

    def peek(self) -> RateDecision:
        """The bucket's state, without spending (for answers that do not count, like a 401)."""
        return self._decide(spend=False)

    def _decide(self, *, spend: bool) -> RateDecision:
        if self._rpm is None:
            return RateDecision(True, UNLIMITED_RPM, UNLIMITED_RPM, 0.0, 0.0)
        per_second = self._rpm / 60.0
        if self._drain_first is not None:
            self.drain(self._drain_first)
        with self._lock:
            now = self._clock()
            # While drained, the neighbour has taken every token refilled so far.
            refill_from = max(self._updated, min(now, self._drained_until))
            self._tokens = min(float(self._rpm), self._tokens + (now - refill_from) * per_second)
            self._updated = now
            allowed = self._tokens >= 1.0
            if allowed and spend:
                self._tokens -= 1.0
            tokens = self._tokens
        reset = (self._rpm - tokens) / per_second
        retry_after = 0.0 if allowed else (1.0 - tokens) / per_second
        return RateDecision(allowed, self._rpm, math.floor(tokens), reset, retry_after)


class FaultInjector:
    """Decides, per request, which fault (if any) to inject; deterministic under a seed.

    Write requests consume the script first, then draw from the rates. A `burst_503` makes this
    request and the next `burst_length - 1` requests of any kind answer 503.
    """

    def __init__(self, settings: FaultSettings, *, seed: int) -> None:
        self._lock = threading.Lock()
        self._random = random.Random(f"faults:{seed}")
        self._settings = settings
        self._script: list[ScriptStep] = list(settings.script)
        self._burst_left = 0
        self.injected: dict[FaultKind, int] = dict.fromkeys(FAULT_KINDS, 0)

    @property
    def settings(self) -> FaultSettings:
        """The settings in force, with the script as it stands (steps not yet used)."""
        with self._lock:
            return self._settings.model_copy(update={"script": tuple(self._script)})

    def configure(self, settings: FaultSettings) -> None:
        """Replace the settings and the script; an ongoing 503 burst ends."""
        with self._lock:
            self._settings = settings
            self._script = list(settings.script)
            self._burst_left = 0

    def in_burst(self) -> bool:
        """True if this request falls inside a 503 burst (and counts it)."""
        with self._lock:
            if self._burst_left <= 0:
                return False
            self._burst_left -= 1
            self.injected["burst_503"] += 1
            return True

    def draw_for_write(self) -> FaultKind | None:
        """The fault planned for this write request; a `burst_503` starts a burst."""
        with self._lock:
            fault = self._next_fault()
            if fault == "burst_503":
                self._burst_left = self._settings.burst_length - 1
                self.injected["burst_503"] += 1
            return fault

    def record(self, fault: FaultKind) -> None:
        """Count a fault that was actually applied."""
        with self._lock:
            self.injected[fault] += 1

    def _next_fault(self) -> FaultKind | None:
        if self._script:
            step = self._script.pop(0)
            return None if step == "none" else step
        if not self._settings.rates:
            return None
        draw = self._random.random()
        cumulative = 0.0
        for kind in FAULT_KINDS:
            cumulative += self._settings.rates.get(kind, 0.0)
            if draw < cumulative:
                return kind
        return None


class Latency:
    """Fixed latency plus uniform jitter, from a seeded generator."""

    def __init__(self, latency_ms: float, jitter_ms: float, *, seed: int) -> None:
        self._latency = latency_ms / 1000.0
        self._jitter = jitter_ms / 1000.0
        self._random = random.Random(f"latency:{seed}")
        self._lock = threading.Lock()

    def next_delay(self) -> float:
        """Seconds to wait before answering the next request."""
        if not self._jitter:
            return self._latency
        with self._lock:
            return self._latency + self._random.uniform(0.0, self._jitter)
