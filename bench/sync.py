"""Incremental sync: only the new items cross, once, against the protocol's minimum.

    .venv/bin/python bench/sync.py [--conversations 10000] [--concurrency 16] [--json]

A seeded source of N Chat Completions conversations (2..40 messages) is migrated with `migrate
run` into a local server in its own process (`migrate serve`). Then the source changes: 5% of
the conversations get 1..30 new messages, 1% new conversations appear and 0.5% have an
already-migrated message edited (and a new one added). `migrate sync` runs into the same job
directory, then a second `migrate sync` with no change.

Measured (every figure from the server's own counters, `/_admin/stats`, and its database):

- writes the first sync sent over the minimum (`1 + ceil(new items / 20)` per grown
  conversation: its metadata update and the batches; `1 + ceil(items / 20)` per new one;
  diverged ones: none): target exactly 1.0;
- reads the first sync sent: none unless a call failed (no fault is injected, but a pooled
  connection the server closed while idle fails a call now and then: it is reconciled);
- conversations on the target that do not hold exactly their current plan, once (diverged
  ones: their plan from the first run): target 0; diverged ones reported: target 0.5% of N;
- writes the second sync sent: target 0;
- the first sync's wall time as a ratio of the full run's (informative).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
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
from migrate.config import build_job_config
from migrate.jobs.lookup import lookup_conversations
from migrate.jobs.models import JobRef
from migrate.jobs.status import job_status
from migrate.plan.model import ConversationPlan
from migrate.plan.pipeline import iterate_plans, open_configured_source
from migrate.replay.stored import item_difference
from migrate.server.store import ConversationStore
from migrate.transform.policy import Policy


def make_source(conversations: int, seed: int) -> list[dict[str, Any]]:
    chance = random.Random(seed)
    records = []
    for number in range(conversations):
        messages = [
            {"role": "user" if turn % 2 == 0 else "assistant", "content": f"c{number} m{turn}"}
            for turn in range(chance.randint(2, 40))
        ]
        records.append({"id": f"bench-{number:05d}", "messages": messages})
    return records


def change_source(records: list[dict[str, Any]], seed: int) -> dict[str, list[str]]:
    """Grow 5%, edit 0.5%, add 1% (in place); the ids of each group."""
    chance = random.Random(seed)
    count = len(records)
    picked = chance.sample(range(count), k=count // 20 + count // 200)
    grown, edited = picked[: count // 20], picked[count // 20 :]
    for index in grown:
        messages = records[index]["messages"]
        start = len(messages)
        for turn in range(chance.randint(1, 30)):
            role = "user" if (start + turn) % 2 == 0 else "assistant"
            messages.append({"role": role, "content": f"later {index} {turn}"})
    for index in edited:
        messages = records[index]["messages"]
        messages[0]["content"] = f"edited {index}"
        messages.append({"role": "user", "content": "and a new one"})
    added = []
    for number in range(count // 100):
        messages = [
            {"role": "user" if turn % 2 == 0 else "assistant", "content": f"n{number} m{turn}"}
            for turn in range(chance.randint(2, 40))
        ]
        added.append({"id": f"bench-new-{number:05d}", "messages": messages})
    records.extend(added)
    return {
        "grown": [records[i]["id"] for i in grown],
        "edited": [records[i]["id"] for i in edited],
        "added": [r["id"] for r in added],
    }


def write(path: Path, records: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def plans_of(path: Path) -> dict[str, ConversationPlan]:
    config = build_job_config(source=str(path), job_file=None)
    plans: dict[str, ConversationPlan] = {}
    for outcome in iterate_plans(open_configured_source(config.source), Policy()):
        assert isinstance(outcome, ConversationPlan), outcome
        plans[outcome.source_id] = outcome
    return plans


def requests(server: ServerProcess) -> tuple[int, int]:
    """(POST requests, item listings) the server answered under /v1 so far (the preflight
    read of each command is neither)."""
    posts = gets = 0
    for route, by_status in server.stats()["requests"].items():
        method, path = route.split(" ", 1)
        if path.startswith("/v1/"):
            total = sum(by_status.values())
            posts += total if method == "POST" else 0
            gets += total if method == "GET" and path.endswith("/items") else 0
    return posts, gets


def migrate(arguments: list[str], log: Path) -> float:
    """Run one `migrate` command to its end; returns its wall time."""
    started = time.monotonic()
    with log.open("ab") as out:
        code = subprocess.run(
            [sys.executable, "-m", "migrate", *arguments], stdout=out, stderr=subprocess.STDOUT
        ).returncode
    if code != 0:
        raise SystemExit(f"migrate {arguments[0]} exited with {code}; see {log}")
    return time.monotonic() - started


def measure(conversations: int, concurrency: int, work: Path) -> dict[str, Any]:
    source, job_dir, log = work / "source.jsonl", work / "job", work / "migrate.log"
    records = make_source(conversations, seed=15)
    write(source, records)
    with ServerProcess(work / "server.db") as server:
        target = ["--target", "openai", "--base-url", server.base_url]
        common = [*target, "--job-dir", str(job_dir), "--concurrency", str(concurrency)]
        run_seconds = migrate(["run", str(source), *common], log)
        before = plans_of(source)
        groups = change_source(records, seed=16)
        write(source, records)
        after = plans_of(source)
        minimum = sum(
            1 + math.ceil((len(after[i].items) - len(before[i].items)) / 20)
            for i in groups["grown"]
        )
        minimum += sum(1 + math.ceil(len(after[i].items) / 20) for i in groups["added"])
        posts, gets = requests(server)
        sync_seconds = migrate(["sync", str(source), *common], log)
        posts_after, gets_after = requests(server)
        summary = job_status(JobRef(job_dir=job_dir))
        found = lookup_conversations(f"sqlite:///{job_dir / 'state.db'}", list(after))
        store = ConversationStore.from_path(work / "server.db")
        try:
            held = {s.id: s for s in store.summaries(include_deleted=False)}
            edited = set(groups["edited"])
            wrong = 0
            for result in found:
                plan = (before if result.source_id in edited else after)[result.source_id]
                items = store.all_items(result.conversation_id)
                if len(items) != len(plan.items) or any(
                    item_difference(p.item, listed) is not None
                    for p, listed in zip(plan.items, items, strict=True)
                ):
                    wrong += 1
            extra = len(held) - len(found)
        finally:
            store.close()
        second_posts = requests(server)[0]
        migrate(["sync", str(source), *common], log)
        second_writes = requests(server)[0] - second_posts
    sync_writes = posts_after - posts
    return {
        "conversations": conversations,
        "grown": len(groups["grown"]),
        "added": len(groups["added"]),
        "edited": len(groups["edited"]),
        "minimum_writes": minimum,
        "sync_writes": sync_writes,
        "writes_over_minimum": round(sync_writes / minimum, 4) if minimum else None,
        "sync_reads": gets_after - gets,
        "job_calls": summary.calls,
        "server_calls": sync_writes + gets_after - gets,
        "retries": summary.retries,
        "reconciliations": summary.reconciliations,
        "not_exactly_once": wrong + (len(after) - len(found)),
        "other_conversations_on_target": extra,
        "diverged_reported": summary.conversations.diverged,
        "up_to_date": summary.conversations.up_to_date,
        "second_sync_writes": second_writes,
        "run_seconds": round(run_seconds, 2),
        "sync_seconds": round(sync_seconds, 2),
        "sync_over_run_time": round(sync_seconds / run_seconds, 3),
        "cores": os.cpu_count(),
    }


def verdicts(result: dict[str, Any]) -> list[tuple[str, bool]]:
    return [
        ("sync writes == minimum", result["sync_writes"] == result["minimum_writes"]),
        ("no reads without a failed call", result["sync_reads"] == 0 or result["retries"] > 0),
        ("every conversation exactly once", result["not_exactly_once"] == 0),
        ("nothing else on the target", result["other_conversations_on_target"] == 0),
        ("diverged ones reported", result["diverged_reported"] == result["edited"]),
        ("second sync writes nothing", result["second_sync_writes"] == 0),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-sync-") as temporary:
        work = options.workdir or Path(temporary)
        work.mkdir(parents=True, exist_ok=True)
        result = measure(options.conversations, options.concurrency, work)
    checks = verdicts(result)
    if options.json:
        print(json.dumps({"result": result, "checks": dict(checks)}, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:32} {value}")
        for name, met in checks:
            print(f"{name:32} {'[met]' if met else '[NOT MET]'}")
    return 0 if all(met for _, met in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
