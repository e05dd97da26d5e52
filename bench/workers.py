"""Throughput of one shared job with 1, 2 and 4 worker processes, as a ratio to one worker.

    .venv/bin/python bench/workers.py [--conversations 400] [--items 60] [--concurrency 8]
        [--latency-ms 50] [--workers 1 2 4] [--json]

For each worker count: a fresh PostgreSQL state store (a new database on 127.0.0.1:5432), a
fresh local server in its own process (`migrate serve`, no rate limit), then `migrate run
--state postgresql://...` (which plans and replays) and, as soon as the job exists, `N - 1`
`migrate work --state ... --job ...` processes, each a separate interpreter. The rate is read
from the server's commit log (first to last committed write), so interpreter start-up and
report writing do not count. The ideal ratio is N (each worker adds `concurrency` calls in
flight against a latency-bound server); on a machine with few cores the client processes, the
server and PostgreSQL share the CPU and the ratio falls short of it: the output says how many
cores there were.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from migrate.server.testing import AdminClient

if __package__ in (None, ""):
    # Run as a script (`python bench/...py`): make the repository root importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.server import ServerProcess

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432"


def write_source(path: Path, *, conversations: int, items: int) -> None:
    """`conversations` Chat Completions conversations of `items` plain messages each."""
    with path.open("w", encoding="utf-8") as out:
        for number in range(conversations):
            messages = [
                {"role": "user" if turn % 2 == 0 else "assistant", "content": f"c{number} m{turn}"}
                for turn in range(items)
            ]
            out.write(json.dumps({"id": f"bench-{number}", "messages": messages}) + "\n")


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """A new PostgreSQL database for one job's state, dropped afterwards."""
    name = f"migrate_bench_{secrets.token_hex(4)}"
    admin = create_engine(f"{POSTGRES}/test", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name}"))
        yield f"{POSTGRES}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


def migrate(*arguments: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "migrate", *arguments], stdout=out, stderr=subprocess.STDOUT
        )


def measure(
    source: Path, work: Path, *, workers: int, concurrency: int, latency_ms: float
) -> dict[str, Any]:
    """One shared job with `workers` processes; returns its rates."""
    name = f"w{workers}"
    log = work / f"{name}-clients.log"
    with (
        ServerProcess(work / f"{name}.db", latency_ms=latency_ms) as server,
        fresh_database() as state_url,
    ):
        base_url = server.base_url
        job_dir = work / f"{name}-job"
        started = time.monotonic()
        run = migrate(
            *("run", str(source), "--target", "openai", "--base-url", base_url),
            *("--state", state_url, "--job-dir", str(job_dir)),
            *("--concurrency", str(concurrency)),
            log=log,
        )
        job_id = None
        while job_id is None:
            if run.poll() is not None:
                raise SystemExit(f"migrate run ended early; see {log}")
            with contextlib.suppress(OSError, ValueError, KeyError):
                job_id = json.loads((job_dir / "job.json").read_text())["job_id"]
            time.sleep(0.02)
        extra = [
            migrate(
                *("work", "--state", state_url, "--job", job_id, "--target", "openai"),
                *("--concurrency", str(concurrency)),
                log=log,
            )
            for _ in range(workers - 1)
        ]
        codes = [process.wait(timeout=1800) for process in (run, *extra)]
        wall = time.monotonic() - started
        if any(codes):
            raise SystemExit(f"a worker failed ({codes}); see {log}")
        with AdminClient(base_url) as admin:
            commits = admin.log()
    first, last = commits[0]["at"], commits[-1]["at"]
    seconds = max(last - first, 1e-6)
    conversations = sum(1 for c in commits if c["operation"] == "conversations.create")
    items = sum(len(c["item_ids"]) for c in commits)
    return {
        "workers": workers,
        "concurrency_per_worker": concurrency,
        "seconds": round(seconds, 3),
        "wall_seconds": round(wall, 3),
        "calls_per_s": round(len(commits) / seconds, 1),
        "conversations_per_s": round(conversations / seconds, 1),
        "items_per_s": round(items / seconds, 1),
        "ideal_calls_per_s": round(workers * concurrency / (latency_ms / 1000), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=400)
    parser.add_argument("--items", type=int, default=60)
    parser.add_argument("--concurrency", type=int, default=8, help="Per worker process.")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--json", action="store_true", help="Print one JSON document.")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="migrate-bench-workers-") as directory:
        work = Path(directory)
        source = work / "source.jsonl"
        write_source(source, conversations=options.conversations, items=options.items)
        results = [
            measure(
                source,
                work,
                workers=count,
                concurrency=options.concurrency,
                latency_ms=options.latency_ms,
            )
            for count in options.workers
        ]
    base = results[0]["calls_per_s"]
    for result in results:
        result["ratio_to_first"] = round(result["calls_per_s"] / base, 2)
    document = {
        "cores": os.cpu_count(),
        "conversations": options.conversations,
        "items_per_conversation": options.items,
        "latency_ms": options.latency_ms,
        "results": results,
    }
    if options.json:
        print(json.dumps(document, indent=2))
        return
    print(
        f"{options.conversations} conversations x {options.items} items, server latency "
        f"{options.latency_ms:g} ms, no rate limit, {os.cpu_count()} cores, PostgreSQL state"
    )
    for result in results:
        ideal = result["workers"] / results[0]["workers"]
        print(
            f"{result['workers']} worker(s) x {result['concurrency_per_worker']}: "
            f"{result['calls_per_s']:7.1f} calls/s  {result['conversations_per_s']:6.1f} conv/s  "
            f"ratio {result['ratio_to_first']:.2f} (ideal {ideal:.0f}: "
            f"{result['ideal_calls_per_s']:.0f} calls/s)"
        )


if __name__ == "__main__":
    main()
