"""The shared rate limiter, on a fake clock: pauses, the server's bucket, the adaptive rate."""

from __future__ import annotations

import asyncio

import pytest

from migrate.replay.ratelimit import RateLimiter, parse_duration, retry_after_seconds
from migrate.server.faults import TokenBucket


class FakeClock:
    """Time that moves only when someone sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def limiter(clock: FakeClock, **options: float) -> RateLimiter:
    return RateLimiter(clock=clock, sleep=clock.sleep, **options)


def send(limiter: RateLimiter, count: int, headers: dict[str, str] | None = None) -> None:
    async def go() -> None:
        for _ in range(count):
            await limiter.acquire()
            limiter.release(headers)

    asyncio.run(go())


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1s", 1.0), ("6m0s", 360.0), ("20ms", 0.02), ("1h2m3.5s", 3723.5), ("0.5", 0.5)],
)
def test_reset_durations_are_read_as_the_api_spells_them(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "soon", "5 s", "1s2x"])
def test_unreadable_durations_are_ignored(text: str) -> None:
    assert parse_duration(text) is None


def test_retry_after_prefers_milliseconds() -> None:
    assert retry_after_seconds({"retry-after-ms": "250", "retry-after": "1"}) == 0.25
    assert retry_after_seconds({"retry-after": "2"}) == 2.0
    assert retry_after_seconds({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) is None
    assert retry_after_seconds({}) is None


def test_without_signals_nothing_waits() -> None:
    clock = FakeClock()
    shared = limiter(clock)
    send(shared, 50)
    assert clock.slept == []
    assert shared.rate is None


def test_a_429_pauses_every_caller_for_its_retry_after() -> None:
    clock = FakeClock()
    shared = limiter(clock)
    assert shared.rate_limited(2.5) == 2.5
    send(shared, 1)
    assert sum(clock.slept) == pytest.approx(2.5)


def test_the_servers_bucket_paces_requests_once_it_runs_dry() -> None:
    clock = FakeClock()
    shared = limiter(clock)
    # 60 per minute, 2 left, 58 to refill: one more request per second after the two.
    headers = {
        "x-ratelimit-limit-requests": "60",
        "x-ratelimit-remaining-requests": "2",
        "x-ratelimit-reset-requests": "58s",
    }
    send(shared, 1, headers)
    start = clock.now
    empty = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "60s"}
    send(shared, 6, headers | empty)
    # After the answer saying 0 are left, each request waits for one token (1 s).
    assert clock.now - start == pytest.approx(5.0, abs=0.01)


def test_a_429_without_headers_halves_the_rate_actually_sent() -> None:
    clock = FakeClock()
    shared = limiter(clock)

    async def steady(count: int, gap: float) -> None:
        for _ in range(count):
            await shared.acquire()
            shared.release(None)
            await clock.sleep(gap)

    asyncio.run(steady(20, 0.1))  # 10 requests per second
    shared.rate_limited(None)
    assert shared.rate == pytest.approx(5.0, rel=0.15)
    # A burst of 429s answering requests already in flight does not halve it again.
    shared.rate_limited(None)
    assert shared.rate == pytest.approx(5.0, rel=0.15)


def test_the_rate_recovers_after_a_quiet_period() -> None:
    clock = FakeClock()
    shared = limiter(clock, recovery=0.5)
    shared.rate_limited(0.1)
    low = shared.rate
    assert low is not None
    clock.now += 5.0
    send(shared, 3)
    assert shared.rate is None or shared.rate > low


def test_a_429_that_describes_the_bucket_does_not_cut_the_rate() -> None:
    clock = FakeClock()
    shared = limiter(clock)
    headers = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1s"}
    shared.rate_limited(0.2, headers)
    assert shared.rate is None


class Account:
    """A server's request bucket on the fake clock, shared with a neighbour who can drain it."""

    def __init__(self, clock: FakeClock, rpm: int, *, headers: bool) -> None:
        self.bucket = TokenBucket(rpm, clock=clock)
        self.clock = clock
        self.headers = headers
        self.served: list[float] = []
        self.limited: list[float] = []

    async def call(self, limiter: RateLimiter) -> None:
        """One request through `limiter`, answered as `migrate.replay.target` reports it."""
        await limiter.acquire()
        await self.clock.sleep(0.005)  # the request's own latency
        decision = self.bucket.take()
        headers = None
        if self.headers:
            headers = {name.decode(): value.decode() for name, value in decision.headers()}
        if decision.allowed:
            self.served.append(self.clock.now)
            limiter.release(headers, served=True)
        else:
            self.limited.append(self.clock.now)
            limiter.rate_limited(decision.retry_after_seconds, headers)
            limiter.release(headers)

    def count(self, times: list[float], start: float, end: float) -> int:
        return sum(1 for at in times if start <= at < end)


@pytest.mark.parametrize("headers", [False, True], ids=["429s only", "x-ratelimit headers"])
def test_the_rate_comes_back_to_the_limit_once_a_storm_ends(headers: bool) -> None:
    clock = FakeClock()
    shared = limiter(clock)
    account = Account(clock, 600, headers=headers)
    start = clock.now
    account.bucket.drain(30.0)  # another client spends the whole limit for 30 s
    storm: list[float] = []

    async def job() -> None:
        while clock.now < start + 70.0:
            await account.call(shared)
            if clock.now < start + 30.0:
                storm.append(shared.storm_seconds)

    asyncio.run(job())
    assert account.count(account.served, start, start + 30.0) == 0
    # The job slowed down during the storm instead of hammering the target...
    assert len(account.limited) < 2 * 30 * 10
    assert max(storm) > 25.0
    assert shared.storm_seconds == 0.0 and shared.storm_since is None
    # ...and runs near the limit (10 per second) again soon after the storm ends.
    served_after = account.count(account.served, start + 35.0, start + 70.0)
    assert served_after >= 0.9 * 35 * 10
    assert account.count(account.limited, start + 35.0, start + 70.0) < 0.1 * served_after


def test_a_429_cuts_the_rate_to_just_below_what_was_served() -> None:
    clock = FakeClock()
    shared = limiter(clock)

    async def steady(count: int, gap: float) -> None:
        for _ in range(count):
            await shared.acquire()
            shared.release(None, served=True)
            await clock.sleep(gap)

    asyncio.run(steady(40, 0.05))  # 20 per second, all served
    shared.rate_limited(0.01)
    assert shared.rate == pytest.approx(0.9 * 20, rel=0.1)


def test_a_storm_lasts_until_a_request_is_served() -> None:
    clock = FakeClock()
    shared = limiter(clock)
    assert shared.storm_since is None
    shared.rate_limited(0.5)
    first = shared.storm_since
    assert first is not None
    clock.now += 10.0
    shared.release(None)  # another 429 (or no answer) does not end it
    shared.rate_limited(0.5)
    assert shared.storm_since == first
    assert shared.storm_seconds == pytest.approx(10.0)
    shared.release({}, served=True)
    assert shared.storm_since is None
    assert shared.storm_seconds == 0.0


def test_the_history_kept_is_only_the_measuring_window() -> None:
    clock = FakeClock()
    shared = limiter(clock)

    async def many() -> None:
        for _ in range(500):
            await shared.acquire()
            shared.release(None, served=True)
            await clock.sleep(0.1)

    asyncio.run(many())
    # 2 s of history at 10 per second, not all 500 requests.
    assert len(shared._sent) <= 21 and len(shared._served) <= 21
