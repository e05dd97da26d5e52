"""One coroutine per row, at most `concurrency` at work and `2 * concurrency` created at once.

`verify` and `rollback` walk every conversation of a job; creating one task per conversation up
front would hold a million tasks in memory, so both go through `for_each`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

T = TypeVar("T")


async def for_each(
    rows: Iterable[T], work: Callable[[T], Awaitable[None]], *, concurrency: int
) -> None:
    """Await `work(row)` for every row; the first exception is raised once the others finish."""
    gate = asyncio.Semaphore(concurrency)

    async def bounded(row: T) -> None:
        async with gate:
            await work(row)

    pending: set[asyncio.Task[None]] = set()
    for row in rows:
        if len(pending) >= concurrency * 2:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
        pending.add(asyncio.create_task(bounded(row)))
    for outcome in await asyncio.gather(*pending, return_exceptions=True):
        if isinstance(outcome, BaseException):
            raise outcome
