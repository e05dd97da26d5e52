"""The storm: a job shares its account's rate limit with a client that drains it, then has it alone.

The server is limited to R = 600 requests/minute and answers without `x-ratelimit-*` headers,
as OpenAI's Conversations endpoints do, so the job can pace only from 429s and `Retry-After`.
A neighbour spends the server's initial bucket, then asks three times faster than the limit
refills, from before the job starts until `storm_drain_seconds` after the job's first request:
nearly every request the job sends meanwhile answers 429. Then the neighbour stops.

Measured: failed conversations (a 429 must never fail one), duplicates on the server itself
(its own database, read after it stopped), and the job's write rate from the moment the
neighbour stopped to its last write, as a ratio of R.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from bench.child import ChildRequest
from bench.data import write_chat_jsonl
from bench.results import Result, ratio
from bench.scenarios import Scale, run_child
from bench.server import (
    PREFLIGHT_READS,
    Neighbour,
    ServerProcess,
    requests_with_status,
    total_requests,
)
from migrate.server.store import ConversationStore

RPM = 600
CONCURRENCY = 32
NEIGHBOUR_SPEED = 3.0
"""The neighbour asks this many times faster than the limit refills: it drains the bucket."""
POLL = 0.2


def storm(scale: Scale, workdir: Path, *, seed: int) -> list[Result]:
    """150 conversations at concurrency 32 through a drained 600/min limit, then alone."""
    per_second = RPM / 60
    lengths = [scale.storm_messages] * scale.storm_conversations
    source = write_chat_jsonl(workdir / "storm.jsonl", lengths, seed=seed)
    job_dir = workdir / "storm-job"
    db_path = workdir / "storm-server.db"
    with ServerProcess(db_path, rpm=RPM, rate_headers=False, seed=seed) as server:
        neighbour = Neighbour(server.base_url, per_second=NEIGHBOUR_SPEED * per_second, burst=True)
        with neighbour:
            _wait_until(lambda: neighbour.answers["429"] > 0, "the neighbour drained the bucket")
            job_started: list[float] = []

            def stop_later() -> None:
                # From the job's first request on (its preflight excluded), not its process start.
                _wait_until(
                    lambda: total_requests(server.stats()) - neighbour.sent > PREFLIGHT_READS + 1,
                    "the job sent its first writes",
                )
                job_started.append(time.time())
                time.sleep(scale.storm_drain_seconds)
                neighbour.stop()

            stopper = threading.Thread(target=stop_later, name="storm-stopper", daemon=True)
            stopper.start()
            out = run_child(
                ChildRequest(
                    workload="job",
                    source=source.model_dump(mode="json", by_alias=False),
                    job_dir=str(job_dir),
                    base_url=server.base_url,
                    concurrency=CONCURRENCY,
                    timeout=30.0,
                )
            )
            stopper.join(timeout=scale.storm_drain_seconds + 60)
        stats = server.stats()
        log = server.commit_log()
    store = ConversationStore.from_path(db_path)
    try:
        held = sorted(s.item_count for s in store.summaries(include_deleted=False) if s.item_count)
    finally:
        store.close()

    summary = out["summary"]
    counts = summary["conversations"]
    failed, migrated = counts["failed"], counts["migrated"]
    job_requests = total_requests(stats) - neighbour.sent
    job_429 = requests_with_status(stats, "429") - neighbour.answers["429"]
    surplus_items = stats["items_committed"] - sum(lengths)
    extra_conversations = len(held) - len(lengths)
    wrong_counts = sum(1 for got, want in zip(held, sorted(lengths), strict=False) if got != want)
    stopped_at = neighbour.stopped_at or 0.0
    after = sorted(float(record["at"]) for record in log if float(record["at"]) >= stopped_at)
    seconds_after = after[-1] - stopped_at if after else 0.0
    rate_after = len(after) / seconds_after if seconds_after > 0 else 0.0
    during = [r for r in log if job_started and job_started[0] <= float(r["at"]) < stopped_at]
    base = {
        "conversations": len(lengths),
        "messages_each": scale.storm_messages,
        "concurrency": CONCURRENCY,
        "rate_limit_rpm": RPM,
        "storm_seconds": scale.storm_drain_seconds,
        "migrated": migrated,
        "failed": failed,
        "job_requests": job_requests,
        "job_429": job_429,
        "job_429_share": job_429 / job_requests if job_requests else 0.0,
        "writes_during_storm": len(during),
        "neighbour_requests": neighbour.sent,
        "neighbour_429": neighbour.answers["429"],
        "errors": out["errors"],
    }
    return [
        Result(
            scenario="storm",
            name="conversations failed in a 429 storm",
            value=failed,
            unit="conversations",
            target="0 failed, every conversation migrated",
            met=failed == 0 and migrated == len(lengths),
            detail=base,
        ),
        Result(
            scenario="storm",
            name="items or conversations duplicated",
            value=max(0, surplus_items) + max(0, extra_conversations),
            unit="duplicates",
            target="0 (server's own database)",
            met=surplus_items == 0 and extra_conversations == 0 and wrong_counts == 0,
            detail={
                **base,
                "items_committed_minus_planned": surplus_items,
                "conversations_holding_items_minus_planned": extra_conversations,
                "conversations_with_a_wrong_item_count": wrong_counts,
                "possible_orphans": summary["possible_orphans"],
            },
        ),
        Result(
            scenario="storm",
            name="write rate after the storm",
            value=rate_after * 60,
            unit="requests/min",
            ratio=ratio(rate_after, per_second),
            reference=f"the server's limit R = {RPM}/min",
            target=">= 0.9 of R",
            met=rate_after >= 0.9 * per_second,
            detail={**base, "writes_after": len(after), "seconds_after": seconds_after},
        ),
    ]


def _wait_until(condition: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(POLL)
    raise RuntimeError(f"timed out waiting until {what}")
