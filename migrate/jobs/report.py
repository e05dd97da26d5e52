"""The job's report: the id map and what happened, as files in the job directory.

Written from the state store (streamed, whatever the job's size) at the end of every run and
resume, and again by `migrate report`:

- `conversations.csv`: `source_id` -> `target_conversation_id`, status, item counts, input
  tokens (for the job's model, `migrate.context`), findings, calls, retries, reconciliations,
  possible orphans (empty, and with items), unread item ids, error; for a Responses chain,
  its first and leaf response ids.
- `items.csv`: `source_id` (of the conversation), `source_item_id`, position,
  `target_item_id`, `target_conversation_id`, `target_item_id_status`, `source_created_at`,
  one row per landed item; the status is `pending_verify` (and the id empty) for an item a
  create carried whose id no listing has read yet, else `recorded`. `source_created_at` is the
  source message's timestamp (ISO 8601 UTC; empty when the source has none): API items have no
  timestamp, so this is where it is kept (finding `item_timestamps_in_report`).

One file per table, CSV: the id maps are flat tables that people load into a database or a
spreadsheet, and CSV does not repeat the keys on every row (a JSON Lines copy of the same map
doubled the disk a job needs). Per-conversation details (findings, errors) are JSON Lines.

Every file names ids the same way: `source_id` is always the source conversation's id,
`source_item_id` a source message's, `target_conversation_id` and `target_item_id` the ids the
target minted.
- `findings.jsonl`: every lossy or repairing step of the transform, per conversation.
- `errors.jsonl`: why each failed conversation failed, and what to do about it.
- `summary.json`: the job's counts (`total = migrated + failed + skipped + pending +
  in_progress`), API calls, retries, reconciliations, possible orphans, elapsed time, the
  token figures (`tokens`: total, p50/p90/p99/max, conversations over or near the limit), and
  under `report` what `report.html` shows (`migrate.reporting`).
- `report.html`: the page a person reads.

Nothing here ever holds a secret: the state store has none to give.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from migrate.context.figures import TokenTally
from migrate.jobs.files import (
    error_row,
    finding_row,
    report_path,
    write_csv,
    write_json_lines,
    write_text,
)
from migrate.plan.planner import iso_time
from migrate.reporting import run_report
from migrate.reporting.collect import CodeTally, run_samples
from migrate.reporting.render import write_report_html
from migrate.state.store import StateStore
from migrate.transform.findings import ErrorRecord, Finding
from migrate.transform.policy import Policy

CONVERSATION_FIELDS = [
    "source_id",
    "target_conversation_id",
    "status",
    "planned_items",
    "landed_items",
    "tokens",
    "findings",
    "source_kind",
    "location",
    "calls",
    "retries",
    "reconciliations",
    "possible_orphans",
    "possible_orphans_with_items",
    "unread_item_ids",
    "error_code",
    "error_message",
    "deleted",
    "first_response_id",
    "leaf_response_id",
]
CHAIN_METADATA = ("first_response_id", "leaf_response_id")
"""Responses chains: the first and last response ids, from the conversation's metadata."""
ITEM_FIELDS = [
    "source_id",
    "source_item_id",
    "position",
    "target_item_id",
    "target_conversation_id",
    "target_item_id_status",
    "source_created_at",
]
RECORDED = "recorded"
PENDING_VERIFY = "pending_verify"
"""`target_item_id_status` of an item a create carried: its id is read by `migrate verify`
(the create answers without item ids); `migrate report` after it writes the id."""
_ITEM_COLUMNS = {
    "source_id": "source_conversation_id",
    "source_item_id": "source_item_id",
    "position": "position",
    "target_item_id": "item_id",
    "target_conversation_id": "conversation_id",
}
"""Report column -> state store column."""


