"""`migrate plan`: the dry run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from migrate.cli.common import job_config_from, new_job_dir, source_options
from migrate.cli.options import compress_flag
from migrate.cli.output import info, job_log, progress_bar
from migrate.context.figures import TokenFigures
from migrate.errors import EXIT_OK, EXIT_PARTIAL
from migrate.jobs.files import existing_report
from migrate.jobs.plan import PlanSummary, plan_job
from migrate.plan.pipeline import PlanOutcome, estimate_total
from migrate.reporting import DEFAULT_RATE_PER_MINUTE
from migrate.reporting.terminal import code_lines, page_line
from migrate.transform.findings import ErrorRecord

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
    help="Also write every request to plan.jsonl (the largest file: 1.3 MB per 1,000 "
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
    with progress_bar(desc="planning", unit=" conv", total=estimate_total(config.source)) as bar:

        def advance(outcome: PlanOutcome) -> None:
            bar.update(1)

        summary = plan_job(
            config,
            target_dir,
            on_progress=advance,
            rate_per_minute=rate_per_minute,
            force=force,
            on_ready=job_log,
            write_plan=write_plan,
            compress=compress,
        )
    if as_json:
        click.echo(summary.model_dump_json())
    else:
        click.echo(render_summary(summary))
    errors = existing_report(target_dir, "errors.jsonl")
    if summary.has_errors and errors is not None:
        info(f"why each failed conversation failed: {errors}")
    return EXIT_PARTIAL if summary.has_errors else EXIT_OK


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


def _describe(error: ErrorRecord) -> str:
    """`[code] message`, prefixed by where it happened unless the message already says."""
    where = "" if error.location in error.message else f"{error.location}: "
    return f"[{error.code}] {where}{error.message}"
