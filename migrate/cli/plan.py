"""`migrate plan`: the dry run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

from migrate.cli.common import job_config_from, source_options
from migrate.cli.invocation import new_job_dir
from migrate.cli.options import compress_flag
from migrate.cli.output import info, job_log, progress_bar
from migrate.cli.render import skipped_file_lines
from migrate.context.figures import TokenFigures
from migrate.errors import EXIT_OK, EXIT_PARTIAL
from migrate.jobs.files import ErrorRow, existing_report
from migrate.jobs.plan import PlanProgress, PlanSummary, plan_job
from migrate.reporting import DEFAULT_RATE_PER_MINUTE
from migrate.reporting.terminal import code_lines, page_line

SHOWN_ERRORS = 10


@click.command()
@source_options
@click.option(
    "--job-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to write the plan (default: jobs/plan-<time>).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.option(
    "--rate-per-minute",
    type=click.IntRange(min=1),
    default=DEFAULT_RATE_PER_MINUTE,
    show_default=True,
    help="Requests per minute the estimate of a run's duration assumes.",
)
@click.option(
    "--force", is_flag=True, help="Plan into a directory that already holds a plan or a job."
)
@click.option(
    "--write-plan",
    is_flag=True,
    help="Also write every request to plan.jsonl (the largest file: 2.4 MB per 1,000 "
    "conversations of 10 short messages).",
)
@compress_flag
def plan(
    job_dir: Path | None,
    as_json: bool,
    rate_per_minute: int,
    force: bool,
    write_plan: bool,
    compress: bool,
    **options: Any,
) -> int:
    """Dry run: plan every API call for SOURCE and report what would be lost.

    SOURCE is a JSON/JSONL file or directory, or a database URL (with --preset or a job file).
    Nothing is sent anywhere. Exit code 0: clean; 1: some conversations cannot be migrated;
    2: usage or configuration error.
    """
    config = job_config_from(options)
    target_dir = job_dir or new_job_dir("plan")
    bar = PlanBar()
    try:
        summary = plan_job(
            config,
            target_dir,
            on_progress=bar.advance,
            rate_per_minute=rate_per_minute,
            force=force,
            on_ready=job_log,
            write_plan=write_plan,
            compress=compress,
        )
    finally:
        bar.close()
    if as_json:
        click.echo(summary.model_dump_json())
    else:
        click.echo(render_summary(summary))
    errors = existing_report(target_dir, "errors.jsonl")
    if summary.has_errors and errors is not None:
        info(f"why each failed conversation failed: {errors}")
    return EXIT_PARTIAL if summary.has_errors else EXIT_OK


class PlanBar:
    """The plan's bar, opened at the first conversation, once its total and unit are known:
    conversations (a JSON Lines file, a SQL `COUNT`) or the bytes of the source's files."""

    def __init__(self) -> None:
        self._bar: tqdm[Any] | None = None

    def advance(self, progress: PlanProgress) -> None:
        if self._bar is None:
            unit: dict[str, Any] = (
                {"unit": "B", "unit_scale": True, "unit_divisor": 1024}
                if progress.unit == "bytes"
                else {"unit": " conv"}
            )
            self._bar = progress_bar(desc="planning", total=progress.total, **unit)
        bar = self._bar
        if progress.position > bar.n:
            bar.update(progress.position - bar.n)
        if progress.unit == "bytes":
            bar.set_postfix_str(f"{progress.conversations} conv", refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def render_summary(summary: PlanSummary) -> str:
    """The human-readable dry-run summary."""
    job_dir = Path(summary.job_dir)
    counts = summary.conversations
    lines = [
        f"source:        {summary.source}",
        f"conversations: {counts.total} total, {counts.planned} planned, "
        f"{counts.failed} failed, {counts.skipped} skipped",
        f"items:         {summary.items.planned}",
        f"API calls:     {summary.api_calls}",
        *skipped_file_lines(summary.skipped_files, label="skipped files:", width=15),
    ]
    if summary.tokens is not None:
        lines += render_tokens(summary.tokens)
    estimate = summary.report.estimate if summary.report is not None else None
    if estimate is not None:
        lines.append(
            f"estimate:      {estimate.minutes:.1f} min at {estimate.rate_per_minute} requests/min"
            f", {estimate.disk_bytes / 1e6:.1f} MB of disk for a run"
        )
    if summary.report is not None:
        lines += code_lines(summary.report)
    if summary.errors_total:
        lines.append(f"first errors ({summary.errors_total} in all):")
        lines += [f"  {_describe(error)}" for error in summary.errors[:SHOWN_ERRORS]]
        if summary.errors_total > SHOWN_ERRORS:
            lines.append(f"  ... {summary.errors_total - SHOWN_ERRORS} more in errors.jsonl")
    names = ("plan.jsonl", "conversations.jsonl", "findings.jsonl", "errors.jsonl")
    written = [found.name for name in names if (found := existing_report(job_dir, name))]
    lines.append(f"plan written to {summary.job_dir}/ ({', '.join(written)})")
    lines.append(page_line(summary.job_dir, label="report:", width=15))
    return "\n".join(lines)


def render_tokens(figures: TokenFigures) -> list[str]:
    """The token lines of a summary."""
    return [
        f"tokens:        {figures.total:,} for {figures.model} (input limit {figures.limit:,}); "
        f"per conversation p50 {figures.p50:,}, p90 {figures.p90:,}, p99 {figures.p99:,}, "
        f"max {figures.max:,}",
        f"context:       {figures.over_limit} over the limit, {figures.near_limit} near it "
        f"(80%+), {figures.trimmed} trimmed, {figures.estimated} estimated",
    ]


def _describe(error: ErrorRow) -> str:
    """`[code] message`, prefixed by where it happened unless the message already says."""
    where = "" if error.location in error.message else f"{error.location}: "
    return f"[{error.code}] {where}{error.message}"
