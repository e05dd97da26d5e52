"""Whether the state store's periodic statements and size stay flat as a job grows.

    .venv/bin/python bench/scale_store.py [--conversations N ...] [--items K] [--rounds R] [--json]

For each size, builds a job of N conversations of K items (plans stored as `migrate run`
stores them; the first half landed through the journal, the rest pending), then times the
statements a running worker repeats: the journal's writes per call (CPU, the least of three
rounds of 100 conversations), the lease renewal of a worker holding 32 claims, a claim of 32
conversations (their plans parsed) and the planner's bounded look at unfinished work (median
and minimum wall time of 25 runs in each of `--rounds` rounds half a second apart); then the
end of the job's report (its tables appended to as the landed half finished, as a running job
does, then `write_report_files`: the pending half's rows, the summary and the page), and the
job directory's size per million conversations. No network: the figures are the store's own.
The ratios printed compare each size with the smallest, so flat means close to 1; `--json`
prints one JSON object per size.
"""

from __future__ import annotations

import argparse
import json
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
from migrate.state.records import Claim, JobRecord
from migrate.state.store import StateStore

CHUNK = 500
CLAIMS = 32
JOURNALED = 100
"""Conversations landed in each of `JOURNAL_ROUNDS` while the journal's CPU is measured."""
JOURNAL_ROUNDS = 3
LEASE = 60.0
REPEAT = 25
PAUSE = 0.5


def _land(store: StateStore, claim: Claim) -> None:
    """Journal a claimed conversation's create and appends, each call in its own writes."""
    seq, plan = claim.seq, claim.plan
    items = len(plan.items)
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


def _timed_ms(actions: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """The median and the minimum wall time, in ms, of each action run `REPEAT` times in each
    of `rounds` rounds `PAUSE` seconds apart (so that a burst of other work on the machine
    does not cover all of one action's runs)."""
    times: dict[str, list[float]] = {name: [] for name in actions}
    for round_number in range(rounds):
        if round_number:
            time.sleep(PAUSE)
        for name, action in actions.items():
            for _ in range(REPEAT):
                started = time.perf_counter()
                action()
                times[name].append(time.perf_counter() - started)
    figures = {}
    for name, runs in times.items():
        figures[f"{name}_ms"] = 1000 * statistics.median(runs)
        figures[f"{name}_min_ms"] = 1000 * min(runs)
    return figures


def _journal_ms(store: StateStore, conversations: int, items: int) -> float:
    """CPU ms per call of `w` landing a round of pending conversations it claimed."""
    journaled = min(JOURNALED, (conversations // 2 - 2 * CLAIMS) // JOURNAL_ROUNDS)
    claims = store.claim_work("w", limit=journaled, lease=LEASE)
    store.owner = "w"
    started = time.process_time()
    for claim in claims:
        _land(store, claim)
    cpu = time.process_time() - started
    store.owner = None
    return 1000 * cpu / (len(claims) * (1 + -(-items // BATCH)))


def build(job_dir: Path, conversations: int, items: int) -> StateStore:
    """A job in `job_dir` of `conversations` planned, the first half landed through the
    journal (its report tables appended to every `CHUNK` conversations, as a running job
    does), and a worker `w` registered; the store is open."""
    store = StateStore.from_url(f"sqlite:///{job_dir / 'state.db'}", create=True)
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
            _land(store, claim)
        store.owner = None
        landed += len(claims)
        tables.advance()
    store.register_worker("w", host="bench", pid=0, plans=False, lease=LEASE)
    return store


def measure(job_dir: Path, conversations: int, items: int, rounds: int) -> dict[str, float]:
    """Build one job in `job_dir` and time its periodic statements."""
    store = build(job_dir, conversations, items)
    try:
        journal = [_journal_ms(store, conversations, items) for _ in range(JOURNAL_ROUNDS)]
        store.claim_work("w", limit=CLAIMS, lease=LEASE)
        figures = {
            "journal_cpu_ms_per_call": min(journal),
            **_timed_ms(
                {
                    "renewal": lambda: store.renew("w", lease=LEASE),
                    "claim": lambda: (
                        store.release_claims("x")
                        or store.claim_work("x", limit=CLAIMS, lease=LEASE)
                    ),
                    "planner_look": lambda: store.unfinished_count(at_most=PLAN_AHEAD),
                },
                rounds,
            ),
        }
        started = time.perf_counter()
        cpu = time.process_time()
        write_report_files(store, job_dir, job_summary(store, job_dir).model_dump(mode="json"))
        figures["report_s"] = time.perf_counter() - started
        figures["report_cpu_s"] = time.process_time() - cpu
        figures["report_cpu_ms_per_conversation"] = 1000 * figures["report_cpu_s"] / conversations
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
    parser.add_argument("--conversations", type=int, nargs="+", default=[30_000, 100_000])
    parser.add_argument("--items", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=10, help="Rounds of timed statements.")
    parser.add_argument("--json", action="store_true", help="One JSON object per size.")
    parser.add_argument("--workdir", type=Path, help="Build the jobs under this directory.")
    args = parser.parse_args()
    first: dict[str, float] | None = None
    for size in args.conversations:
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(dir=args.workdir) as workdir:
            figures = measure(Path(workdir), size, args.items, args.rounds)
        figures["total_s"] = time.perf_counter() - started
        first = first or figures
        if args.json:
            print(json.dumps({"conversations": size, "items": args.items, **figures}), flush=True)
            continue
        shown = "  ".join(
            f"{name} {value:.3g} (x{value / first[name]:.2f})"
            if first[name]
            else f"{name} {value:.3g}"
            for name, value in figures.items()
        )
        print(f"{size} conversations x {args.items} items: {shown}", flush=True)


if __name__ == "__main__":
    main()
