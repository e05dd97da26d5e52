"""The benchmark scenarios: calls, throughput, rate-limit use, faults, planning, disk, scale.

Every scenario generates its own seeded data under a work directory, runs the server (when it
needs one) as a `migrate serve` child process and each measured workload in another child
process (`bench.child`; `bench.scale_store` for the state store at scale), and returns
`Result`s whose ratios compare with a reference measured in the same run or with what the
protocol allows.

It is one module over 500 lines because it is one thing: the table of scenarios (`SCENARIOS`),
each a function of the same shape that `bench.run` calls by name.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from adapters.config import JsonSourceConfig, SqlSourceConfig
from bench.child import ChildRequest
from bench.data import (
    length_mix,
    lengths_for_total,
    write_chat_jsonl,
    write_sqlite_messages,
    write_tool_jsonl,
)
from bench.results import Result, ratio
from bench.server import (
    PREFLIGHT_READS,
    Neighbour,
    ServerProcess,
    requests_with_status,
    total_requests,
    window_rate,
)

ROOT = Path(__file__).resolve().parent.parent
MAX_ITEMS_PER_CALL = 20
LATENCY_MS = 50.0
THROUGHPUT_ITEMS = 100
"""Messages per conversation in the throughput runs: one create and five 20-item appends."""
PLANNING_TARGET = 20_000
"""Messages per second `plan` must reach on one core."""


class BenchError(Exception):
    """A workload failed; the message carries the child's stderr."""


class Scale(BaseModel):
    """How big each scenario runs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    call_conversations: int
    longest: int
    concurrencies: tuple[int, ...]
    throughput_seconds: float
    """Roughly how long each throughput measurement lasts."""
    sdk_concurrency: int | None
    """Also measure the typed SDK methods and the bare HTTP loop at this concurrency (None:
    skip), and judge `migrate run`'s client CPU per call there."""
    rpm: int
    rate_seconds: float
    """Seconds of the rate-limited run after the server's initial bucket is spent."""
    fault_conversations: int
    fault_limited_seconds: float
    """Roughly how long the fault run stays at its rate limit (so that it meets 429s)."""
    plan_sizes: tuple[int, int]
    sql_sizes: tuple[int, int]
    storm_conversations: int
    storm_messages: int
    storm_drain_seconds: float
    """Seconds another client drains the rate limit from the storm job's first request on."""
    store_sizes: tuple[int, ...]
    """Conversations of the jobs whose state store is measured at scale, smallest first."""
    store_rounds: int
    """Rounds of 25 runs of each timed statement of those jobs, half a second apart."""


SCALES: dict[str, Scale] = {
    "tiny": Scale(
        name="tiny",
        call_conversations=12,
        longest=60,
        concurrencies=(2,),
        throughput_seconds=1.0,
        sdk_concurrency=2,
        rpm=60,
        rate_seconds=5.0,
        fault_conversations=20,
        fault_limited_seconds=1.0,
        plan_sizes=(300, 1_200),
        sql_sizes=(300, 1_200),
        storm_conversations=12,
        storm_messages=40,
        storm_drain_seconds=2.0,
        store_sizes=(400, 800, 1_600),
        store_rounds=2,
    ),
    "quick": Scale(
        name="quick",
        call_conversations=60,
        longest=500,
        concurrencies=(1, 8, 32, 128),
        throughput_seconds=4.0,
        sdk_concurrency=32,
        rpm=600,
        rate_seconds=15.0,
        fault_conversations=150,
        fault_limited_seconds=8.0,
        plan_sizes=(20_000, 200_000),
        sql_sizes=(20_000, 200_000),
        storm_conversations=150,
        storm_messages=60,
        storm_drain_seconds=10.0,
        store_sizes=(3_000, 10_000, 30_000),
        store_rounds=10,
    ),
    "full": Scale(
        name="full",
        call_conversations=300,
        longest=500,
        concurrencies=(1, 8, 32, 128),
        throughput_seconds=12.0,
        sdk_concurrency=32,
        rpm=600,
        rate_seconds=60.0,
        fault_conversations=600,
        fault_limited_seconds=15.0,
        plan_sizes=(100_000, 1_000_000),
        sql_sizes=(100_000, 1_000_000),
        storm_conversations=150,
        storm_messages=100,
        storm_drain_seconds=20.0,
        store_sizes=(30_000, 100_000, 300_000),
        store_rounds=10,
    ),
}


def run_child(request: ChildRequest) -> dict[str, Any]:
    """Run one workload in a fresh interpreter; returns the JSON it prints."""
    path = os.environ.get("PYTHONPATH")
    env = {**os.environ, "PYTHONPATH": str(ROOT) + (os.pathsep + path if path else "")}
    return _last_json_line(
        [sys.executable, "-m", "bench.child", request.model_dump_json()],
        f"workload {request.workload}",
        env=env,
    )


