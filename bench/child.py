"""One measured workload in a fresh process: `python -m bench.child '<request JSON>'`.

Each workload runs alone in its own interpreter so that its peak memory and CPU time are its
own, and so that the client never shares an event loop (or the GIL) with the server. The result
is printed as one JSON object on the last line of stdout.

Workloads:

- `plan`: `migrate.planning.plan_job` over a source (the dry run).
- `read`: only iterate the source (the adapter alone, no transform or plan): a baseline.
- `job`: `migrate.jobs.run_job` against a running server (`openai` target with its base URL).
- `verify`: `migrate.jobs.verify_job` of a finished job.
- `bare`: the same requests as `job`, from an async `openai` client with no state store and no
  checkpointing (raw `client.post`, no SDK request transform) on the HTTP client the job sends
  on (`migrate.replay.direct.http_client`, the SDK's aiohttp transport): the baseline for the tool.
- `sdk`: the same requests through the typed SDK methods (`conversations.create`,
  `conversations.items.create`), which run the SDK's request transform on every item.
- `http`: the same requests from a bare `httpx2.AsyncClient` on its default transport (no SDK
  at all).

With `profile` set, the measured part runs under `cProfile` and its statistics are written
to that path (`python -m pstats PATH`); CPU figures then include the profiler's own cost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

from pydantic import BaseModel, ConfigDict, TypeAdapter

from adapters import SourceConfig, open_source
from migrate.config import JobConfig
from migrate.plan.model import ConversationPlan
from migrate.plan.pipeline import iterate_plans

MAX_ERRORS_SHOWN = 20
PLANNER_FIT = "migrate.plan.planner.fit_context"
"""The planner's token counting stage, replaced by a no-op for the baseline."""
_SOURCE = TypeAdapter[SourceConfig](SourceConfig)


