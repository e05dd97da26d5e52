"""`migrate status`, `verify`, `rollback` and `report`: read, check and undo a job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

from migrate.cli.options import compress_switch, job_options, job_ref
from migrate.cli.output import progress_bar
from migrate.cli.render import render_rollback, render_summary, render_verify
from migrate.errors import ConfigError
from migrate.jobs.lookup import write_ledger
from migrate.jobs.rollback import rollback_job, rollback_preview
from migrate.jobs.status import job_status, write_report
from migrate.jobs.verify import verify_job


@click.command()
@job_options
@click.option("--json", "as_json", is_flag=True, help="Print the counts as one JSON object.")
def status(job_dir: Path | None, job_id: str | None, as_json: bool, state_url: str | None) -> int:
    """Show a job's counts: conversations by status, items, calls, retries, orphans."""
    summary = job_status(job_ref(job_dir, state_url, job_id))
    click.echo(summary.model_dump_json(indent=2) if as_json else render_summary(summary))
    return 0


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
@click.option(
    "--repair",
    is_flag=True,
    help="Repair what late writes left: delete surplus copies of planned items and append "
    "missing ones (each write journaled), then check again. Anything else is left alone.",
)
def verify(
    job_dir: Path | None,
    job_id: str | None,
    as_json: bool,
    concurrency: int,
    count_tokens: bool,
    model: str,
    repair: bool,
    state_url: str | None,
) -> int:
    """Read every migrated conversation back and compare it item by item with the plan.

    Reports missing, extra, duplicated, reordered and changed items. With --repair, the
    conversations that differ only by what a late write leaves are repaired as the job's own
    audit does. Exit code 0: everything matches; 1: some conversation differs.
    """
    with progress_bar(desc="verifying", unit=" conv") as bar:
        report = verify_job(
            job_ref(job_dir, state_url, job_id),
            concurrency=concurrency,
            count_tokens=model if count_tokens else None,
            progress=lambda done, total: _advance_to(bar, done, total),
            repair=repair,
        )
    click.echo(report.model_dump_json(indent=2) if as_json else render_verify(report))
    return report.exit_code


@click.command()
@job_options
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--concurrency", type=click.IntRange(1, 1024), default=8, show_default=True)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for rollback.jsonl (default: the job directory; required without one).",
)
def rollback(
    job_dir: Path | None,
    job_id: str | None,
    yes: bool,
    concurrency: int,
    out: Path | None,
    state_url: str | None,
) -> int:
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
        return 0
    if not yes:
        click.confirm(f"Delete {count} conversation(s) from the {target}?", abort=True, err=True)
    with progress_bar(desc="deleting", unit=" conv", total=count) as bar:
        result = rollback_job(
            ref,
            concurrency=concurrency,
            out=out,
            progress=lambda done, total: _advance_to(bar, done, total),
        )
    click.echo(render_rollback(result))
    return result.exit_code


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
@compress_switch
def report(
    job_dir: Path | None,
    job_id: str | None,
    out: Path | None,
    state_url: str | None,
    html_only: bool,
    ledger_csv: Path | None,
    ledger_to: str | None,
    ledger_table: str,
    compress: bool | None,
) -> int:
    """(Re)write the job's report: id maps (CSV), findings, errors, summary, and report.html.

    With --ledger-csv or --ledger-to, the state store's ledger too: the id map of every job
    that wrote through this store, ready for an `UPDATE ... FROM id_map` join.
    """
    ref = job_ref(job_dir, state_url, job_id)
    with progress_bar(desc="report", unit=" conv") as bar:
        paths = write_report(
            ref,
            out=out,
            html_only=html_only,
            progress=lambda done, total: _advance_to(bar, done, total),
            compress=compress,
        )
    for path in paths:
        click.echo(str(path))
    if ledger_csv is not None or ledger_to is not None:
        for line in write_ledger(ref, csv_path=ledger_csv, url=ledger_to, table=ledger_table):
            click.echo(line)
    return 0


def _advance_to(bar: tqdm[Any], done: int, total: int) -> None:
    """Move `bar` to `done` of `total` (the library's progress callbacks give both)."""
    if bar.total != total:
        bar.total = total
        bar.refresh()
    if done > bar.n:
        bar.update(done - bar.n)