def _last_json_line(
    command: list[str], what: str, *, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run `command` from the repository root; returns the JSON of its last line of output."""
    completed = subprocess.run(
        command, capture_output=True, text=True, env=env, cwd=ROOT, check=False
    )
    if completed.returncode != 0:
        raise BenchError(f"{what} exited with {completed.returncode}:\n" + completed.stderr[-4000:])
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def minimum_calls(lengths: list[int], *, create_with_items: bool = False) -> int:
    """The protocol's count: ceil(items / 20) appends per conversation, plus the empty create
    unless the create carries the first batch (`--create-with-items`)."""
    create = 0 if create_with_items else 1
    return sum(create + math.ceil(length / MAX_ITEMS_PER_CALL) for length in lengths if length)


def _source_dump(config: JsonSourceConfig | SqlSourceConfig) -> dict[str, Any]:
    return config.model_dump(mode="json", by_alias=False)


# --- 1. API calls per conversation -----------------------------------------------------------


def api_calls(scale: Scale, workdir: Path, *, seed: int) -> list[Result]:
    """Calls a fault-free run makes, against the minimum the protocol needs, without and with
    `--create-with-items` (same source, a server each), on plain messages and on a tool-heavy
    corpus whose function call pairs straddle the 20-item cuts."""
    lengths = length_mix(scale.call_conversations, seed=seed, longest=scale.longest)
    plain = write_chat_jsonl(workdir / "calls.jsonl", lengths, seed=seed)
    tools, corpus = write_tool_jsonl(workdir / "calls-tools.jsonl", lengths, seed=seed)
    results: list[Result] = []
    for label, source in (("", plain), ("tool-heavy, ", tools)):
        for create_with_items in (False, True):
            name = "calls-" + ("tools" if label else "plain")
            name += "-with-items" if create_with_items else ""
            with ServerProcess(workdir / f"{name}-server.db", seed=seed) as server:
                out = run_child(
                    ChildRequest(
                        workload="job",
                        source=_source_dump(source),
                        job_dir=str(workdir / f"{name}-job"),
                        base_url=server.base_url,
                        concurrency=8,
                        create_with_items=create_with_items,
                    )
                )
                stats = server.stats()
            result = _calls_result(out["summary"], stats, lengths, create_with_items, label)
            if label:
                result.detail.update(corpus.model_dump(exclude={"lengths"}))
            results.append(result)
    return results


def _calls_result(
    summary: dict[str, Any],
    stats: dict[str, Any],
    lengths: list[int],
    create_with_items: bool,
    label: str,
) -> Result:
    minimum = minimum_calls(lengths, create_with_items=create_with_items)
    served = total_requests(stats) - PREFLIGHT_READS
    conversations = summary["conversations"]
    complete = (
        conversations["migrated"] == len(lengths)
        and summary["items"]["landed"] == sum(lengths)
        and stats["items_committed"] == sum(lengths)
    )
    exact = served == minimum and summary["calls"] == minimum
    variant = ", --create-with-items" if create_with_items else ""
    formula = "ceil(items/20)" if create_with_items else "ceil(items/20)+1"
    span = f"lengths {min(lengths)}..{max(lengths)}"
    return Result(
        scenario="calls",
        name=f"API calls per conversation ({label}{span}{variant})",
        value=served / len(lengths),
        unit="calls/conversation",
        ratio=ratio(served, minimum),
        reference=f"protocol minimum {formula}",
        target="ratio 1.000 (0 extra calls)",
        met=exact and complete,
        detail={
            "conversations": len(lengths),
            "items": sum(lengths),
            "tool_heavy": bool(label),
            "create_with_items": create_with_items,
            "minimum_calls": minimum,
            "minimum_calls_empty_create": minimum_calls(lengths),
            "server_requests": served,
            "job_calls": summary["calls"],
            "extra_calls": served - minimum,
            "migrated": conversations["migrated"],
            "items_committed": stats["items_committed"],
            "unread_item_ids": summary["items"].get("unread_ids", 0),
            "requests_by_route": stats["requests"],
        },
    )


# --- 2. throughput against latency -------------------------------------------------------------


def _measure_send(
    server: ServerProcess,
    workload: str,
    source: JsonSourceConfig,
    job_dir: Path,
    concurrency: int,
) -> dict[str, Any]:
    """One workload against `server`; its rate comes from the server's own commit log."""
    first_seq = server.last_seq()
    requests_before = total_requests(server.stats())
    cpu_before = server.cpu_seconds()
    out = run_child(
        ChildRequest(
            workload=workload,
            source=_source_dump(source),
            job_dir=str(job_dir),
            base_url=server.base_url,
            concurrency=concurrency,
        )
    )
    server_cpu = server.cpu_seconds() - cpu_before
    log = server.commit_log(after=first_seq)
    rate, commits, seconds = window_rate(log)
    times = sorted(float(record["at"]) for record in log)
    window_cpu = cpu_between(out["cpu_samples"], times[0], times[-1]) if len(times) >= 2 else 0.0
    calls = total_requests(server.stats()) - requests_before
    if workload == "job":
        calls -= PREFLIGHT_READS
    shutil.rmtree(job_dir, ignore_errors=True)
    return {
        "calls_per_second": rate,
        "window_seconds": seconds,
        "calls": calls,
        "commits": commits,
        "client_seconds": out["seconds"],
        "client_cpu_seconds": out["cpu_seconds"],
        "client_cpu_ms_per_call": 1000 * out["cpu_seconds"] / max(1, calls),
        "client_cpu_ms_per_call_in_window": 1000 * window_cpu / max(1, commits - 1),
        "server_cpu_ms_per_call": 1000 * server_cpu / max(1, calls),
        "client_cpu_share": out["cpu_seconds"] / out["seconds"] if out["seconds"] else 0.0,
        "server_cpu_share": server_cpu / seconds if seconds else 0.0,
        "client_peak_rss_mb": out["peak_rss_mb"],
    }


def cpu_between(samples: list[list[float]], start: float, end: float) -> float:
    """CPU seconds a child spent between two wall-clock times (samples linearly interpolated)."""

    def at(moment: float) -> float:
        before = [sample for sample in samples if sample[0] <= moment]
        after = [sample for sample in samples if sample[0] >= moment]
        if not before:
            return samples[0][1]
        if not after:
            return samples[-1][1]
        (t0, c0), (t1, c1) = before[-1], after[0]
        return c0 if t1 == t0 else c0 + (c1 - c0) * (moment - t0) / (t1 - t0)

    return at(end) - at(start)


def throughput(scale: Scale, workdir: Path, *, seed: int) -> list[Result]:
    """Calls/s at each concurrency against the ideal (concurrency / latency) and the bare loop.

    The machine's CPU limit is the first concurrency at which even the bare loop scales below
    0.85 of linear (its rate per unit of concurrency, measured at the lowest concurrency).
    """
    calls_per_conversation = 1 + THROUGHPUT_ITEMS // MAX_ITEMS_PER_CALL
    # Sized for what two cores can do (about 200 calls/s), not for the ideal, so that the
    # CPU-bound runs do not last minutes.
    plausible_rate = 200.0
    Sent = dict[str, Any]
    measured: list[tuple[int, int, Sent, Sent, Sent | None, Sent | None]] = []
    with ServerProcess(
        workdir / "throughput-server.db", latency_ms=LATENCY_MS, seed=seed
    ) as server:
        for concurrency in scale.concurrencies:
            ideal = concurrency / (LATENCY_MS / 1000)
            conversations = max(
                2 * concurrency,
                math.ceil(
                    min(ideal, plausible_rate) * scale.throughput_seconds / calls_per_conversation
                ),
            )
            source = write_chat_jsonl(
                workdir / f"throughput-{concurrency}.jsonl",
                [THROUGHPUT_ITEMS] * conversations,
                seed=seed,
            )
            bare = _measure_send(server, "bare", source, workdir / "bare-job", concurrency)
            job = _measure_send(server, "job", source, workdir / "run-job", concurrency)
            sdk = http = None
            if concurrency == scale.sdk_concurrency:
                sdk = _measure_send(server, "sdk", source, workdir / "sdk-job", concurrency)
                http = _measure_send(server, "http", source, workdir / "http-job", concurrency)
            measured.append((concurrency, conversations, bare, job, sdk, http))

    results: list[Result] = []
    lowest, _, first_bare, _, _, _ = measured[0]
    per_unit = first_bare["calls_per_second"] / lowest
    cpu_limit_at: int | None = None
    for concurrency, conversations, bare, job, sdk, http in measured:
        ideal = concurrency / (LATENCY_MS / 1000)
        bare_rate, job_rate = bare["calls_per_second"], job["calls_per_second"]
        scaling = bare_rate / (per_unit * concurrency) if per_unit else 0.0
        cpu_bound = scaling < 0.85
        if cpu_bound and cpu_limit_at is None:
            cpu_limit_at = concurrency
        detail = {
            "conversations": conversations,
            "ideal_calls_per_second": ideal,
            "bare_scaling_vs_linear": scaling,
            "beyond_cpu_limit": cpu_bound,
        }
        results.append(
            Result(
                scenario="throughput",
                name=f"migrate run, concurrency {concurrency}, 50 ms latency",
                value=job_rate,
                unit="calls/s",
                ratio=job_rate / ideal,
                reference=f"ideal {ideal:.0f} calls/s (concurrency / latency)",
                target=">= 0.85 of ideal below the CPU limit",
                met=None if cpu_bound else job_rate >= 0.85 * ideal,
                detail={**detail, **job},
            )
        )
        results.append(
            Result(
                scenario="throughput",
                name=f"bare SDK loop, concurrency {concurrency}",
                value=bare_rate,
                unit="calls/s",
                ratio=bare_rate / ideal,
                reference=f"ideal {ideal:.0f} calls/s",
                detail={**detail, **bare},
            )
        )
        results.append(
            Result(
                scenario="throughput",
                name=f"migrate run vs bare loop, concurrency {concurrency}",
                value=job_rate,
                unit="calls/s",
                ratio=ratio(job_rate, bare_rate),
                reference="bare SDK loop (no state store)",
                target=">= 0.8 of the bare loop",
                met=job_rate >= 0.8 * bare_rate,
                detail={
                    "client_cpu_ms_per_call": job["client_cpu_ms_per_call"],
                    "bare_client_cpu_ms_per_call": bare["client_cpu_ms_per_call"],
                },
            )
        )
        if sdk is not None:
            results.append(
                Result(
                    scenario="throughput",
                    name=f"typed SDK methods, concurrency {concurrency}",
                    value=sdk["calls_per_second"],
                    unit="calls/s",
                    ratio=ratio(sdk["calls_per_second"], bare_rate),
                    reference="bare SDK loop (no request transform)",
                    detail={**detail, **sdk},
                )
            )
        if http is not None:
            results += _cpu_per_call(concurrency, detail, job, bare, http)
    limit = (
        f"concurrency {cpu_limit_at}"
        if cpu_limit_at is not None
        else f"not reached up to concurrency {scale.concurrencies[-1]}"
    )
    results.append(
        Result(
            scenario="throughput",
            name=f"CPU limit of this machine: {limit}",
            value=cpu_limit_at or 0,
            unit="concurrency",
            detail={
                "rule": "first concurrency where the bare loop scales below 0.85 of linear",
                "bare_calls_per_second_per_unit_concurrency": per_unit,
            },
        )
    )
    return results


CPU_PER_CALL_TARGET_MS = 2.0
"""Client CPU per 20-item call of `migrate run`, or 1.3x the bare SDK loop's if that is more.

Judged while sending (between the server's first and last commit), for `migrate run` and the
loops alike: that leaves out what a job costs once whatever its size (start-up, loading the
token encoding, the report's last write), which a 2,400-call run cannot amortise. That fixed
cost is reported beside it, in CPU seconds a job."""
CPU_PER_CALL_OF_BARE = 1.3


def _cpu_per_call(
    concurrency: int,
    detail: dict[str, Any],
    job: dict[str, Any],
    bare: dict[str, Any],
    http: dict[str, Any],
) -> list[Result]:
    """Client CPU per call of `migrate run` against the bare SDK and bare HTTP loops."""
    window, whole = "client_cpu_ms_per_call_in_window", "client_cpu_ms_per_call"
    job_ms, bare_ms, http_ms = job[window], bare[window], http[window]
    fixed_seconds = job["client_cpu_seconds"] - job_ms * job["calls"] / 1000
    allowed = max(CPU_PER_CALL_TARGET_MS, CPU_PER_CALL_OF_BARE * bare_ms)
    return [
        Result(
            scenario="throughput",
            name=f"bare HTTP loop, concurrency {concurrency}",
            value=http["calls_per_second"],
            unit="calls/s",
            ratio=ratio(http["calls_per_second"], bare["calls_per_second"]),
            reference="bare SDK loop",
            detail={**detail, **http},
        ),
        Result(
            scenario="throughput",
            name=f"client CPU per call while sending, concurrency {concurrency}",
            value=job_ms,
            unit="ms/call",
            ratio=ratio(job_ms, bare_ms),
            reference=f"bare SDK loop {bare_ms:.2f} ms/call (bare HTTP loop {http_ms:.2f}; "
            f"whole process: {job[whole]:.2f} / SDK {bare[whole]:.2f} / HTTP {http[whole]:.2f}; "
            f"fixed cost of the job {fixed_seconds:.2f} s)",
            target=f"<= {CPU_PER_CALL_TARGET_MS:g} ms or <= {CPU_PER_CALL_OF_BARE:g}x the bare "
            f"SDK loop ({allowed:.2f} ms here)",
            met=job_ms <= allowed,
            detail={
                "migrate_run_ms_per_call": job_ms,
                "bare_sdk_ms_per_call": bare_ms,
                "bare_http_ms_per_call": http_ms,
                "of_bare_http": ratio(job_ms, http_ms),
                "job_fixed_cpu_seconds": fixed_seconds,
                "whole_process": {
                    "migrate_run": job[whole],
                    "bare_sdk": bare[whole],
                    "bare_http": http[whole],
                },
            },
        ),
    ]


# --- 3. rate-limit use -------------------------------------------------------------------------


def sustained_start(times: list[float], rpm: int) -> int:
    """Index of the first commit after the server's initial bucket (`rpm` tokens) ran dry.

    The bucket starts full and refills at rpm/60 per second, so by the k-th request (from 0)
    it is empty when k reaches rpm plus the refill since the first one. A client that tracks
    the limit well stays just below that line, hence the slack of 5% of the bucket.
    """
    slack = max(2.0, 0.05 * rpm)
    for index, at in enumerate(times):
        if index >= rpm + (at - times[0]) * rpm / 60 - slack:
            return index
    return len(times)


def rate_limit(scale: Scale, workdir: Path, *, seed: int) -> list[Result]:
    """A run against a server limited to `rpm`: achieved requests/minute and 429s."""
    rpm = scale.rpm
    # the initial bucket drains at a loaded machine's client speed, after a start-up ramp
    burst_seconds = rpm / 30 + 3
    calls = rpm + rpm / 60 * (burst_seconds + scale.rate_seconds)
    calls_per_conversation = 1 + THROUGHPUT_ITEMS // MAX_ITEMS_PER_CALL
    conversations = math.ceil(calls / calls_per_conversation)
    source = write_chat_jsonl(workdir / "rate.jsonl", [THROUGHPUT_ITEMS] * conversations, seed=seed)
    with ServerProcess(
        workdir / "rate-server.db", latency_ms=LATENCY_MS, rpm=rpm, seed=seed
    ) as server:
        out = run_child(
            ChildRequest(
                workload="job",
                source=_source_dump(source),
                job_dir=str(workdir / "rate-job"),
                base_url=server.base_url,
                concurrency=32,
            )
        )
        stats = server.stats()
        log = server.commit_log()
    times = sorted(float(record["at"]) for record in log)
    start = sustained_start(times, rpm)
    rate, commits, seconds = window_rate(log, skip=start)
    achieved = rate * 60
    served = total_requests(stats)
    limited = requests_with_status(stats, "429")
    summary = out["summary"]
    failed = summary["conversations"]["failed"]
    overall_rate, _, overall_seconds = window_rate(log)
    share_429 = limited / served if served else 0.0
    return [
        Result(
            scenario="rate_limit",
            name=f"sustained requests/minute at a {rpm}/min limit",
            value=achieved,
            unit="requests/min",
            ratio=ratio(achieved, rpm),
            reference=f"the server's limit R = {rpm}/min",
            target=">= 0.9 of R, 429s < 1%, 0 failed",
            met=achieved >= 0.9 * rpm and share_429 < 0.01 and failed == 0,
            detail={
                "sustained_seconds": seconds,
                "sustained_commits": commits,
                "burst_commits": start,
                "overall_requests_per_minute": overall_rate * 60,
                "overall_seconds": overall_seconds,
                "requests": served,
                "rate_limited_429": limited,
                "failed_conversations": failed,
                "migrated": summary["conversations"]["migrated"],
            },
        ),
        Result(
            scenario="rate_limit",
            name="429 answers",
            value=limited,
            unit="requests",
            ratio=share_429,
            reference=f"all {served} requests",
            target="< 1% of requests",
            met=share_429 < 0.01,
        ),
    ]


# --- 4. faults and verify ----------------------------------------------------------------------


def faults(scale: Scale, workdir: Path, *, seed: int) -> list[Result]:
    """5% of writes commit then drop the connection, under a shared rate limit; then `verify`.

    The 429s come from a neighbour spending a third of the same limit: the job's limiter keeps
    a lone job clear of 429s, so it takes another client of the account to provoke them.
    """
    lengths = length_mix(scale.fault_conversations, seed=seed + 1, longest=200)
    source = write_chat_jsonl(workdir / "faults.jsonl", lengths, seed=seed)
    minimum = minimum_calls(lengths)
    # A limit the job outruns after a few seconds, with a third of it spent by the neighbour.
    rpm = max(60, int(minimum * 1.05 / (1 + scale.fault_limited_seconds / 60)))
    job_dir = workdir / "faults-job"
    with ServerProcess(
        workdir / "faults-server.db",
        rpm=rpm,
        fault_rates={"drop_after_commit": 0.05},
        seed=seed,
    ) as server:
        with Neighbour(server.base_url, per_second=rpm / 60 / 3) as neighbour:
            out = run_child(
                ChildRequest(
                    workload="job",
                    source=_source_dump(source),
                    job_dir=str(job_dir),
                    base_url=server.base_url,
                    concurrency=16,
                    timeout=10.0,
                    # the server drops the connection after it applied the write: nothing
                    # lands late, so the conversations need not wait the default 20 s
                    settle=1.0,
                )
            )
        after_run = server.stats()
        checked = run_child(ChildRequest(workload="verify", job_dir=str(job_dir)))
    summary = out["summary"]
    served = total_requests(after_run) - neighbour.sent - PREFLIGHT_READS
    limited = requests_with_status(after_run, "429") - neighbour.answers["429"]
    problems: dict[str, int] = checked["problems"]
    missing = problems.get("missing", 0)
    duplicated = problems.get("duplicated", 0) + problems.get("extra", 0)
    surplus_items = after_run["items_committed"] - sum(lengths)
    drops = after_run["faults"].get("drop_after_commit", 0)
    migrated = summary["conversations"]["migrated"]
    extra = served - minimum
    reads = sum(
        count
        for route, by_status in after_run["requests"].items()
        if route.startswith("GET") and route.endswith("/items")
        for count in by_status.values()
    )
    base = {
        "conversations": len(lengths),
        "migrated": migrated,
        "failed": summary["conversations"]["failed"],
        "verify": checked,
        "drop_after_commit_injected": drops,
        "rate_limit_rpm": rpm,
        "rate_limited_429": limited,
        "neighbour_requests": neighbour.sent,
        "neighbour_429": neighbour.answers["429"],
        "errors": out["errors"],
    }
    return [
        Result(
            scenario="faults",
            name="items missing or duplicated after verify",
            value=missing + duplicated,
            unit="items",
            target="0 missing, 0 duplicated, every conversation migrated",
            met=missing == 0
            and duplicated == 0
            and surplus_items == 0
            and migrated == len(lengths)
            and checked["differing"] == 0,
            detail={
                **base,
                "missing": missing,
                "duplicated_or_extra": duplicated,
                "items_committed_minus_planned": surplus_items,
            },
        ),
        Result(
            scenario="faults",
            name=f"extra calls for {drops} drops and {limited} 429s",
            value=extra,
            unit="calls",
            ratio=ratio(served, minimum),
            reference=f"protocol minimum {minimum} calls",
            detail={
                **base,
                "server_requests": served,
                "minimum_calls": minimum,
                "job_calls": summary["calls"],
                "reconciliation_reads": reads,
                "retries": summary["retries"],
                "reconciliations": summary["reconciliations"],
                "possible_orphans": summary["possible_orphans"],
                "conversations_created_minus_migrated": after_run["conversations_created"]
                - migrated,
                "extra_calls_per_drop": extra / drops if drops else None,
            },
        ),
    ]


# --- 5. memory and planning speed --------------------------------------------------------------


def _plan_once(
    label: str,
    messages: int,
    workdir: Path,
    write: Callable[[Path, list[int]], JsonSourceConfig | SqlSourceConfig],
    suffix: str,
    *,
    seed: int,
    read_baseline: bool,
    without_counting: bool = False,
) -> dict[str, Any]:
    lengths = lengths_for_total(messages, seed=seed)
    data = workdir / f"{label}-{messages}{suffix}"
    source = write(data, lengths)
    job_dir = workdir / f"{label}-{messages}-plan"
    out = run_child(
        ChildRequest(workload="plan", source=_source_dump(source), job_dir=str(job_dir))
    )
    out["messages"] = messages
    out["source_conversations"] = len(lengths)
    if read_baseline:
        out["read"] = run_child(ChildRequest(workload="read", source=_source_dump(source)))
    if without_counting:
        shutil.rmtree(job_dir, ignore_errors=True)
        out["uncounted"] = run_child(
            ChildRequest(
                workload="plan",
                source=_source_dump(source),
                job_dir=str(job_dir),
                count_tokens=False,
            )
        )
    shutil.rmtree(job_dir, ignore_errors=True)
    data.unlink()
    return out


def planning(scale: Scale, workdir: Path, *, seed: int) -> list[Result]:
    """`plan` over a small and a large JSONL file and SQLite table: peak RSS and messages/s."""
    results: list[Result] = []
    kinds: list[
        tuple[
            str,
            tuple[int, int],
            Callable[[Path, list[int]], JsonSourceConfig | SqlSourceConfig],
            str,
        ]
    ] = [
        ("jsonl", scale.plan_sizes, lambda p, n: write_chat_jsonl(p, n, seed=seed), ".jsonl"),
        ("sqlite", scale.sql_sizes, lambda p, n: write_sqlite_messages(p, n, seed=seed), ".db"),
    ]
    for label, sizes, write, suffix in kinds:
        runs = [
            _plan_once(
                label,
                size,
                workdir,
                write,
                suffix,
                seed=seed,
                read_baseline=size == sizes[-1],
                without_counting=size == sizes[-1] and label == "jsonl",
            )
            for size in sizes
        ]
        for run in runs:
            if run["conversations"]["failed"] or run["items"] != run["messages"]:
                raise BenchError(f"plan of {label} {run['messages']} went wrong: {run}")
            speed = run["messages"] / run["seconds"]
            results.append(
                Result(
                    scenario="planning",
                    name=f"plan {run['messages']:,} messages ({label})",
                    value=speed,
                    unit="messages/s",
                    ratio=speed / PLANNING_TARGET,
                    reference=f"target {PLANNING_TARGET:,} messages/s",
                    target=">= 1.0",
                    met=speed >= PLANNING_TARGET,
                    detail={
                        "seconds": run["seconds"],
                        "messages_per_cpu_second": run["messages"] / run["cpu_seconds"],
                        "peak_rss_mb": run["peak_rss_mb"],
                        "peak_rss_mb_after_imports": run["peak_rss_mb_before"],
                        "conversations": run["source_conversations"],
                        "api_calls": run["api_calls"],
                        "tokens_counted": run["tokens"],
                    },
                )
            )
        small, large = runs
        growth = large["peak_rss_mb"] / small["peak_rss_mb"]
        results.append(
            Result(
                scenario="planning",
                name=f"peak RSS, {large['messages']:,} vs {small['messages']:,} messages ({label})",
                value=large["peak_rss_mb"],
                unit="MiB",
                ratio=growth,
                reference=f"peak at {small['messages']:,} ({small['peak_rss_mb']:.0f} MiB)",
                target="<= 1.5",
                met=growth <= 1.5,
            )
        )
        if "uncounted" in large:
            uncounted = large["uncounted"]
            bare_speed = large["messages"] / uncounted["seconds"]
            results.append(
                Result(
                    scenario="planning",
                    name=f"token counting cost, {large['messages']:,} messages ({label})",
                    value=large["messages"] / large["seconds"],
                    unit="messages/s",
                    ratio=ratio(uncounted["seconds"], large["seconds"]),
                    reference=f"plan without counting ({bare_speed:,.0f} messages/s)",
                    detail={
                        "seconds_with": large["seconds"],
                        "seconds_without": uncounted["seconds"],
                        "cpu_seconds_with": large["cpu_seconds"],
                        "cpu_seconds_without": uncounted["cpu_seconds"],
                        "tokens_counted": large["tokens"],
                        "tokens_per_second": large["tokens"] / large["seconds"],
                    },
                )
            )
        read = large["read"]
        read_speed = large["messages"] / read["seconds"]
        results.append(
            Result(
                scenario="planning",
                name=f"source read alone, {large['messages']:,} messages ({label})",
                value=read_speed,
                unit="messages/s",
                ratio=ratio(read["seconds"], large["seconds"]),
                reference="share of plan time spent reading the source",
                detail={"seconds": read["seconds"], "peak_rss_mb": read["peak_rss_mb"]},
            )
        )
    return results


# --- 6. disk a job needs -----------------------------------------------------------------------

DISK_ITEMS = 10
"""Items per conversation of the disk measurement (short chat messages)."""


def disk(scale: Scale, workdir: Path, *, seed: int) -> list[Result]:
    """Bytes a job directory and a dry run need per conversation of 10 items, per file; and a
    job directory with `--compress` (its ratio: compressed over plain)."""
    conversations = scale.call_conversations * 20
    source = write_chat_jsonl(workdir / "disk.jsonl", [DISK_ITEMS] * conversations, seed=seed)
    plan_dir = workdir / "disk-plan"
    measured: dict[bool, tuple[dict[str, int], int, int]] = {}
    for compress in (False, True):
        job_dir = workdir / ("disk-job-compressed" if compress else "disk-job")
        server_db = workdir / ("disk-server-compressed.db" if compress else "disk-server.db")
        with ServerProcess(server_db, seed=seed) as server:
            out = run_child(
                ChildRequest(
                    workload="job",
                    source=_source_dump(source),
                    job_dir=str(job_dir),
                    base_url=server.base_url,
                    concurrency=16,
                    compress=compress,
                )
            )
            server_bytes = _size(server.db_path)
        files = {path.name: _size(path) for path in sorted(job_dir.iterdir()) if path.is_file()}
        measured[compress] = (files, server_bytes, out["summary"]["conversations"]["migrated"])
    run_child(ChildRequest(workload="plan", source=_source_dump(source), job_dir=str(plan_dir)))
    planned = {path.name: _size(path) for path in sorted(plan_dir.iterdir()) if path.is_file()}
    per_million = 1_000_000 / conversations
    files, server_bytes, migrated = measured[False]
    job_bytes = sum(files.values())
    packed_files, _, packed_migrated = measured[True]
    packed_bytes = sum(packed_files.values())
    return [
        Result(
            scenario="disk",
            name=f"job directory per million conversations of {DISK_ITEMS} items",
            value=job_bytes * per_million / 1e9,
            unit="GB",
            ratio=ratio(job_bytes + server_bytes, job_bytes),
            reference="with the local target's database beside it (a rehearsal)",
            detail={
                "conversations": conversations,
                "migrated": migrated,
                "files_bytes": files,
                "local_server_bytes": server_bytes,
                "plan_files_bytes": planned,
                "plan_gb_per_million": sum(planned.values()) * per_million / 1e9,
            },
        ),
        Result(
            scenario="disk",
            name=f"job directory per million conversations of {DISK_ITEMS} items, --compress",
            value=packed_bytes * per_million / 1e9,
            unit="GB",
            ratio=ratio(packed_bytes, job_bytes),
            reference="the plain job directory",
            detail={
                "conversations": conversations,
                "migrated": packed_migrated,
                "files_bytes": packed_files,
            },
        ),
    ]


def _size(path: Path) -> int:
    return path.stat().st_size


# --- 7. the state store at scale ---------------------------------------------------------------

STORE_FLAT = 1.3
"""How much a figure per call or per conversation may grow from the smallest job to the largest."""
STORE_REPORT_SECONDS = 10.0
STORE_FIGURES = (
    ("journal_cpu_ms_per_call", "journal CPU per call", "ms"),
    ("renewal_min_ms", "lease renewal, 32 claims, fastest run", "ms"),
    ("claim_min_ms", "claim of 32, fastest run", "ms"),
    ("planner_look_min_ms", "planner's bounded look, fastest run", "ms"),
    ("job_dir_gb_per_million", "job directory per million conversations", "GB"),
    ("state_db_gb_per_million", "state.db per million conversations", "GB"),
)


def state_store(scale: Scale, workdir: Path, *, seed: int) -> list[Result]:
    """The state store's per-call and periodic costs and size at three job sizes, each job
    half landed (`bench.scale_store`, a fresh process per size), against the smallest; and
    the end of the largest job's report."""
    del seed  # the jobs are built from fixed plans
    measured = [_scale_store_child(size, scale.store_rounds, workdir) for size in scale.store_sizes]
    smallest, largest = measured[0], measured[-1]
    sizes = [figures["conversations"] for figures in measured]
    results = []
    for key, name, unit in STORE_FIGURES:
        ratios = [figures[key] / smallest[key] for figures in measured]
        results.append(
            Result(
                scenario="scale",
                name=f"{name}, {sizes[-1]:,} conversations",
                value=largest[key],
                unit=unit,
                ratio=ratios[-1],
                reference=f"the job of {sizes[0]:,} conversations",
                target=f"every size <= {STORE_FLAT}x the smallest",
                met=max(ratios) <= STORE_FLAT,
                detail={
                    "sizes": sizes,
                    "values": [figures[key] for figures in measured],
                    "ratios": ratios,
                },
            )
        )
    results.append(
        Result(
            scenario="scale",
            name=f"end of the job's report, {sizes[-1]:,} conversations",
            value=largest["report_s"],
            unit="s",
            ratio=ratio(largest["report_s"], smallest["report_s"]),
            reference=f"the job of {sizes[0]:,} conversations",
            target=f"< {STORE_REPORT_SECONDS:g} s",
            met=largest["report_s"] < STORE_REPORT_SECONDS,
            detail={"sizes": sizes, "measured": measured},
        )
    )
    return results


def _scale_store_child(conversations: int, rounds: int, workdir: Path) -> dict[str, Any]:
    return _last_json_line(
        [
            sys.executable,
            str(ROOT / "bench" / "scale_store.py"),
            "--conversations",
            str(conversations),
            "--rounds",
            str(rounds),
            "--json",
            "--workdir",
            str(workdir),
        ],
        f"scale_store at {conversations}",
    )


def storm(scale: Scale, workdir: Path, *, seed: int) -> list[Result]:
    """A 429 storm from another client of the account, then the job alone (`bench.storm`)."""
    from bench.storm import storm as run_storm  # bench.storm builds on this module

    return run_storm(scale, workdir, seed=seed)


SCENARIOS: dict[str, Callable[..., list[Result]]] = {
    "calls": api_calls,
    "throughput": throughput,
    "rate_limit": rate_limit,
    "faults": faults,
    "storm": storm,
    "planning": planning,
    "disk": disk,
    "scale": state_store,
}
