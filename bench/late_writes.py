"""Exactly once against a server that applies writes late: duplicates and missing items left.

    .venv/bin/python bench/late_writes.py [--conversations 80] [--items 60] [--rate 0.1]
        [--late-seconds 5] [--timeout 2] [--kills 12] [--json]

A strict local server (`migrate serve`, its own process) holds `--rate` of the writes
`--late-seconds` before applying them, and applies them even when the client has given up or
died, as a real server goes on with a request whose client timed out. Against it, three jobs,
each on a fresh server and job directory:

1. `migrate run --timeout T` with the default settle time (twice the timeout, at least 10 s);
2. the same with `--kills` SIGKILLs at random moments, each followed by `migrate resume`;
3. `migrate run --settle 1`: a settle time shorter than the server's hold, so writes land
   after they were reconciled and resent, and only the audit at the end can remove them.

Once a job reports finished (exit 0) and the server holds no write any more, the server's own
database is read: per migrated conversation, the items beyond its plan (duplicated) and the
planned items not there (missing), compared item by item with the plan. Then `migrate verify`
reads everything back, and `migrate status` gives the repairs the audits made. Targets: 0
duplicated, 0 missing, verify all matching, in the first two jobs. When `verify` finds a
conversation differing, `migrate verify --repair` runs (what the user is told to do) and the
server's database is counted again: the short-settle job meets its target when `verify`
reported every conversation it left wrong and the repair left 0 duplicated and 0 missing.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # Run as a script (`python bench/...py`): make the repository root importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.server import ServerProcess
from bench.workers import write_source
from migrate.replay.stored import item_difference
from migrate.server.store import ConversationStore
from migrate.state.store import StateStore

CONCURRENCY = 8
LATENCY_MS = 20.0


def migrate(*arguments: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "migrate", *arguments], stdout=out, stderr=subprocess.STDOUT
        )


def landed_items(job_dir: Path) -> int:
    """Items the job has recorded as landed (0 before the job exists)."""
    try:
        store = StateStore.from_url(f"sqlite:///{job_dir / 'state.db'}")
    except Exception:
        return 0
    try:
        return store.totals().items_landed
    except Exception:
        return 0
    finally:
        store.close()


def what_the_server_holds(job_dir: Path, server_db: Path) -> dict[str, int]:
    """Duplicated and missing items over the job's migrated conversations (server's database)."""
    store = StateStore.from_url(f"sqlite:///{job_dir / 'state.db'}")
    server = ConversationStore.from_path(server_db)
    duplicated = missing = wrong = 0
    try:
        for row, plan in store.iter_conversations(statuses=["migrated"], with_plans=True):
            assert plan is not None and row.conversation_id is not None
            held = server.all_items(row.conversation_id)
            unmatched = list(held)
            for planned in plan.items:
                found = next(
                    (
                        i
                        for i, item in enumerate(unmatched)
                        if item_difference(planned.item, item) is None
                    ),
                    None,
                )
                if found is None:
                    missing += 1
                else:
                    unmatched.pop(found)
            duplicated += len(unmatched)
            in_order = len(held) == len(plan.items) and all(
                item_difference(p.item, item) is None
                for p, item in zip(plan.items, held, strict=True)
            )
            wrong += 0 if in_order else 1
    finally:
        server.close()
        store.close()
    return {"duplicated": duplicated, "missing": missing, "conversations_not_exact": wrong}


def wait_until_applied(server: ServerProcess, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while server.stats().get("late_writes_pending", 0) and time.monotonic() < deadline:
        time.sleep(0.2)


def job_run(
    source: Path,
    work: Path,
    name: str,
    *,
    options: argparse.Namespace,
    settle: float | None,
    kills: int,
) -> dict[str, Any]:
    """One job against a fresh late-applying server; returns what it left and what it said."""
    log = work / f"{name}.log"
    job_dir = work / f"{name}-job"
    server_db = work / f"{name}-server.db"
    chance = random.Random(f"late-writes:{name}")
    flags = ["--timeout", str(options.timeout), "--concurrency", str(CONCURRENCY)]
    if settle is not None:
        flags += ["--settle", str(settle)]
    with ServerProcess(
        server_db,
        latency_ms=LATENCY_MS,
        fault_rates={"apply_late": options.rate},
        late_seconds=options.late_seconds,
        seed=7,
    ) as server:
        started = time.monotonic()
        first = ["run", str(source), "--target", "openai", "--base-url", server.base_url]
        process = migrate(*first, "--job-dir", str(job_dir), *flags, log=log)
        killed = 0
        while killed < kills:
            before = landed_items(job_dir)
            deadline = time.monotonic() + 60
            # Kill mid-work: once this session has landed something, at a random moment.
            while process.poll() is None and time.monotonic() < deadline:
                if landed_items(job_dir) > before:
                    break
                time.sleep(0.05)
            time.sleep(chance.uniform(0.0, 2.0))
            if process.poll() is not None:
                break
            process.send_signal(signal.SIGKILL)
            process.wait()
            killed += 1
            process = migrate("resume", str(job_dir), *flags, log=log)
        code = process.wait(timeout=1800)
        wall = time.monotonic() - started
        wait_until_applied(server)
        stats = server.stats()
        held = what_the_server_holds(job_dir, server_db)
        # while the server still runs: verify reads the conversations back from it
        status = json.loads(
            subprocess.run(
                [sys.executable, "-m", "migrate", "status", str(job_dir), "--json"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        checked = verify(job_dir)
        repaired: dict[str, Any] = {}
        if checked.get("differing"):
            # What a user is told to do next: repair, then count again.
            after = verify(job_dir, "--repair")
            repaired = {
                "after_repair_" + key: value
                for key, value in what_the_server_holds(job_dir, server_db).items()
            }
            repaired["after_repair_verify_matching"] = after.get("matching")
            repaired["after_repair_verify_differing"] = after.get("differing")
    return {
        "job": name,
        "settle": settle,
        "kills": killed,
        "exit_code": code,
        "state": status["state"],
        "wall_seconds": round(wall, 1),
        "migrated": status["conversations"]["migrated"],
        "failed": status["conversations"]["failed"],
        "late_writes_applied": stats["faults"].get("apply_late", 0),
        **held,
        "verify_matching": checked.get("matching"),
        "verify_differing": checked.get("differing"),
        "late_writes_repaired": status.get("late_writes_repaired"),
        "reconciliations": status["reconciliations"],
        "possible_orphans": status["possible_orphans"],
        **repaired,
    }


def left_exact(result: dict[str, Any], prefix: str = "") -> bool:
    """The server holds every planned item once, in order, and `verify` agrees."""
    counts = ("duplicated", "missing", "conversations_not_exact", "verify_differing")
    return all(result[prefix + count] == 0 for count in counts)


def settled_by_repair(result: dict[str, Any], conversations: int) -> bool:
    """The short-settle job: exact, or every conversation it left wrong reported by `verify`
    and exact after `verify --repair` (a settle time shorter than the target's lateness
    cannot prevent late copies, only find them)."""
    if result["exit_code"] != 0 or result["migrated"] != conversations:
        return False
    if left_exact(result):
        return True
    reported = bool(result["verify_differing"] == result["conversations_not_exact"])
    return reported and "after_repair_duplicated" in result and left_exact(result, "after_repair_")


def verify(job_dir: Path, *flags: str) -> dict[str, Any]:
    """`migrate verify JOB_DIR --json` (with `flags`): its JSON answer, or {} if it printed none."""
    done = subprocess.run(
        [sys.executable, "-m", "migrate", "verify", str(job_dir), "--json", *flags],
        capture_output=True,
        text=True,
        check=False,
    )
    return json.loads(done.stdout) if done.stdout.strip() else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=80)
    parser.add_argument("--items", type=int, default=60)
    parser.add_argument("--rate", type=float, default=0.1, help="Share of writes applied late.")
    parser.add_argument("--late-seconds", type=float, default=5.0)
    parser.add_argument("--timeout", type=float, default=2.0)
    parser.add_argument("--kills", type=int, default=12)
    parser.add_argument("--json", action="store_true", help="Print one JSON document.")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="migrate-bench-late-") as directory:
        work = Path(directory)
        source = work / "source.jsonl"
        write_source(source, conversations=options.conversations, items=options.items)
        results = [
            job_run(source, work, "run", options=options, settle=None, kills=0),
            job_run(source, work, "kills", options=options, settle=None, kills=options.kills),
            job_run(source, work, "short-settle", options=options, settle=1.0, kills=0),
        ]
    met = all(
        r["exit_code"] == 0 and r["migrated"] == options.conversations and left_exact(r)
        for r in results[:2]
    ) and settled_by_repair(results[2], options.conversations)
    document = {
        "cores": os.cpu_count(),
        "conversations": options.conversations,
        "items_per_conversation": options.items,
        "late_rate": options.rate,
        "late_seconds": options.late_seconds,
        "timeout": options.timeout,
        "results": results,
        "met": met,
    }
    if options.json:
        print(json.dumps(document, indent=2))
    else:
        print(
            f"{options.conversations} conversations x {options.items} items; {options.rate:.0%} "
            f"of writes applied {options.late_seconds:g} s late; --timeout {options.timeout:g}; "
            f"{os.cpu_count()} cores"
        )
        for r in results:
            settle = "default" if r["settle"] is None else f"{r['settle']:g} s"
            print(
                f"{r['job']:<13} settle {settle:<8} kills {r['kills']:>2}  exit {r['exit_code']}  "
                f"{r['migrated']} migrated  late writes {r['late_writes_applied']:>3}  "
                f"duplicated {r['duplicated']}  missing {r['missing']}  verify "
                f"{r['verify_matching']}/{r['verify_differing']} matching/differing  repaired "
                f"{r['late_writes_repaired']}  {r['wall_seconds']:.0f} s"
            )
            if "after_repair_duplicated" in r:
                print(
                    f"{'':<13} after `migrate verify --repair`: duplicated "
                    f"{r['after_repair_duplicated']}  missing {r['after_repair_missing']}  "
                    f"verify {r['after_repair_verify_matching']}/"
                    f"{r['after_repair_verify_differing']} matching/differing"
                )
        print(
            "target (0 duplicated, 0 missing, verify all matching; with --settle 1 every wrong "
            "conversation reported, and exact after --repair):",
            "met" if met else "NOT MET",
        )
    sys.exit(0 if met else 1)


if __name__ == "__main__":
    main()
