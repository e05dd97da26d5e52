"""The cost of the end of a job: writing its report files from the state store.

    .venv/bin/python bench/report_cost.py [--conversations N ...] [--items K]

Builds a finished job of N conversations of K items each (every one created and its items
landed, through the journal), then times `write_report_files` (the id map, findings, errors,
summary and `report.html`) and reports CPU seconds per conversation and per item, and the
peak RSS growth. Several sizes in one run show whether the end of a job grows faster than
the job itself.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.child import peak_rss_mb
from bench.journal_cost import BATCH, bench_plan
from migrate.jobs.report import write_report_files
from migrate.jobs.status import job_summary
from migrate.state.records import JobRecord
from migrate.state.store import StateStore

CHUNK = 500


def finished_job(job_dir: Path, conversations: int, items: int) -> StateStore:
    """A state store in `job_dir` holding a finished job of `conversations` x `items`."""
    store = StateStore.from_url(f"sqlite:///{job_dir / 'state.db'}", create=True)
    store.create_job(
        JobRecord(job_id="bench", created_at=time.time(), config={}, source="bench", target={})
    )
    for first in range(0, conversations, CHUNK):
        plans = [
            (seq, bench_plan(seq, items)) for seq in range(first, min(conversations, first + CHUNK))
        ]
        store.add_outcomes(plans)
        for seq, plan in plans:
            intent = store.record_intent(seq, "create", start=0, count=0)
            store.record_created(seq, intent, f"conv_{seq}")
            for start in range(0, items, BATCH):
                batch = plan.items[start : start + BATCH]
                intent = store.record_intent(seq, "append", start=start, count=len(batch))
                store.record_appended(
                    seq,
                    intent,
                    landed=[
                        (start + n, p.source_id, f"item_{seq}_{start + n}")
                        for n, p in enumerate(batch)
                    ],
                    source_conversation_id=plan.source_id,
                    migrated=start + len(batch) == items,
                )
    store.update_job(planning_complete=True, state="finished")
    store.recent_plans.clear()
    return store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, nargs="+", default=[1000, 4000])
    parser.add_argument("--items", type=int, default=20)
    args = parser.parse_args()
    for size in args.conversations:
        with tempfile.TemporaryDirectory() as workdir:
            job_dir = Path(workdir)
            store = finished_job(job_dir, size, args.items)
            try:
                rss_before = peak_rss_mb()
                cpu = time.process_time()
                started = time.perf_counter()
                summary = job_summary(store, job_dir)
                write_report_files(store, job_dir, summary.model_dump(mode="json"))
                cpu = time.process_time() - cpu
                wall = time.perf_counter() - started
            finally:
                store.close()
        items = size * args.items
        print(
            f"{size} conversations x {args.items} items: report {wall:.2f} s wall, {cpu:.2f} s "
            f"CPU = {1e3 * cpu / size:.3f} ms/conversation, {1e6 * cpu / items:.1f} us/item; "
            f"peak RSS +{peak_rss_mb() - rss_before:.1f} MiB"
        )


if __name__ == "__main__":
    main()