def write_report_files(
    store: StateStore,
    job_dir: Path,
    summary: dict[str, Any],
    *,
    html_only: bool = False,
    progress: Callable[[int, int], None] | None = None,
    compress: bool | None = None,
) -> list[Path]:
    """Write every report file into `job_dir` (replacing old ones); returns their paths.

    `html_only`: only `summary.json` and `report.html` (the figures are still counted).
    `progress` is called with (conversations done, total) while the id map is written.
    `compress`: the id maps, findings and errors as `.gz` (None: as the job was started,
    `job_compresses`); `summary.json` and `report.html` stay plain.
    """
    if compress is None:
        compress = job_compresses(store)
    total = int(summary.get("conversations", {}).get("total", 0))
    tokens = TokenTally(Policy.model_validate(store.job().config.get("policy") or {}))
    codes = CodeTally()
    rows = _conversation_rows(store, tokens, progress, total)

    def named(name: str) -> Path:
        return report_path(job_dir, name, compress=compress)

    findings = _finding_rows(store, codes)
    if html_only:
        for _ in rows:
            pass
        for _ in findings:
            pass
    written = (
        []
        if html_only
        else [
            write_csv(named("conversations.csv"), CONVERSATION_FIELDS, rows),
            write_csv(named("items.csv"), ITEM_FIELDS, _item_rows(store, _source_times(store))),
            write_json_lines(named("findings.jsonl"), findings),
            write_json_lines(named("errors.jsonl"), _error_rows(store)),
        ]
    )
    samples = run_samples(store, job_dir)
    report = run_report(store, job_dir, codes).model_copy(update={"samples": len(samples)})
    summary = {
        **summary,
        "tokens": tokens.figures().model_dump(mode="json"),
        "report": report.model_dump(mode="json"),
    }
    summary_path = job_dir / "summary.json"
    write_text(summary_path, json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    written.append(summary_path)
    written.append(write_report_html(job_dir, summary, samples))
    return written


def job_compresses(store: StateStore) -> bool:
    """Whether the job writes its report files compressed (`--compress` when it started)."""
    return bool(store.job().config.get("compress", False))


class _PlanFigures(BaseModel):
    """The fields of a stored plan the report uses (the items are skipped, not built)."""

    model_config = ConfigDict(extra="ignore")

    metadata: dict[str, str] = {}
    batch_sizes: list[int] = []
    """Non-empty exactly when the plan has items."""
    tokens: int | None = None
    tokens_estimate: str | None = None
    findings: list[Finding] = []


def _conversation_rows(
    store: StateStore,
    tally: TokenTally,
    progress: Callable[[int, int], None] | None,
    total: int,
) -> Iterator[dict[str, Any]]:
    for done, (row, plan) in enumerate(store.iter_plans_as(_PlanFigures), start=1):
        if progress is not None and (done % 100 == 0 or done == total):
            progress(done, max(total, done))
        if row.error_code is not None:
            tally.add_failure(row.error_code)
        elif plan is not None and plan.batch_sizes:
            tally.add(plan.tokens, plan.findings, estimated=plan.tokens_estimate is not None)
        metadata = plan.metadata if plan is not None else {}
        yield {
            "source_id": row.source_id,
            "target_conversation_id": row.conversation_id,
            "status": row.status,
            "planned_items": row.planned_items,
            "landed_items": row.landed_items,
            "tokens": None if plan is None else plan.tokens,
            "findings": row.findings,
            "source_kind": row.source_kind,
            "location": row.location,
            "calls": row.calls,
            "retries": row.retries,
            "reconciliations": row.reconciliations,
            "possible_orphans": row.possible_orphans,
            "possible_orphans_with_items": row.orphans_with_items,
            "unread_item_ids": row.unread_items,
            "error_code": row.error_code,
            "error_message": row.error_message,
            "deleted": row.deleted_at is not None,
            **{key: metadata.get(key) for key in CHAIN_METADATA},
        }


class _ItemTime(BaseModel):
    model_config = ConfigDict(extra="ignore")

    source_created_at: float | None = None


class _PlanTimes(BaseModel):
    """The source timestamps of a stored plan's items (the rest of each item skipped)."""

    model_config = ConfigDict(extra="ignore")

    items: list[_ItemTime] = []


def _source_times(store: StateStore) -> Iterator[tuple[int, list[float | None]]]:
    """(seq, each planned item's source timestamp) for every conversation, in source order."""
    for row, plan in store.iter_plans_as(_PlanTimes):
        yield row.seq, [] if plan is None else [item.source_created_at for item in plan.items]


def _item_rows(
    store: StateStore, times: Iterator[tuple[int, list[float | None]]]
) -> Iterator[dict[str, Any]]:
    """The rows of `items.csv`; `times` (in the same order) gives `source_created_at`."""
    seq = -1
    plan_times: list[float | None] = []
    for item in store.iter_items():
        row = {field: item[column] for field, column in _ITEM_COLUMNS.items()}
        row["target_item_id_status"] = RECORDED if item["item_id"] is not None else PENDING_VERIFY
        while seq < item["seq"]:
            seq, plan_times = next(times, (item["seq"], []))
        position = int(item["position"])
        at = plan_times[position] if seq == item["seq"] and position < len(plan_times) else None
        row["source_created_at"] = None if at is None else (iso_time(at) or at)
        yield row


def _finding_rows(store: StateStore, tally: CodeTally) -> Iterator[dict[str, Any]]:
    for row, plan in store.iter_plans_as(_PlanFigures):
        if plan is None:
            continue
        for finding in plan.findings:
            tally.add_finding(finding, row.location)
            yield finding_row(finding, row.location)


def _error_rows(store: StateStore) -> Iterator[dict[str, Any]]:
    for row, _ in store.iter_conversations(statuses=["failed"]):
        error = ErrorRecord(
            code=row.error_code or "unknown",
            message=row.error_message or "",
            location=row.location,
            conversation_id=row.source_id,
            hint=row.error_hint,
        )
        yield error_row(error, target_conversation_id=row.conversation_id, retryable=row.retryable)
