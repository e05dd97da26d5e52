"""Whether the state store's periodic statements and size stay flat as a job grows.

    .venv/bin/python bench/scale_store.py [--conversations N ...] [--items K]

For each size, builds a job of N conversations of K items (plans stored as `migrate run`
stores them; the first half landed through the journal, the rest pending), then times the
statements a running worker repeats: the lease renewal of a worker holding 32 claims, a claim
of 32 conversations, the planner's bounded look at unfinished work, and the journal's writes
per call; then the end of the job's report (its tables appended to as the landed half
finished, as a running job does, then `write_report_files`: the pending half's rows, the
summary and the page), and the job directory's size per million conversations. No network:
the figures are the store's own. The ratios printed compare each size with the smallest, so
flat means close to 1.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.journal_cost import BATCH, bench_plan
from migrate.jobs.planner import PLAN_AHEAD
from migrate.jobs.report import report_tables, write_report_files
from migrate.jobs.status import job_summary
from migrate.state.records import JobRecord
from migrate.state.store import StateStore

CHUNK = 500
CLAIMS = 32
LEASE = 60.0


def _land(store: StateStore, seq: int, items: int) -> None:
    plan = bench_plan(seq, items)
    intent = store.record_intent(seq, "create", start=0, count=0)
    store.record_created(seq, intent, f"conv_{seq}")
    for start in range(0, items, BATCH):
        batch = plan.items[start : start + BATCH]
        intent = store.record_intent(seq, "append", start=start, count=len(batch))
        store.record_appended(
            seq,
            intent,
            landed=[
                (start + n, p.source_id, f"item_{seq}_{start + n}") for n, p in enumerate(batch)
            ],
            source_conversation_id=plan.source_id,
            migrated=start + len(batch) == items,
        )


def _median_ms(action: Callable[[], object], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def measure(job_dir: Path, conversations: int, items: int) -> dict[str, float]:
    """Build one job in `job_dir` and time its periodic statements."""
    store = StateStore.from_url(f"sqlite:///{job_dir / 'state.db'}", create=True)
    try:
        store.create_job(
            JobRecord(job_id="bench", created_at=time.time(), config={}, source="b", target={})
        )
        for first in range(0, conversations, CHUNK):
            seqs = range(first, min(conversations, first + CHUNK))
            store.add_outcomes([(seq, bench_plan(seq, items)) for seq in seqs])
        store.recent_plans.clear()
        store.update_job(planning_complete=True)
        store.register_worker("done", host="bench", pid=0, plans=False, lease=LEASE)
        half = conversations // 2
        landed = 0
        tables = report_tables(store, job_dir)
        while landed < half:
            claims = store.claim_work("done", limit=min(CHUNK, half - landed), lease=LEASE)
            store.owner = "done"
            for claim in claims:
                _land(store, claim.seq, items)
            store.owner = None
            landed += len(claims)
            tables.advance()
        store.register_worker("w", host="bench", pid=0, plans=False, lease=LEASE)
        held = store.claim_work("w", limit=CLAIMS, lease=LEASE)
        store.owner = "w"
        calls = 0
        started = time.process_time()
        for claim in held[: CLAIMS // 2]:
            _land(store, claim.seq, items)
            calls += 1 + -(-items // BATCH)
        journal_ms = 1000 * (time.process_time() - started) / calls
        store.owner = None
        figures = {
            "renewal_ms": _median_ms(lambda: store.renew("w", lease=LEASE)),
            "claim_ms": _median_ms(
                lambda: (
                    store.release_claims("x") or store.claim_work("x", limit=CLAIMS, lease=LEASE)
                )
            ),
            "planner_look_ms": _median_ms(lambda: store.unfinished_count(at_most=PLAN_AHEAD)),
            "journal_cpu_ms_per_call": journal_ms,
        }
        started = time.perf_counter()
        cpu = time.process_time()
        write_report_files(store, job_dir, job_summary(store, job_dir).model_dump(mode="json"))
        figures["report_s"] = time.perf_counter() - started
        figures["report_cpu_ms_per_conversation"] = (
            1000 * (time.process_time() - cpu) / conversations
        )
    finally:
        store.close()
    files = [path for path in job_dir.iterdir() if path.is_file()]
    size = sum(path.stat().st_size for path in files)
    state = sum(path.stat().st_size for path in files if path.name.startswith("state.db"))
    figures["job_dir_gb_per_million"] = size / conversations * 1e6 / 1e9
    figures["state_db_gb_per_million"] = state / conversations * 1e6 / 1e9
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, nargs="+", default=[10_000, 30_000])
    parser.add_argument("--items", type=int, default=20)
    args = parser.parse_args()
    first: dict[str, float] | None = None
    for size in args.conversations:
        with tempfile.TemporaryDirectory() as workdir:
            figures = measure(Path(workdir), size, args.items)
        first = first or figures
        shown = "  ".join(
            f"{name} {value:.3g} (x{value / first[name]:.2f})"
            if first[name]
            else f"{name} {value:.3g}"
            for name, value in figures.items()
        )
        print(f"{size} conversations x {args.items} items: {shown}", flush=True)


if __name__ == "__main__":
    main()
