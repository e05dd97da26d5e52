"""Replay throughput against the local server with injected latency, next to the ideal.

    .venv/bin/python bench/replay_throughput.py [--conversations 1000] [--items 30]
        [--latency-ms 50] [--concurrency 1 8 32] [--server process|embedded]

For each concurrency it runs a whole `migrate run` (plan, replay, state store, report) of a
synthetic source into a fresh local server and prints conversations/s, items/s and calls/s
beside the ideal `concurrency / latency` calls per second (each conversation takes one create
and ceil(items / 20) appends, strictly in sequence).

`--server process` (the default) runs the local server as `migrate serve` in its own process,
reached over loopback like a remote target (`--target openai --base-url`); `embedded` uses
`--target local`, whose server shares this process (and its GIL) with the client.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import tempfile
import time
from pathlib import Path

from migrate.config import build_job_config

if __package__ in (None, ""):
    # Run as a script (`python bench/...py`): make the repository root importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.server import ServerProcess
from migrate.jobs.models import RunConfig
from migrate.jobs.run import run_job
from migrate.replay.options import ReplayOptions
from migrate.replay.target import TargetConfig


def write_source(path: Path, *, conversations: int, items: int) -> None:
    """`conversations` Chat Completions conversations of `items` plain messages each."""
    with path.open("w", encoding="utf-8") as out:
        for number in range(conversations):
            messages = [
                {"role": "user" if turn % 2 == 0 else "assistant", "content": f"c{number} m{turn}"}
                for turn in range(items)
            ]
            out.write(json.dumps({"id": f"bench-{number}", "messages": messages}) + "\n")


def measure(
    source: Path, work: Path, *, concurrency: int, latency_ms: float, server: str
) -> dict[str, float]:
    """One run; returns the measured rates."""
    name = f"c{concurrency}"
    with contextlib.ExitStack() as stack:
        if server == "process":
            server_process = ServerProcess(work / f"{name}.db", latency_ms=latency_ms)
            base_url = stack.enter_context(server_process).base_url
            target = TargetConfig(kind="openai", base_url=base_url)
        else:
            target = TargetConfig(server_options={"latency_ms": latency_ms})
        config = RunConfig(
            job=build_job_config(source=str(source), job_file=None),
            job_dir=work / name,
            target=target,
            replay=ReplayOptions(concurrency=concurrency),
        )
        started = time.perf_counter()
        summary = run_job(config)
        elapsed = time.perf_counter() - started
    if summary.conversations.migrated != summary.conversations.total:
        raise SystemExit(f"not everything migrated: {summary.conversations}")
    return {
        "elapsed_s": elapsed,
        "conversations_per_s": summary.conversations.migrated / elapsed,
        "items_per_s": summary.items.landed / elapsed,
        "calls_per_s": summary.calls / elapsed,
        "calls": summary.calls,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=1000)
    parser.add_argument("--items", type=int, default=30)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--server", choices=["process", "embedded"], default="process")
    options = parser.parse_args()
    calls_per_conversation = 1 + math.ceil(options.items / 20)
    latency = options.latency_ms / 1000
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as directory:
        work = Path(directory)
        source = work / "source.jsonl"
        write_source(source, conversations=options.conversations, items=options.items)
        print(
            f"{options.conversations} conversations x {options.items} items, "
            f"{options.latency_ms:g} ms latency, {calls_per_conversation} calls per conversation, "
            f"{options.server} server"
        )
        header = f"{'conc':>5} {'conv/s':>9} {'ideal':>9} {'items/s':>9} {'ideal':>9} "
        header += f"{'calls/s':>9} {'ideal':>9} {'% ideal':>8} {'elapsed':>8}"
        print(header)
        for concurrency in options.concurrency:
            result = measure(
                source,
                work,
                concurrency=concurrency,
                latency_ms=options.latency_ms,
                server=options.server,
            )
            ideal_calls = concurrency / latency
            ideal_conversations = ideal_calls / calls_per_conversation
            share = 100 * result["calls_per_s"] / ideal_calls
            print(
                f"{concurrency:>5} {result['conversations_per_s']:>9.1f} "
                f"{ideal_conversations:>9.1f} {result['items_per_s']:>9.0f} "
                f"{ideal_conversations * options.items:>9.0f} {result['calls_per_s']:>9.1f} "
                f"{ideal_calls:>9.1f} {share:>7.0f}% {result['elapsed_s']:>7.1f}s",
                flush=True,
            )


if __name__ == "__main__":
    main()
