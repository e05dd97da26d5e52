"""The job's report: the id map and what happened, as files in the job directory.

Written from the state store (streamed, whatever the job's size, never parsing a plan: the
findings and figures the report needs are stored beside each plan). The tables are appended to
as conversations finish, while the job runs (`migrate.jobs.report_files`: after a kill, the
next run cuts them back to what the state store recorded and goes on), so the end of a run or
resume, and `migrate report`, only add the last rows and write the summary and the page:

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

import asyncio
import csv
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import groupby, islice
from operator import itemgetter
from pathlib import Path
from typing import IO, Any

from pydantic import BaseModel, ConfigDict

from migrate.context.figures import TokenFigures, TokenTally
from migrate.jobs.files import error_row, finding_row, json_line, write_text
from migrate.jobs.report_files import ReportTables, RowWriter
from migrate.plan.planner import iso_time
from migrate.reporting import run_report
from migrate.reporting.collect import run_samples
from migrate.reporting.render import write_report_html
from migrate.state.plan_facts import CHAIN_METADATA
from migrate.state.records import ConversationRow
from migrate.state.store import StateStore
from migrate.transform.findings import ErrorRecord
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
    *CHAIN_METADATA,
]
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
CONTEXT_CODES = ("context_over_limit", "context_near_limit", "context_trimmed")
REPORT_EVERY = 5.0
"""Seconds between two appends of the finished conversations' rows while a job runs."""
CSV_PAGE = 2000
"""Rows a table writer joins into one piece of text before writing it."""

logger = logging.getLogger(__name__)


