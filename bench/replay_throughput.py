"""Replay throughput against the local server with injected latency, next to the ideal.

    .venv/bin/python bench/replay_throughput.py [--conversations 1000] [--items 30]
        [--latency-ms 50] [--concurrency 1 8 32] [--processes 1 2] [--server process|embedded]

For each concurrency (and number of processes) it runs a whole `migrate run` (plan, replay,
state store, report) of a synthetic source into a fresh local server and prints
conversations/s, items/s and calls/s beside the ideal `concurrency / latency` calls per second
(each conversation takes one create and ceil(items / 20) appends, strictly in sequence).

`--processes 1 2` runs each concurrency once per number of worker processes (`migrate run
--processes N` on the job's default SQLite state store). The concurrency is the total in
flight, split evenly between the processes, so the ideal stays the same and the ratio to one
process shows what a second interpreter (a second GIL) adds. With `--server process`, the
"sending" rate counts the server's committed writes between its first and last commit, which
leaves out interpreter start-up, planning ahead of the first call and the report.

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

from bench.server import ServerProcess, window_rate
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
    source: Path,
    work: Path,
    *,
    concurrency: int,
    latency_ms: float,
    server: str,
    processes: int = 1,
) -> dict[str, float]:
    """One run; returns the measured rates."""
    name = f"c{concurrency}-p{processes}"
    name += f"-{sum(1 for path in work.glob(f'{name}-*') if path.is_dir())}"  # run number
    sending = 0.0
    with contextlib.ExitStack() as stack:
        server_process: ServerProcess | None = None
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
            replay=ReplayOptions(concurrency=math.ceil(concurrency / processes)),
            processes=processes,
        )
        started = time.perf_counter()
        summary = run_job(config)
        elapsed = time.perf_counter() - started
        if server_process is not None:
            sending = window_rate(server_process.commit_log())[0]
    if summary.conversations.migrated != summary.conversations.total:
        raise SystemExit(f"not everything migrated: {summary.conversations}")
    return {
        "elapsed_s": elapsed,
        "conversations_per_s": summary.conversations.migrated / elapsed,
        "items_per_s": summary.items.landed / elapsed,
        "calls_per_s": summary.calls / elapsed,
        "calls": summary.calls,
        "sending_calls_per_s": sending,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=1000)
    parser.add_argument("--items", type=int, default=30)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--processes", type=int, nargs="+", default=[1])
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
        header = f"{'conc':>5} {'proc':>4} {'conv/s':>9} {'ideal':>9} {'items/s':>9} {'ideal':>9} "
        header += f"{'calls/s':>9} {'ideal':>9} {'% ideal':>8} {'sending':>8} {'vs 1':>5} "
        header += f"{'elapsed':>8}"
        print(header)
        for concurrency in options.concurrency:
            alone: float | None = None
            for processes in options.processes:
                result = measure(
                    source,
                    work,
                    concurrency=concurrency,
                    latency_ms=options.latency_ms,
                    server=options.server,
                    processes=processes,
                )
                ideal_calls = concurrency / latency
                ideal_conversations = ideal_calls / calls_per_conversation
                share = 100 * result["calls_per_s"] / ideal_calls
                sending = result["sending_calls_per_s"]
                if processes == 1:
                    alone = sending
                versus = f"{sending / alone:>5.2f}" if alone else f"{'-':>5}"
                print(
                    f"{concurrency:>5} {processes:>4} {result['conversations_per_s']:>9.1f} "
                    f"{ideal_conversations:>9.1f} {result['items_per_s']:>9.0f} "
                    f"{ideal_conversations * options.items:>9.0f} "
                    f"{result['calls_per_s']:>9.1f} {ideal_calls:>9.1f} {share:>7.0f}% "
                    f"{sending:>8.1f} {versus} {result['elapsed_s']:>7.1f}s",
                    flush=True,
                )


if __name__ == "__main__":
    main()
