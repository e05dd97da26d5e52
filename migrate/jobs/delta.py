"""Planning against the ledger: which source conversations a job takes, and what `sync` sends.

- `target_identity`: the name the ledger knows a target by: the base URL and project of an
  `openai` target (never the key), or the local server's database file.
- `take_subset`: `--limit` and `--ids` over the planned source records (SQL sources filter
  with `--where` and `--since` in their own query).
- `sync_outcomes`: each freshly planned conversation compared with its ledger entry: new ones
  pass as they are; one that only grew becomes an append plan (`ConversationPlan.append`)
  holding only the new items, and updating the conversation's metadata to the source's
  current one first (the ledger keeps no copy of the metadata that landed, so it is sent
  whether or not it changed: one write per grown conversation); an unchanged one becomes an
  empty plan (skipped, `up_to_date`, its metadata left as it is);
  one whose landed items changed or vanished gets the finding `source_diverged` and the policy's
  treatment (`skip`, `fail`, or `new_conversation`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

from sqlalchemy import Engine

from migrate.jobs.models import DivergedPolicy, Subset
from migrate.plan.model import AppendBase, ConversationPlan
from migrate.plan.pipeline import PlanOutcome
from migrate.plan.planner import batch_sizes_for, fingerprint
from migrate.replay.target import TargetConfig, resolve_base_url
from migrate.state.ledger import LedgerEntry, entries_for, sync_state
from migrate.transform.findings import ErrorRecord, Finding

CHUNK = 100
"""Source conversations looked up in the ledger per query."""
MAX_IDENTITY = 160


def target_identity(config: TargetConfig, job_dir: Path | None) -> str:
    """The ledger's name for a target: base URL and project, or the local server's file."""
    if config.kind == "local":
        where = "?" if job_dir is None else str((job_dir / "server.db").resolve())
        identity = f"local:{where}"
    else:
        identity = resolve_base_url(config).rstrip("/")
        if config.project:
            identity += f"#project={config.project}"
    if len(identity) > MAX_IDENTITY:
        identity = "sha256:" + hashlib.sha256(identity.encode()).hexdigest()
    return identity


def take_subset(outcomes: Iterator[PlanOutcome], subset: Subset) -> Iterator[PlanOutcome]:
    """The records `subset` selects, in source order."""
    if subset.ids is not None:
        wanted = set(subset.ids)
        outcomes = (outcome for outcome in outcomes if _source_id(outcome) in wanted)
    if subset.limit is not None:
        outcomes = islice(outcomes, subset.limit)
    return outcomes


def sync_outcomes(
    outcomes: Iterator[PlanOutcome], engine: Engine, target: str, diverged: DivergedPolicy
) -> Iterator[PlanOutcome]:
    """What `sync` does with each planned record, against the ledger of `target`."""
    while chunk := list(islice(outcomes, CHUNK)):
        plans = [outcome for outcome in chunk if isinstance(outcome, ConversationPlan)]
        entries = entries_for(engine, target, (plan.source_id for plan in plans))
        for outcome in chunk:
            if isinstance(outcome, ConversationPlan):
                yield sync_plan(outcome, entries.get(outcome.source_id), diverged)
            else:
                yield outcome


def sync_plan(
    plan: ConversationPlan, entry: LedgerEntry | None, diverged: DivergedPolicy
) -> PlanOutcome:
    """One conversation's sync plan, given its ledger entry (None: never landed here)."""
    if entry is None:
        return plan
    state = sync_state(plan, entry)
    base = AppendBase(
        conversation_id=entry.conversation_id,
        position=entry.items,
        fingerprint=entry.fingerprint,
        reconcile=not entry.complete,
    )
    if state == "append":
        return _only(plan, entry.items, base.model_copy(update={"update_metadata": True}))
    if state == "up_to_date":
        return _only(plan, len(plan.items), base).model_copy(
            update={"findings": [], "tokens": None, "tokens_estimate": None}
        )
    message = (
        f"the source changed or dropped items that already landed in {entry.conversation_id} "
        f"({entry.items} items, job {entry.job_id}); the source now plans {len(plan.items)}"
    )
    if diverged == "fail":
        return ErrorRecord(
            code="source_diverged",
            message=message,
            location=plan.location,
            conversation_id=plan.source_id,
            hint="restore the source, or sync with --diverged new_conversation (a new "
            "conversation; the old one stays) or --diverged skip",
        )
    finding = Finding(code="source_diverged", conversation_id=plan.source_id, message=message)
    if diverged == "new_conversation":
        return plan.model_copy(update={"findings": [*plan.findings, finding]})
    skipped = _only(plan, len(plan.items), base)
    return skipped.model_copy(
        update={"findings": [finding], "tokens": None, "tokens_estimate": None}
    )


def _only(plan: ConversationPlan, start: int, base: AppendBase) -> ConversationPlan:
    """The plan cut to its items from `start`, appended after those `base` says are there.

    Its token count stays the whole conversation's (what the target holds once it landed).
    """
    items = plan.items[start:]
    bodies = [planned.item for planned in items]
    batch_sizes = batch_sizes_for(bodies)
    new_sources = {planned.source_id for planned in items if planned.source_id}
    return plan.model_copy(
        update={
            "items": items,
            "batch_sizes": batch_sizes,
            "fingerprint": fingerprint(plan.metadata, batch_sizes, bodies),
            # Findings about earlier items were reported by the job that landed them; those
            # about the whole conversation (no source item) still hold.
            "findings": [
                f for f in plan.findings if f.source_id is None or f.source_id in new_sources
            ],
            "append": base,
        }
    )


def _source_id(outcome: PlanOutcome) -> str | None:
    if isinstance(outcome, ConversationPlan):
        return outcome.source_id
    return outcome.conversation_id