def write_report_files(
    store: StateStore,
    job_dir: Path,
    summary: dict[str, Any],
    *,
    html_only: bool = False,
    progress: Callable[[int, int], None] | None = None,
    compress: bool | None = None,
    kept: bool = True,
) -> list[Path]:
    """Bring every report file in `job_dir` up to date; returns their paths.

    `html_only`: only `summary.json` and `report.html`. `progress` is called with
    (conversations written, total) while the tables are written. `compress`: the id maps,
    findings and errors as `.gz` (None: as the job was started, `job_compresses`);
    `summary.json` and `report.html` stay plain. `kept`: `job_dir` is the job's directory,
    whose tables the job keeps up to date (False: another directory, written whole).
    """
    if compress is None:
        compress = job_compresses(store)
    written = [] if html_only else report_tables(store, job_dir, compress, kept).finish(progress)
    samples = run_samples(store, job_dir)
    report = run_report(store, job_dir).model_copy(update={"samples": len(samples)})
    summary = {
        **summary,
        "tokens": token_figures(store).model_dump(mode="json"),
        "report": report.model_dump(mode="json"),
    }
    summary_path = job_dir / "summary.json"
    write_text(summary_path, json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    written.append(summary_path)
    written.append(write_report_html(job_dir, summary, samples))
    return written


def report_tables(
    store: StateStore, job_dir: Path, compress: bool | None = None, kept: bool = True
) -> ReportTables:
    """The job's report tables in `job_dir` (`compress` None: as the job was started)."""
    writers: dict[str, tuple[str, RowWriter]] = {
        "conversations.csv": (_csv_header(CONVERSATION_FIELDS), _conversation_rows(store)),
        "items.csv": (_csv_header(ITEM_FIELDS), _item_rows(store)),
        "findings.jsonl": ("", _finding_rows(store)),
        "errors.jsonl": ("", _error_rows(store)),
    }
    if compress is None:
        compress = job_compresses(store)
    return ReportTables(store, job_dir, writers, compress=compress, kept=kept)


async def keep_report_tables(store: StateStore, job_dir: Path) -> None:
    """Append the rows of finished conversations to the report tables until cancelled.

    A failed append is logged and tried again later: the end of the job writes what is left
    (and reports the error if it persists)."""
    tables = report_tables(store, job_dir)
    while True:
        await asyncio.sleep(REPORT_EVERY)
        try:
            await asyncio.to_thread(tables.advance)
        except Exception as exc:  # the job goes on; the end of the job tries again
            logger.warning(
                "the report files could not be brought up to date: %s",
                exc,
                extra={"event": "report_append_failed"},
            )


def job_compresses(store: StateStore) -> bool:
    """Whether the job writes its report files compressed (`--compress` when it started)."""
    return bool(store.job().config.get("compress", False))


def token_figures(store: StateStore) -> TokenFigures:
    """The token figures of the job's planned conversations, from the store's columns."""
    tally = TokenTally(Policy.model_validate(store.job().config.get("policy") or {}))
    for tokens in store.planned_tokens():
        tally.add(tokens, (), estimated=False)
    estimated, with_code, failed_over = store.token_counts(CONTEXT_CODES)
    return tally.figures().model_copy(
        update={
            "estimated": estimated,
            "over_limit": with_code["context_over_limit"] + failed_over,
            "near_limit": with_code["context_near_limit"],
            "trimmed": with_code["context_trimmed"],
        }
    )


def _csv_header(fields: list[str]) -> str:
    return ",".join(fields) + "\r\n"


def write_csv_rows(file: IO[str], rows: Iterable[Sequence[Any]]) -> None:
    """Write `rows` exactly as `csv.writer(file).writerows(rows)` does (None as an empty cell)."""
    write_csv_cells(file, (["" if value is None else str(value) for value in row] for row in rows))


def write_csv_cells(file: IO[str], rows: Iterable[Sequence[str]]) -> None:
    """Write rows of text cells exactly as `csv.writer(file).writerows(rows)` does.

    `csv.writer` looks at every character of every field to decide whether to quote it, which
    made it most of the cost of `items.csv`. A page of rows is joined first; when the text then
    holds no commas and line ends but those it was joined with, and no quote, no field needs
    quoting and the text is what `csv.writer` would write. Otherwise `csv.writer` writes the
    page.
    """
    writer = csv.writer(file)
    rows = iter(rows)
    while page := list(islice(rows, CSV_PAGE)):
        widths = list(map(len, page))
        text = "\r\n".join(map(",".join, page))
        lines = len(page)
        plain = (
            min(widths) > 1  # `csv.writer` quotes a row's only field when it is empty
            and text.count(",") == sum(widths) - lines
            and text.count("\r") == text.count("\n") == lines - 1
            and '"' not in text
        )
        if plain:
            file.write(text + "\r\n")
        else:
            writer.writerows(page)


def _conversation_rows(store: StateStore) -> RowWriter:
    def write(file: IO[str], start: int, stop: int) -> None:
        rows = store.iter_conversations(start=start, stop=stop)
        write_csv_rows(file, (_conversation_values(row) for row, _ in rows))

    return write


def _conversation_values(row: ConversationRow) -> list[Any]:
    return [
        row.source_id,
        row.conversation_id,
        row.status,
        row.planned_items,
        row.landed_items,
        row.tokens,
        row.findings,
        row.source_kind,
        row.location,
        row.calls,
        row.retries,
        row.reconciliations,
        row.possible_orphans,
        row.orphans_with_items,
        row.unread_items,
        row.error_code,
        row.error_message,
        row.deleted_at is not None,
        row.first_response_id,
        row.leaf_response_id,
    ]


class _ItemTime(BaseModel):
    model_config = ConfigDict(extra="ignore")

    source_created_at: float | None = None


class _PlanTimes(BaseModel):
    """The source timestamps of a stored plan's items (the rest of each item skipped)."""

    model_config = ConfigDict(extra="ignore")

    items: list[_ItemTime] = []


def _item_rows(store: StateStore) -> RowWriter:
    def write(file: IO[str], start: int, stop: int) -> None:
        write_csv_cells(file, _item_cells(store, start, stop))

    return write


_ITEM_KEYS = itemgetter(
    "seq", "position", "source_conversation_id", "source_item_id", "item_id", "conversation_id"
)


def _item_cells(store: StateStore, start: int, stop: int) -> Iterator[tuple[str, ...]]:
    """The `items.csv` row of every landed item of the conversations `start <= seq < stop`."""
    times = _source_times(store, start, stop)
    seq, plan_times = -1, []
    items = map(_ITEM_KEYS, store.iter_items(start=start, stop=stop))
    for item_seq, position, source_id, source_item_id, item_id, conversation_id in items:
        while seq < item_seq:
            seq, plan_times = next(times, (item_seq, []))
        at = None
        if plan_times and seq == item_seq:
            index = int(position)
            if index < len(plan_times):
                at = plan_times[index]
        # The text columns hold a string or None (an empty cell).
        yield (
            source_id or "",
            source_item_id or "",
            str(position),
            item_id or "",
            conversation_id or "",
            RECORDED if item_id is not None else PENDING_VERIFY,
            "" if at is None else str(iso_time(at) or at),
        )


def _source_times(
    store: StateStore, start: int, stop: int
) -> Iterator[tuple[int, list[float | None]]]:
    """(seq, each planned item's source timestamp) for the conversations `start <= seq < stop`,
    in source order: items have no timestamp in the API, so `items.csv` keeps the source's.
    The stored plan is the one place that holds them; only the plans of conversations with an
    `item_timestamps_in_report` finding are read (the others have none), and a plan that cannot
    be read leaves them empty rather than failing the report."""
    findings = store.iter_findings(start, stop, code="item_timestamps_in_report")
    stamped = sorted({seq for seq, _, _ in findings})
    # Read in runs of consecutive conversations: a source with timestamps in every
    # conversation is paged through as one range, not queried one conversation at a time.
    for _, run in groupby(enumerate(stamped), key=lambda pair: pair[1] - pair[0]):
        seqs = [seq for _, seq in run]
        plans = store.iter_plans_as(
            _PlanTimes, start=seqs[0], stop=seqs[-1] + 1, unreadable_as_none=True
        )
        for row, plan in plans:
            yield row.seq, [] if plan is None else [item.source_created_at for item in plan.items]


def _finding_rows(store: StateStore) -> RowWriter:
    def write(file: IO[str], start: int, stop: int) -> None:
        for _, location, finding in store.iter_findings(start, stop):
            file.write(json_line(finding_row(finding, location)))

    return write


def _error_rows(store: StateStore) -> RowWriter:
    def write(file: IO[str], start: int, stop: int) -> None:
        for row in _failed(store, start, stop):
            error = ErrorRecord(
                code=row.error_code or "unknown",
                message=row.error_message or "",
                location=row.location,
                conversation_id=row.source_id,
                hint=row.error_hint,
            )
            file.write(
                json_line(
                    error_row(
                        error, target_conversation_id=row.conversation_id, retryable=row.retryable
                    )
                )
            )

    return write


def _failed(store: StateStore, start: int, stop: int) -> Iterator[ConversationRow]:
    for row, _ in store.iter_conversations(statuses=["failed"], start=start, stop=stop):
        yield row
