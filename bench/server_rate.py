"""How many 20-item `items.create` calls per second the local server sustains.

Starts `migrate serve` in a separate process (or uses `--url`), then drives it from this process
with concurrent async writers, each appending 20-item batches to its own conversation, and
prints calls/s, items/s and latency percentiles. The client sends prepared JSON bodies so that
the measurement is of the server, not of the SDK's request transform.

    .venv/bin/python bench/server_rate.py --calls 4000 --concurrency 16
    .venv/bin/python bench/server_rate.py --client sdk     # through AsyncOpenAI.post
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2
from openai import AsyncOpenAI


def batch_body(worker: int, call: int) -> bytes:
    items = [
        {
            "type": "message",
            "role": "user" if n % 2 == 0 else "assistant",
            "content": f"worker {worker} call {call} item {n}: " + "lorem ipsum " * 8,
        }
        for n in range(20)
    ]
    return json.dumps({"items": items}).encode()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_server(db: Path) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "migrate", "serve", "--port", str(port), "--db", str(db)],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stderr is not None
    line = process.stderr.readline()
    if "Conversations API at" not in line:
        process.kill()
        raise SystemExit(f"server did not start: {line}")
    return process, f"http://127.0.0.1:{port}/v1"


async def run_httpx(base_url: str, calls: int, concurrency: int) -> list[float]:
    latencies: list[float] = []
    limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Authorization": "Bearer bench", "Content-Type": "application/json"}
    async with httpx2.AsyncClient(base_url=base_url, headers=headers, limits=limits) as client:
        per_worker = calls // concurrency

        async def worker(index: int) -> None:
            created = await client.post("/conversations", content=b"{}")
            path = f"/conversations/{created.json()['id']}/items"
            for call in range(per_worker):
                body = batch_body(index, call)
                started = time.perf_counter()
                response = await client.post(path, content=body)
                latencies.append(time.perf_counter() - started)
                response.raise_for_status()

        await asyncio.gather(*(worker(index) for index in range(concurrency)))
    return latencies


async def run_sdk(base_url: str, calls: int, concurrency: int) -> list[float]:
    latencies: list[float] = []
    async with AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0) as client:
        per_worker = calls // concurrency

        async def worker(index: int) -> None:
            conversation = await client.conversations.create()
            path = f"/conversations/{conversation.id}/items"
            for call in range(per_worker):
                body: Any = json.loads(batch_body(index, call))
                started = time.perf_counter()
                await client.post(path, body=body, cast_to=httpx2.Response)
                latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(worker(index) for index in range(concurrency)))
    return latencies


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) used so far by a process, where /proc exists."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--client", choices=["httpx", "sdk"], default="httpx")
    parser.add_argument("--url", help="Use a running server (base URL with /v1).")
    args = parser.parse_args()

    process: subprocess.Popen[str] | None = None
    with tempfile.TemporaryDirectory(prefix="server-rate-") as tmp:
        if args.url:
            base_url = args.url
        else:
            process, base_url = start_server(Path(tmp) / "bench.db")
        try:
            runner = run_httpx if args.client == "httpx" else run_sdk
            cpu_before = cpu_seconds(process.pid) if process else None
            started = time.perf_counter()
            latencies = asyncio.run(runner(base_url, args.calls, args.concurrency))
            elapsed = time.perf_counter() - started
            cpu_after = cpu_seconds(process.pid) if process else None
        finally:
            if process is not None:
                process.send_signal(signal.SIGINT)
                process.communicate(timeout=30)
    done = len(latencies)
    cut = statistics.quantiles(latencies, n=100)
    print(
        f"{done} calls x 20 items, {args.concurrency} writers, client {args.client}: "
        f"{done / elapsed:.0f} calls/s, {done * 20 / elapsed:.0f} items/s; "
        f"latency p50 {cut[49] * 1000:.1f} ms, p99 {cut[98] * 1000:.1f} ms "
        f"({os.cpu_count()} cores, server and client on the same machine)"
    )
    if cpu_before is not None and cpu_after is not None:
        per_call = (cpu_after - cpu_before) / done
        print(
            f"server CPU: {per_call * 1000:.2f} ms per call, i.e. at most "
            f"{1 / per_call:.0f} calls/s per fully available core"
        )


if __name__ == "__main__":
    main()
