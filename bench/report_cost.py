"""The cost of the end of a job: writing its report files from the state store.

    .venv/bin/python bench/report_cost.py [--conversations N ...] [--items K]

Builds a finished job of N conversations of K items each (every one created and its items
landed, through the journal), appending the report tables as conversations finish the way a
running job does (`migrate.jobs.report_files`, once per 500 conversations here), then times
the end of the job: `write_report_files` (the last rows, summary and `report.html`). Then
the same files written whole from the state store into another directory (what `migrate
report --out` does, and what the end of a job cost before the tables were kept up to date).
Reports wall and CPU seconds, CPU per conversation and per item, the CPU the appends took
while the job ran, and the peak RSS growth. Several sizes in one run show whether the end of
a job grows with the job.
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
from migrate.jobs.report import report_tables, write_report_files
from migrate.jobs.status import job_summary
from migrate.state.records import JobRecord
from migrate.state.store import StateStore

CHUNK = 500


def finished_job(job_dir: Path, conversations: int, items: int) -> tuple[StateStore, float]:
    """A state store in `job_dir` holding a finished job of `conversations` x `items`, and the
    CPU seconds its report tables took to keep up to date."""
    store = StateStore.from_url(f"sqlite:///{job_dir / 'state.db'}", create=True)
    store.create_job(
        JobRecord(job_id="bench", created_at=time.time(), config={}, source="bench", target={})
    )
    tables = report_tables(store, job_dir)
    appending = 0.0
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
        started = time.process_time()
        tables.advance()
        appending += time.process_time() - started
    store.update_job(planning_complete=True, state="finished")
    store.recent_plans.clear()
    return store, appending


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, nargs="+", default=[1000, 4000])
    parser.add_argument("--items", type=int, default=20)
    args = parser.parse_args()
    for size in args.conversations:
        with tempfile.TemporaryDirectory() as workdir:
            job_dir = Path(workdir)
            store, appending = finished_job(job_dir, size, args.items)
            try:
                rss_before = peak_rss_mb()
                end = _timed(store, job_dir, kept=True)
                whole = _timed(store, job_dir / "whole", kept=False)
            finally:
                store.close()
        items = size * args.items
        for name, (wall, cpu) in (("end of job", end), ("whole report", whole)):
            print(
                f"{size} conversations x {args.items} items: {name} {wall:.2f} s wall, "
                f"{cpu:.2f} s CPU = {1e3 * cpu / size:.3f} ms/conversation, "
                f"{1e6 * cpu / items:.1f} us/item"
            )
        print(
            f"  appends while the job ran {appending:.2f} s CPU "
            f"({1e6 * appending / items:.1f} us/item); "
            f"peak RSS +{peak_rss_mb() - rss_before:.1f} MiB"
        )


def _timed(store: StateStore, directory: Path, *, kept: bool) -> tuple[float, float]:
    """(wall, CPU) seconds of the report files written into `directory`."""
    cpu, started = time.process_time(), time.perf_counter()
    directory.mkdir(exist_ok=True)
    summary = job_summary(store, directory)
    write_report_files(store, directory, summary.model_dump(mode="json"), kept=kept)
    return time.perf_counter() - started, time.process_time() - cpu


if __name__ == "__main__":
    main()