class ChildRequest(BaseModel):
    """What a child process is asked to do."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    workload: str
    source: dict[str, Any] | None = None
    job_dir: str | None = None
    base_url: str | None = None
    concurrency: int = 8
    timeout: float = 60.0
    settle: float | None = None
    """`job` only: the settle time (None: the product's default)."""
    count_tokens: bool = True
    """`plan` only: False replaces the token counting stage with a no-op (the baseline)."""
    create_with_items: bool = False
    """`job` only: each create carries the conversation's first batch (`--create-with-items`)."""
    profile: str | None = None
    """Write `cProfile` statistics of the measured part to this path."""
    compress: bool = False
    """`job` only: write the report files gzip-compressed (`--compress`)."""


def peak_rss_mb() -> float:
    """This process's peak resident set size in MiB.

    `VmHWM` rather than `ru_maxrss`: Linux keeps `ru_maxrss` across `execve`, so a child would
    report its parent's peak at fork time whenever that is higher than its own.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _CpuSampler:
    """Samples this process's CPU time against the wall clock, so that the parent can take
    the CPU spent inside the server's commit window (sending, not start-up or the report)."""

    def __init__(self, interval: float = 0.05) -> None:
        self.samples: list[tuple[float, float]] = []
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-cpu", daemon=True)

    def __enter__(self) -> _CpuSampler:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def _sample(self) -> None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        self.samples.append((time.time(), usage.ru_utime + usage.ru_stime))

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()


def _usage() -> dict[str, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"cpu_seconds": usage.ru_utime + usage.ru_stime, "peak_rss_mb": peak_rss_mb()}


def _source(request: ChildRequest) -> SourceConfig:
    return _SOURCE.validate_python(request.source)


def run_plan(request: ChildRequest) -> dict[str, Any]:
    """The dry run over the source, timed from the first read to the last plan written."""
    from migrate.jobs.plan import plan_job

    assert request.job_dir is not None
    from migrate.context.fit import ContextFit

    stage: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
    if not request.count_tokens:
        stage = mock.patch(PLANNER_FIT, lambda items, **_: ContextFit(tokens=0))
    before = _usage()
    started = time.perf_counter()
    with stage:
        summary = plan_job(JobConfig(source=_source(request)), Path(request.job_dir))
    seconds = time.perf_counter() - started
    after = _usage()
    return {
        "seconds": seconds,
        "cpu_seconds": after["cpu_seconds"] - before["cpu_seconds"],
        "peak_rss_mb_before": before["peak_rss_mb"],
        "peak_rss_mb": after["peak_rss_mb"],
        "conversations": summary.conversations.model_dump(),
        "items": summary.items.planned,
        "api_calls": summary.api_calls,
        "errors": summary.errors_total,
        "tokens": 0 if summary.tokens is None else summary.tokens.total,
    }


def run_read(request: ChildRequest) -> dict[str, Any]:
    """Iterate the source and count what it yields: the reading cost inside `plan`."""
    from adapters.model import SourceConversation

    before = _usage()
    started = time.perf_counter()
    conversations = entries = failures = 0
    for record in open_source(_source(request)).read():
        if isinstance(record, SourceConversation):
            conversations += 1
            entries += len(record.entries)
        else:
            failures += 1
    seconds = time.perf_counter() - started
    after = _usage()
    return {
        "seconds": seconds,
        "cpu_seconds": after["cpu_seconds"] - before["cpu_seconds"],
        "peak_rss_mb": after["peak_rss_mb"],
        "conversations": conversations,
        "entries": entries,
        "failures": failures,
    }


def run_job_workload(request: ChildRequest) -> dict[str, Any]:
    """`run_job` into the server at `base_url`; returns the job summary and timings."""
    from migrate.jobs.models import RunConfig
    from migrate.jobs.run import run_job
    from migrate.replay.options import ReplayOptions
    from migrate.replay.target import TargetConfig

    assert request.job_dir is not None and request.base_url is not None
    config = RunConfig(
        job=JobConfig(source=_source(request)),
        job_dir=Path(request.job_dir),
        target=TargetConfig(kind="openai", base_url=request.base_url, timeout=request.timeout),
        replay=ReplayOptions(
            concurrency=request.concurrency,
            create_with_items=request.create_with_items,
            settle=request.settle,
        ),
        compress=request.compress,
    )
    before = _usage()
    started = time.perf_counter()
    with _profiled(request), _CpuSampler() as sampler:
        summary = run_job(config)
    seconds = time.perf_counter() - started
    after = _usage()
    errors_file = Path(request.job_dir) / "errors.jsonl"
    errors = errors_file.read_text(encoding="utf-8").splitlines() if errors_file.exists() else []
    return {
        "seconds": seconds,
        "cpu_seconds": after["cpu_seconds"] - before["cpu_seconds"],
        "peak_rss_mb": after["peak_rss_mb"],
        "summary": summary.model_dump(mode="json"),
        "errors": [json.loads(line) for line in errors[:MAX_ERRORS_SHOWN]],
        "cpu_samples": sampler.samples,
    }


def run_verify(request: ChildRequest) -> dict[str, Any]:
    """`verify_job` of the job in `job_dir`; returns the report with problems counted by kind."""
    from migrate.jobs.models import JobRef
    from migrate.jobs.verify import verify_job

    assert request.job_dir is not None
    report = verify_job(JobRef(job_dir=Path(request.job_dir)))
    kinds: dict[str, int] = {}
    for check in report.conversations:
        for problem in check.problems:
            kinds[problem.kind] = kinds.get(problem.kind, 0) + 1
    return {
        "checked": report.checked,
        "matching": report.matching,
        "differing": report.differing,
        "not_migrated": report.not_migrated,
        "problems": kinds,
    }


def _plans(request: ChildRequest) -> list[ConversationPlan]:
    outcomes = iterate_plans(
        open_source(_source(request)), JobConfig(source=_source(request)).policy
    )
    return [
        outcome for outcome in outcomes if isinstance(outcome, ConversationPlan) and outcome.items
    ]


def run_bare(request: ChildRequest) -> dict[str, Any]:
    """Send every plan's requests with raw `client.post` calls: no state, no checkpoints."""
    from openai import AsyncOpenAI

    plans = _plans(request)

    async def land_all(client: AsyncOpenAI) -> int:
        import httpx2

        async def land(plan: ConversationPlan) -> int:
            response = await client.post(
                "/conversations", cast_to=httpx2.Response, body={"metadata": plan.metadata}
            )
            conversation_id = response.json()["id"]
            for batch in plan.batches():
                await client.post(
                    f"/conversations/{conversation_id}/items",
                    cast_to=httpx2.Response,
                    body={"items": [planned.item for planned in batch]},
                )
            return 1 + len(plan.batch_sizes)

        return await _pool(plans, land, request.concurrency)

    return _timed_client(request, land_all)


def run_http(request: ChildRequest) -> dict[str, Any]:
    """Send every plan's requests with a bare `httpx2.AsyncClient`: no SDK, no state store."""
    import httpx2

    base_url = request.base_url
    assert base_url is not None
    plans = _plans(request)
    headers = {"Authorization": "Bearer bench", "Content-Type": "application/json"}

    async def main() -> int:
        limits = httpx2.Limits(max_connections=1000, max_keepalive_connections=100)
        async with httpx2.AsyncClient(
            base_url=base_url.rstrip("/") + "/",
            headers=headers,
            timeout=httpx2.Timeout(request.timeout, connect=5.0),
            limits=limits,
        ) as client:

            async def land(plan: ConversationPlan) -> int:
                response = await client.post(
                    "conversations", content=json.dumps({"metadata": plan.metadata})
                )
                response.raise_for_status()
                conversation_id = response.json()["id"]
                for batch in plan.batches():
                    body = json.dumps({"items": [planned.item for planned in batch]})
                    answer = await client.post(
                        f"conversations/{conversation_id}/items", content=body
                    )
                    answer.raise_for_status()
                    answer.json()
                return 1 + len(plan.batch_sizes)

            return await _pool(plans, land, request.concurrency)

    return _measured(request, lambda: asyncio.run(main()))


def run_sdk(request: ChildRequest) -> dict[str, Any]:
    """Send every plan's requests through the typed SDK methods (with their request transform)."""
    from openai import AsyncOpenAI

    plans = _plans(request)

    async def land_all(client: AsyncOpenAI) -> int:
        async def land(plan: ConversationPlan) -> int:
            conversation = await client.conversations.create(metadata=plan.metadata)
            for batch in plan.batches():
                await client.conversations.items.create(
                    conversation.id,
                    items=[planned.item for planned in batch],  # type: ignore[misc]
                )
            return 1 + len(plan.batch_sizes)

        return await _pool(plans, land, request.concurrency)

    return _timed_client(request, land_all)


async def _pool(
    plans: list[ConversationPlan],
    land: Callable[[ConversationPlan], Awaitable[int]],
    concurrency: int,
) -> int:
    queue: asyncio.Queue[ConversationPlan] = asyncio.Queue()
    for plan in plans:
        queue.put_nowait(plan)
    calls = 0

    async def worker() -> None:
        nonlocal calls
        while not queue.empty():
            landed = await land(queue.get_nowait())
            calls += landed

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return calls


def _timed_client(
    request: ChildRequest, land_all: Callable[[Any], Awaitable[int]]
) -> dict[str, Any]:
    import httpx2
    from openai import AsyncOpenAI

    from migrate.replay.direct import http_client

    assert request.base_url is not None

    async def main() -> int:
        timeout = httpx2.Timeout(request.timeout, connect=5.0)
        client = AsyncOpenAI(
            api_key="bench",
            base_url=request.base_url,
            max_retries=0,
            timeout=timeout,
            http_client=http_client(str(request.base_url), timeout),
        )
        try:
            return await land_all(client)
        finally:
            await client.close()

    return _measured(request, lambda: asyncio.run(main()))


def _measured(request: ChildRequest, send: Callable[[], int]) -> dict[str, Any]:
    """Time `send` (which returns its call count), under the profiler if one is asked for."""
    before = _usage()
    started = time.perf_counter()
    with _profiled(request), _CpuSampler() as sampler:
        calls = send()
    seconds = time.perf_counter() - started
    after = _usage()
    return {
        "seconds": seconds,
        "cpu_seconds": after["cpu_seconds"] - before["cpu_seconds"],
        "peak_rss_mb": after["peak_rss_mb"],
        "calls": calls,
        "cpu_samples": sampler.samples,
    }


@contextlib.contextmanager
def _profiled(request: ChildRequest) -> Iterator[None]:
    if request.profile is None:
        yield
        return
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        yield
    finally:
        profiler.disable()
        profiler.dump_stats(request.profile)


WORKLOADS: dict[str, Callable[[ChildRequest], dict[str, Any]]] = {
    "plan": run_plan,
    "read": run_read,
    "job": run_job_workload,
    "verify": run_verify,
    "bare": run_bare,
    "sdk": run_sdk,
    "http": run_http,
}


def main(argv: list[str]) -> None:
    """Run the workload described by the JSON in `argv[0]`; print its result as JSON."""
    request = ChildRequest.model_validate_json(argv[0])
    result = WORKLOADS[request.workload](request)
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
