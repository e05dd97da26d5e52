"""`migrate status`, `verify`, `rollback` and `report`: read, check and undo a job."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from migrate.cli.common import exits_on_errors
from migrate.cli.options import job_options, job_ref
from migrate.cli.render import render_rollback, render_summary, render_verify
from migrate.errors import ConfigError
from migrate.jobs.lookup import write_ledger
from migrate.jobs.rollback import rollback_job, rollback_preview
from migrate.jobs.status import job_status, write_report
from migrate.jobs.verify import verify_job


@click.command()
@job_options
@click.option("--json", "as_json", is_flag=True, help="Print the counts as one JSON object.")
@exits_on_errors
def status(job_dir: Path | None, job_id: str | None, as_json: bool, state_url: str | None) -> None:
    """Show a job's counts: conversations by status, items, calls, retries, orphans."""
    summary = job_status(job_ref(job_dir, state_url, job_id))
    click.echo(summary.model_dump_json(indent=2) if as_json else render_summary(summary))


@click.command()
@job_options
@click.option("--json", "as_json", is_flag=True, help="Print the findings as one JSON object.")
@click.option("--concurrency", type=click.IntRange(1, 1024), default=8, show_default=True)
@click.option(
    "--count-tokens",
    is_flag=True,
    help="Also ask the target for each conversation's input tokens "
    "(POST /responses/input_tokens) and compare them with the estimate.",
)
@click.option("--model", default="gpt-5", show_default=True, help="Model for --count-tokens.")
@exits_on_errors
def verify(
    job_dir: Path | None,
    job_id: str | None,
    as_json: bool,
    concurrency: int,
    count_tokens: bool,
    model: str,
    state_url: str | None,
) -> None:
    """Read every migrated conversation back and compare it item by item with the plan.

    Reports missing, extra, duplicated, reordered and changed items. Exit code 0: everything
    matches; 1: some conversation differs.
    """
    report = verify_job(
        job_ref(job_dir, state_url, job_id),
        concurrency=concurrency,
        count_tokens=model if count_tokens else None,
    )
    click.echo(report.model_dump_json(indent=2) if as_json else render_verify(report))
    sys.exit(report.exit_code)


@click.command()
@job_options
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--concurrency", type=click.IntRange(1, 1024), default=8, show_default=True)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for rollback.jsonl (default: the job directory; required without one).",
)
@exits_on_errors
def rollback(
    job_dir: Path | None,
    job_id: str | None,
    yes: bool,
    concurrency: int,
    out: Path | None,
    state_url: str | None,
) -> None:
    """Delete every conversation the job created on the target (after confirmation).

    Each deletion is recorded in the state store and in rollback.jsonl. Exit code 0: all
    deleted; 1: some deletions failed.
    """
    ref = job_ref(job_dir, state_url, job_id)
    if out is None and job_dir is None:
        raise ConfigError("without JOB_DIR, rollback needs --out DIR for rollback.jsonl")
    count, target = rollback_preview(ref)
    if count == 0:
        click.echo("nothing to delete: the job created no conversation that still exists")
        return
    if not yes:
        click.confirm(f"Delete {count} conversation(s) from the {target}?", abort=True, err=True)
    result = rollback_job(ref, concurrency=concurrency, out=out)
    click.echo(render_rollback(result))
    sys.exit(result.exit_code)


@click.command()
@job_options
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for the report files (default: the job directory; required without one).",
)
@click.option(
    "--html", "html_only", is_flag=True, help="Rewrite only report.html (and summary.json)."
)
@click.option(
    "--ledger-csv",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the ledger (every source id -> new conversation id, across jobs) as CSV.",
)
@click.option(
    "--ledger-to",
    metavar="URL",
    help="Also write the ledger as a table in the database at URL (replacing that table).",
)
@click.option(
    "--ledger-table", default="id_map", show_default=True, help="Table name for --ledger-to."
)
@exits_on_errors
def report(
    job_dir: Path | None,
    job_id: str | None,
    out: Path | None,
    ledger_csv: Path | None,
    ledger_to: str | None,
    ledger_table: str,
    state_url: str | None,
    html_only: bool,
) -> None:
    """(Re)write the job's report: id maps (CSV, JSON Lines), findings, errors, summary, and
    report.html.

    With --ledger-csv or --ledger-to, the state store's ledger too: the id map of every job
    that wrote through this store, ready for an `UPDATE ... FROM id_map` join.
    """
    ref = job_ref(job_dir, state_url, job_id)
    for path in write_report(ref, out=out, html_only=html_only):
        click.echo(str(path))
    if ledger_csv is not None or ledger_to is not None:
        for line in write_ledger(ref, csv_path=ledger_csv, url=ledger_to, table=ledger_table):
            click.echo(line)
