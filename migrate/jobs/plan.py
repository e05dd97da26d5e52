"""`migrate plan`: the dry run. Everything a run does up to the target, written to a job directory.

Files written (all JSON Lines except the summary; with `compress`, `--compress`, the JSON Lines
files are gzip-compressed, `plan.jsonl.gz` and so on):

- `plan.jsonl` (only with `write_plan`, `--write-plan`: it is the largest file by far, 2.4 MB
  per 1,000 conversations of 10 short messages, and every request is validated whether it is
  written or not):
  exactly the requests a run would send, one per line:
  `{"source_id", "call", "method", "path", "body"}`; `path` is relative to the base URL and
  `{conversation_id}` stands for the id the target will mint.
- `conversations.jsonl`: one line per source conversation: status (`planned`, `skipped`,
  `failed`), location, item and call counts, plan fingerprint.
- `findings.jsonl`: every lossy or repairing step, per conversation.
- `errors.jsonl`: every conversation or record that cannot be migrated, and why.
- `summary.json`: the counts (`total = planned + failed + skipped`), API calls, findings by code,
  and under `report` what `report.html` shows (errors and findings by code with examples, the
  estimate of calls, duration and disk at `rate_per_minute`, the largest conversations).
- `report.html`: the same, for a person (`migrate.reporting`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

from pydantic import BaseModel, Field

from migrate.config import JobConfig
from migrate.context.figures import TokenFigures, TokenTally
from migrate.errors import ConfigError
from migrate.jobs.files import (
    ErrorRow,
    JsonLinesFile,
    error_row,
    finding_row,
    report_path,
    write_text,
)
from migrate.plan.model import ConversationPlan
from migrate.plan.pipeline import (
    PlanOutcome,
    SkippedFiles,
    iterate_plans,
    open_configured_source,
    read_total,
    skipped_files,
)
from migrate.reporting import DEFAULT_RATE_PER_MINUTE, PlanReportBuilder, ReportData
from migrate.reporting.render import write_report_html
from migrate.transform.findings import ErrorRecord

MAX_ERRORS_IN_SUMMARY = 1000


@dataclass(frozen=True)
class PlanProgress:
    """Where a plan stands, after each conversation (`plan_job`'s `on_progress`)."""

    conversations: int
    """Source records planned so far."""
    position: int
    """Of `total`: conversations, or bytes of the source's files read (`unit`)."""
    total: int | None
    unit: Literal["conversations", "bytes"]


ProgressCallback = Callable[[PlanProgress], None]


class PlannedConversationCounts(BaseModel):
    """Source records by what the plan does with them; `total = planned + failed + skipped`."""

    total: int = 0
    planned: int = 0
    failed: int = 0
    skipped: int = 0


class PlannedItemCounts(BaseModel):
    planned: int = 0


class PlanSummary(BaseModel):
    """What a run of this plan would do; `--json` prints exactly this."""

    source: str
    job_dir: str
    conversations: PlannedConversationCounts = Field(default_factory=PlannedConversationCounts)
    items: PlannedItemCounts = Field(default_factory=PlannedItemCounts)
    api_calls: int = 0
    findings: dict[str, int] = Field(default_factory=dict)
    errors: list[ErrorRow] = Field(default_factory=list)
    """Named as in `errors.jsonl`: `source_id` is the source conversation's id."""
    errors_total: int = 0
    """All errors; `errors` lists at most the first `MAX_ERRORS_IN_SUMMARY`."""
    skipped_files: SkippedFiles = Field(default_factory=SkippedFiles)
    """Files of a directory source that hold no conversations to read, and why."""
    tokens: TokenFigures | None = None
    """Input tokens per conversation for the policy's model (`migrate.context`)."""
    report: ReportData | None = None

    @property
    def has_errors(self) -> bool:
        return self.errors_total > 0


class _PlanFiles:
    """The dry run's output files, open for the duration of one plan."""

    def __init__(self, job_dir: Path, *, write_plan: bool, compress: bool) -> None:
        def named(name: str) -> Path:
            return report_path(job_dir, name, compress=compress)

        self.plan = JsonLinesFile(named("plan.jsonl") if write_plan else None)
        self.conversations = JsonLinesFile(named("conversations.jsonl"))
        self.findings = JsonLinesFile(named("findings.jsonl"))
        self.errors = JsonLinesFile(named("errors.jsonl"))

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for lines in (self.plan, self.conversations, self.findings, self.errors):
            lines.close(complete=exc_type is None)


JOB_MARKERS = (
    "summary.json",
    "plan.jsonl",
    "plan.jsonl.gz",
    "conversations.jsonl",
    "conversations.jsonl.gz",
    "job.json",
    "state.db",
)
"""Files whose presence means a directory already holds a plan or a job."""


def plan_job(
    config: JobConfig,
    job_dir: Path,
    *,
    on_progress: ProgressCallback | None = None,
    rate_per_minute: int = DEFAULT_RATE_PER_MINUTE,
    force: bool = False,
    on_ready: Callable[[Path], object] | None = None,
    write_plan: bool = False,
    compress: bool = False,
) -> PlanSummary:
    """Read, transform, validate and batch every conversation; write the plan files.

    Raises `ConfigError` when `job_dir` already holds a plan or a job (unless `force`),
    `SourceError` when the source cannot be opened and `SourceReadError` when it fails in the
    middle. Conversation-level problems never raise: they are counted and written to
    `errors.jsonl`. `on_ready` is called with the directory once it exists; `write_plan`
    writes every request to `plan.jsonl` too; `compress` writes the JSON Lines files as
    `.gz`.
    """
    held = [name for name in JOB_MARKERS if (job_dir / name).exists()]
    if held and not force:
        what = "a job" if {"job.json", "state.db"} & set(held) else "a plan"
        raise ConfigError(
            f"{job_dir} already holds {what} ({', '.join(held)})",
            hint="choose another --job-dir, or give --force to overwrite its files",
        )
    source = open_configured_source(config.source)
    builder = PlanReportBuilder()
    outcomes = iterate_plans(source, config.policy, observe=builder.observe)
    job_dir.mkdir(parents=True, exist_ok=True)
    if on_ready is not None:
        on_ready(job_dir)
    summary = PlanSummary(
        source=source.describe(), job_dir=str(job_dir), skipped_files=skipped_files(source)
    )
    total = read_total(source, config.source)
    findings: Counter[str] = Counter()
    tally = TokenTally(config.policy)
    for stale in ("plan.jsonl", "plan.jsonl.gz"):  # a forced re-plan leaves no stale one
        (job_dir / stale).unlink(missing_ok=True)
    with _PlanFiles(job_dir, write_plan=write_plan, compress=compress) as files:
        for outcome in outcomes:
            _record(outcome, files, summary, findings)
            if isinstance(outcome, ErrorRecord):
                tally.add_failure(outcome.code)
            elif outcome.items:
                tally.add(
                    outcome.tokens, outcome.findings, estimated=outcome.tokens_estimate is not None
                )
            if on_progress is not None:
                done = summary.conversations.total
                on_progress(PlanProgress(done, total.position(done), total.total, total.unit))
    if on_progress is not None:  # the last file is now read to its end
        done = summary.conversations.total
        on_progress(PlanProgress(done, total.position(done), total.total, total.unit))
    summary.findings = dict(sorted(findings.items()))
    summary.tokens = tally.figures()
    summary.report = builder.build(
        conversations=summary.conversations.total,
        items=summary.items.planned,
        calls=summary.api_calls,
        plan_bytes=files.plan.size,
        rate_per_minute=rate_per_minute,
    )
    write_text(job_dir / "summary.json", summary.model_dump_json(indent=2) + "\n")
    write_report_html(job_dir, summary.model_dump(mode="json"), builder.samples.samples)
    return summary


def _record(
    outcome: PlanOutcome, files: _PlanFiles, summary: PlanSummary, findings: Counter[str]
) -> None:
    counts = summary.conversations
    counts.total += 1
    if isinstance(outcome, ErrorRecord):
        counts.failed += 1
        summary.errors_total += 1
        row = error_row(outcome)
        if len(summary.errors) < MAX_ERRORS_IN_SUMMARY:
            summary.errors.append(ErrorRow.model_validate(row))
        files.errors.write(row)
        files.conversations.write(
            {
                "source_id": outcome.conversation_id,
                "location": outcome.location,
                "status": "failed",
                "error": outcome.code,
            }
        )
        return
    status: Literal["planned", "skipped"] = "planned" if outcome.items else "skipped"
    if status == "planned":
        counts.planned += 1
        _write_requests(outcome, files)
        summary.items.planned += len(outcome.items)
        summary.api_calls += 1 + len(outcome.batch_sizes)
    else:
        counts.skipped += 1
    for finding in outcome.findings:
        findings[finding.code] += finding.count
        files.findings.write(finding_row(finding, outcome.location))
    files.conversations.write(
        {
            "source_id": outcome.source_id,
            "location": outcome.location,
            "status": status,
            "items": len(outcome.items),
            "calls": 1 + len(outcome.batch_sizes) if outcome.items else 0,
            "tokens": outcome.tokens,
            "tokens_estimate": outcome.tokens_estimate,
            "fingerprint": outcome.fingerprint,
        }
    )


def _write_requests(plan: ConversationPlan, files: _PlanFiles) -> None:
    for call, request in enumerate(plan.requests()):
        files.plan.write(
            {
                "source_id": plan.source_id,
                "call": call,
                "method": request.method,
                "path": request.path,
                "body": request.body,
            }
        )
