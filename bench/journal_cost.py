"""The state store's cost per API call, alone: the journal writes of a 20-item call.

    .venv/bin/python bench/journal_cost.py [--conversations N] [--repeat R] [--url URL]

For each conversation the journal writes of one `migrate run` of 100-message conversations, as
the replay writes them: the create's intent, then for the create and each of its five 20-item
appends the outcome and the next call's intent in one transaction (7 transactions for 6
calls), with the store held by one worker as `migrate run` holds it. Prints the CPU time per
call of each repeat; no network and no server, so the figure is the store's share of `migrate
run`'s client CPU per call. SQLite in a temporary directory unless `--url` is given.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from migrate.plan.model import ConversationPlan
from migrate.state.records import JobRecord
from migrate.state.store import StateStore
from migrate.transform.transformer import PlannedItem

ITEMS = 100
BATCH = 20


def bench_plan(index: int, size: int = ITEMS) -> ConversationPlan:
    """A plan of `size` short user messages in 20-item batches."""
    items = [
        PlannedItem(
            item={"type": "message", "role": "user", "content": f"message {n}"},
            source_id=f"c{index}-m{n}",
            entry_index=n,
        )
        for n in range(size)
    ]
    return ConversationPlan(
        source_kind="bench",
        source_id=f"c{index}",
        location=f"bench:{index}",
        metadata={"source_id": f"c{index}"},
        items=items,
        batch_sizes=[min(BATCH, size - start) for start in range(0, size, BATCH)],
        fingerprint=f"f{index}",
        findings=[],
    )


def one_run(url: str, conversations: int) -> tuple[float, int]:
    """Journal `conversations` conversations; returns (CPU seconds, calls)."""
    store = StateStore.from_url(url, create=True)
    try:
        store.create_job(
            JobRecord(job_id="bench", created_at=time.time(), config={}, source="bench", target={})
        )
        store.add_outcomes([(seq, bench_plan(seq)) for seq in range(conversations)])
        worker = "bench-worker"
        store.register_worker(worker, host="bench", pid=0, plans=True, lease=60.0)
        claims = store.claim_work(worker, limit=conversations, lease=60.0)
        store.owner = worker
        calls = 0
        started = time.process_time()
        for claim in claims:
            seq, plan = claim.seq, claim.plan
            batches = plan.batches()
            # As the replay does: the create's intent alone, then each outcome and the next
            # call's intent in one transaction.
            create = store.record_intent(seq, "create", start=0, count=0)
            intent = store.record_created(
                seq, create, f"conv_{seq}", next_intent=("append", 0, len(batches[0]))
            )
            calls += 1
            for batch_index, batch in enumerate(batches):
                start = batch_index * BATCH
                following = batches[batch_index + 1] if batch_index + 1 < len(batches) else None
                intent = store.record_appended(
                    seq,
                    intent,
                    landed=[
                        (start + offset, planned.source_id, f"item_{seq}_{start + offset}")
                        for offset, planned in enumerate(batch)
                    ],
                    source_conversation_id=plan.source_id,
                    migrated=following is None,
                    next_intent=None
                    if following is None
                    else ("append", start + len(batch), len(following)),
                )
                calls += 1
        return time.process_time() - started, calls
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--url", help="a SQLAlchemy URL (default: a fresh SQLite file)")
    args = parser.parse_args()
    figures = []
    for attempt in range(args.repeat):
        with tempfile.TemporaryDirectory() as workdir:
            url = args.url or f"sqlite:///{Path(workdir) / 'state.db'}"
            cpu, calls = one_run(url, args.conversations)
        figures.append(1000 * cpu / calls)
        print(f"run {attempt + 1}: {calls} calls, {figures[-1]:.3f} ms CPU per call")
    print(f"min {min(figures):.3f}  max {max(figures):.3f} ms CPU per call")


if __name__ == "__main__":
    main()
