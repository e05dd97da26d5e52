"""`migrate run`, `resume`, `work`, `status`, `verify`, `rollback`, `report`: the job verbs.

Each command parses its flags, calls one function of `migrate.jobs`, prints the result (data
on stdout, progress and messages on stderr) and exits with the result's code. A job is named by
its directory, or (from a machine without it) by `--state URL --job JOB_ID`.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any, ParamSpec, TypeVar

import click
from tqdm import tqdm

from migrate.cli.common import exits_on_errors, job_config_from, new_job_dir, source_options
from migrate.errors import ConfigError
from migrate.jobs import (
    JobRef,
    JobSummary,
    ProgressUpdate,
    ResumeConfig,
    RollbackResult,
    RunConfig,
    VerifyReport,
    WorkConfig,
    job_status,
    resume_job,
    rollback_job,
    rollback_preview,
    run_job,
    shown_url,
    verify_job,
    work_on_job,
    write_report,
)
from migrate.replay import ReplayOptions
from migrate.target import TargetConfig

P = ParamSpec("P")
R = TypeVar("R")

SHOWN_PROBLEMS = 20


def state_option(command: Callable[P, R]) -> Callable[P, R]:
    """`--state URL` (or `MIGRATE_STATE_URL`): a state store other than the job dir's."""
    return click.option(
        "--state",
        "state_url",
        envvar="MIGRATE_STATE_URL",
        metavar="URL",
        help="SQLAlchemy URL of the state store (default: sqlite in the job dir). "
        "Also read from MIGRATE_STATE_URL.",
    )(command)


def job_options(command: Callable[P, R]) -> Callable[P, R]:
    """Optional JOB_DIR, or `--state URL --job JOB_ID` on a machine without the directory."""
    decorators = [
        click.argument("job_dir", required=False, type=click.Path(file_okay=False, path_type=Path)),
        click.option(
            "--job",
            "job_id",
            metavar="JOB_ID",
            help="With --state and no JOB_DIR: the job's id (`migrate status` shows it).",
        ),
    ]
    for decorate in reversed(decorators):
        command = decorate(command)
    return state_option(command)


def job_ref(job_dir: Path | None, state_url: str | None, job_id: str | None) -> JobRef:
    """The job named on the command line."""
    if job_dir is None and (state_url is None or job_id is None):
        raise click.UsageError("name the job: JOB_DIR, or --state URL --job JOB_ID")
    return JobRef(job_dir=job_dir, state_url=state_url, job_id=job_id)


def lease_option(command: Callable[P, R]) -> Callable[P, R]:
    """`--lease SECONDS`: how long a claim outlives a worker that stopped renewing it."""
    return click.option(
        "--lease",
        type=click.FloatRange(min=1.0),
        help="Seconds a worker's claim on a conversation lasts without renewal; another worker "
        "takes over a dead worker's conversations after it. Default: twice --timeout, at "
        "least 30; must exceed --timeout.",
    )(command)


def rehearsal_options(command: Callable[P, R]) -> Callable[P, R]:
    """Latency, rate limit and fault switches for the local target (rehearsals)."""
    decorators = [
        click.option("--latency-ms", type=float, help="Local target: delay every request."),
        click.option("--jitter-ms", type=float, help="Local target: extra random delay."),
        click.option("--rpm", type=int, help="Local target: requests per minute (429 beyond)."),
        click.option(
            "--fault",
            "faults",
            multiple=True,
            metavar="KIND=RATE",
            help="Local target: inject a fault into that share of writes; KIND is one of "
            "error_before, error_after_commit, drop_after_commit, stall_after_commit, burst_503.",
        ),
        click.option(
            "--fault-script",
            metavar="KIND,KIND,...",
            help="Local target: faults for the first writes, in order (`none` for a clean one).",
        ),
        click.option("--stall-seconds", type=float, help="Local target: length of a stall."),
        click.option("--fault-seed", type=int, help="Local target: seed of the fault draws."),
    ]
    for decorate in reversed(decorators):
        command = decorate(command)
    return command


def server_options_from(options: dict[str, Any]) -> dict[str, Any] | None:
    """The local server's options from the rehearsal flags; None when none was given."""
    given: dict[str, Any] = {}
    for flag, key in (("latency_ms", "latency_ms"), ("jitter_ms", "jitter_ms"), ("rpm", "rpm")):
        if options.get(flag) is not None:
            given[key] = options[flag]
    if options.get("fault_seed") is not None:
        given["seed"] = options["fault_seed"]
    faults: dict[str, Any] = {}
    rates: dict[str, float] = {}
    for pair in options.get("faults") or ():
        kind, sep, rate = pair.partition("=")
        try:
            rates[kind.strip()] = float(rate) if sep else 1.0
        except ValueError:
            raise click.BadParameter(
                f"expected KIND=RATE, got {pair!r}", param_hint="--fault"
            ) from None
    if rates:
        faults["rates"] = rates
    if options.get("fault_script"):
        faults["script"] = [step.strip() for step in options["fault_script"].split(",")]
    if options.get("stall_seconds") is not None:
        faults["stall_seconds"] = options["stall_seconds"]
    if faults:
        given["faults"] = faults
    return given or None


@click.command()
@source_options
@click.option(
    "--target",
    "target_kind",
    type=click.Choice(["local", "openai"]),
    default="local",
    show_default=True,
    help="Where to write: the local server (in the job dir), or OpenAI / --base-url.",
)
@click.option(
    "--base-url",
    help="With --target openai: a Conversations-compatible server (else OPENAI_BASE_URL, "
    "else the OpenAI API). The key comes from OPENAI_API_KEY.",
)
@click.option("--organization", help="With --target openai: the OpenAI organization id.")
@click.option("--project", help="With --target openai: the OpenAI project id.")
@click.option(
    "--job-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="New directory for the job's state and report (default: jobs/run-<time>).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 1024),
    default=8,
    show_default=True,
    help="Conversations in flight at once.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=60.0,
    show_default=True,
    help="Seconds before a call counts as timed out.",
)
@click.option("--max-rate", type=float, help="Never send more than this many requests per second.")
@click.option(
    "--retry-budget",
    type=click.IntRange(0),
    default=10,
    show_default=True,
    help="Failed calls a conversation may take before it fails.",
)
@lease_option
@state_option
@rehearsal_options
@exits_on_errors
def run(
    target_kind: str,
    base_url: str | None,
    organization: str | None,
    project: str | None,
    job_dir: Path | None,
    concurrency: int,
    timeout: float,
    max_rate: float | None,
    retry_budget: int,
    lease: float | None,
    state_url: str | None,
    **options: Any,
) -> None:
    """Migrate SOURCE into the target, exactly once, with a report of every new id.

    SOURCE is what `migrate plan` takes (file, directory, database URL or --job-file). The
    default target is the local server; writing to OpenAI needs `--target openai`. Exit code
    0: all migrated; 1: some conversations failed; 2: usage error; 3: the job did not finish
    (resume it with `migrate resume JOB_DIR`). With `--state` on a database server, other
    machines can join the job with `migrate work` while this process plans and replays.
    """
    job = job_config_from(options)
    server_options = server_options_from(options) or {}
    target = TargetConfig(
        kind="openai" if target_kind == "openai" else "local",
        base_url=base_url,
        organization=organization,
        project=project,
        timeout=timeout,
        max_rate=max_rate,
        server_options=server_options,
    )
    directory = job_dir or new_job_dir("run")
    config = RunConfig(
        job=job,
        job_dir=directory,
        target=target,
        replay=ReplayOptions(concurrency=concurrency, retry_budget=retry_budget, lease=lease),
        state_url=state_url,
    )
    click.echo(f"job: {directory}", err=True)
    # Only a job on a target other processes can reach can take more workers.
    shared = state_url if target.kind == "openai" else None
    with _stoppable() as stop, _ProgressBars(shared) as bars:
        summary = run_job(config, progress=bars.update, stop=stop)
    _finish(summary)


@click.command()
@job_options
@click.option("--concurrency", type=click.IntRange(1, 1024), help="Override the run's value.")
@click.option("--timeout", type=click.FloatRange(min=0.1), help="Override the run's value.")
@click.option(
    "--no-source-check",
    is_flag=True,
    help="Replay the stored plans without re-reading the source.",
)
@rehearsal_options
@exits_on_errors
def resume(
    job_dir: Path | None,
    job_id: str | None,
    concurrency: int | None,
    timeout: float | None,
    no_source_check: bool,
    state_url: str | None,
    **options: Any,
) -> None:
    """Finish an interrupted job: reconcile what was in flight, then go on.

    The source is read again first; if a conversation already in progress or migrated has
    changed, nothing is sent and the command says which. Resume takes the job over: it refuses
    while another worker of the job is alive (use `migrate work` to add one). Exit codes as for
    `migrate run`.
    """
    config = ResumeConfig(
        job=job_ref(job_dir, state_url, job_id),
        concurrency=concurrency,
        timeout=timeout,
        server_options=server_options_from(options),
        check_source=not no_source_check,
    )
    with _stoppable() as stop, _ProgressBars() as bars:
        summary = resume_job(config, progress=bars.update, stop=stop)
    _finish(summary)


@click.command()
@click.option(
    "--state",
    "state_url",
    envvar="MIGRATE_STATE_URL",
    metavar="URL",
    required=True,
    help="SQLAlchemy URL of the job's shared state store. Also read from MIGRATE_STATE_URL.",
)
@click.option("--job", "job_id", metavar="JOB_ID", required=True, help="The job to join.")
@click.option(
    "--target",
    "target_kind",
    type=click.Choice(["local", "openai"]),
    help="Where the job writes, as a check: it must be the job's own target.",
)
@click.option("--concurrency", type=click.IntRange(1, 1024), help="Override the run's value.")
@click.option("--timeout", type=click.FloatRange(min=0.1), help="Override the run's value.")
@lease_option
@exits_on_errors
def work(
    state_url: str,
    job_id: str,
    target_kind: str | None,
    concurrency: int | None,
    timeout: float | None,
    lease: float | None,
) -> None:
    """Join a running job as one more worker (on this machine or another).

    The job's plans, target and progress live in its state store, so the worker needs neither
    the source nor the job directory; the key comes from OPENAI_API_KEY. It claims
    conversations a few at a time, takes over those of workers that died, and stops when the
    whole job is done. Exit codes as for `migrate run`.
    """
    config = WorkConfig(
        state_url=state_url,
        job_id=job_id,
        target_kind=target_kind,
        concurrency=concurrency,
        timeout=timeout,
        lease=lease,
    )
    with _stoppable() as stop, _ProgressBars() as bars:
        summary = work_on_job(config, progress=bars.update, stop=stop)
    _finish(summary)


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
@exits_on_errors
def report(
    job_dir: Path | None, job_id: str | None, out: Path | None, state_url: str | None
) -> None:
    """(Re)write the job's report: id maps (CSV, JSON Lines), findings, errors, summary."""
    for path in write_report(job_ref(job_dir, state_url, job_id), out=out):
        click.echo(str(path))


# --- rendering ---------------------------------------------------------------------------------


def render_summary(summary: JobSummary) -> str:
    """The human-readable job summary."""
    counts = summary.conversations
    unfinished = ""
    if counts.pending or counts.in_progress:
        unfinished = f", {counts.pending} pending, {counts.in_progress} in progress"
    if not summary.planning_complete:
        unfinished += " (source not fully read yet)"
    return "\n".join(
        [
            f"job:              {summary.job_id} ({summary.state})",
            f"source:           {summary.source}",
            f"target:           {summary.target}",
            f"conversations:    {counts.total} total: {counts.migrated} migrated, "
            f"{counts.failed} failed, {counts.skipped} skipped{unfinished}",
            f"items:            {summary.items.landed} landed of {summary.items.planned} planned",
            f"API calls:        {summary.calls} ({summary.retries} retries, "
            f"{summary.reconciliations} reconciliations)",
            f"possible orphans: {summary.possible_orphans}",
            f"findings:         {summary.findings}",
            *([f"deleted:          {summary.deleted}"] if summary.deleted else []),
            f"elapsed:          {summary.elapsed:.1f} s",
        ]
    )


def render_verify(report: VerifyReport) -> str:
    """The human-readable verification result."""
    lines = [
        f"target:      {report.target}",
        f"checked:     {report.checked} migrated conversation(s)",
        f"matching:    {report.matching}",
        f"differing:   {report.differing}",
    ]
    if report.not_migrated:
        lines.append(f"not checked: {report.not_migrated} not yet migrated")
    for check in report.conversations[:SHOWN_PROBLEMS]:
        lines.append(
            f"  {check.location} {check.source_id} -> {check.conversation_id}: "
            f"{check.found} items, {check.planned} planned"
        )
        lines += [f"    {problem.kind}: {problem.detail}" for problem in check.problems[:10]]
    if report.differing > SHOWN_PROBLEMS:
        lines.append(f"  ... {report.differing - SHOWN_PROBLEMS} more (use --json)")
    tokens = report.tokens
    if tokens is not None:
        lines.append(
            f"tokens:      {tokens.checked} counted by the target for {tokens.model}: "
            f"{tokens.exact_total:,} exact, {tokens.estimate_total:,} estimated; "
            f"{tokens.exact_matches} exact match(es), largest difference {tokens.max_difference:,} "
            f"({tokens.max_relative_difference:.2%})"
        )
        lines += [
            f"  {d.source_id} -> {d.conversation_id}: estimate {d.estimate:,}, exact {d.exact:,}"
            for d in tokens.differing[:SHOWN_PROBLEMS]
        ]
    return "\n".join(lines)


def render_rollback(result: RollbackResult) -> str:
    """The human-readable rollback result."""
    lines = [
        f"target:       {result.target}",
        f"deleted:      {result.deleted}",
        f"already gone: {result.already_gone}",
        f"log:          {result.log}",
    ]
    if result.possible_orphans:
        lines.append(
            f"not deletable: {result.possible_orphans} possible orphan(s) (empty conversations "
            "whose ids never reached the job)"
        )
    lines += [f"failed: {failure}" for failure in result.failed]
    return "\n".join(lines)


def _finish(summary: JobSummary) -> None:
    click.echo(render_summary(summary))
    if summary.job_dir is not None:
        click.echo(
            f"report:           {summary.job_dir}/ (conversations.csv, items.csv, "
            "findings.jsonl, errors.jsonl, summary.json)"
        )
        if summary.conversations.failed:
            click.echo(f"why each failed conversation failed: {summary.job_dir}/errors.jsonl")
    if not summary.complete:
        where = summary.job_dir or f"--state URL --job {summary.job_id}"
        click.echo(f"the job is not finished; continue it with: migrate resume {where}", err=True)
    sys.exit(summary.exit_code)


class _ProgressBars:
    """Two tqdm bars on stderr: conversations and items, with rates and ETAs."""

    def __init__(self, state_url: str | None = None) -> None:
        self.conversations: tqdm[Any] | None = None
        self.items: tqdm[Any] | None = None
        self.state_url = state_url

    def __enter__(self) -> _ProgressBars:
        return self

    def __exit__(self, *_: object) -> None:
        for bar in (self.conversations, self.items):
            if bar is not None:
                bar.close()

    def update(self, progress: ProgressUpdate) -> None:
        if progress.event == "started":
            click.echo(f"target: {progress.target}", err=True)
            if self.state_url is not None and progress.job_id is not None:
                click.echo(
                    f"job id: {progress.job_id}; add workers with: migrate work "
                    f"--state {shown_url(self.state_url)} --job {progress.job_id}",
                    err=True,
                )
        if self.conversations is None or self.items is None:
            self.conversations = tqdm(
                desc="conversations", unit=" conv", file=sys.stderr, position=0, disable=None
            )
            self.items = tqdm(desc="items", unit=" item", file=sys.stderr, position=1, disable=None)
        _advance(self.conversations, progress.conversations_done, progress.conversations_known)
        _advance(self.items, progress.items_landed, progress.items_planned)


def _advance(bar: tqdm[Any], value: int, total: int) -> None:
    if bar.total != total:
        bar.total = total
        bar.refresh()
    if value > bar.n:
        bar.update(value - bar.n)


@contextmanager
def _stoppable() -> Iterator[threading.Event]:
    """First Ctrl-C: stop after the calls in flight. Second: stop at once."""
    stop = threading.Event()

    def on_interrupt(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        click.echo("\nstopping after the calls in flight (Ctrl-C again to stop at once)", err=True)

    try:
        previous = signal.signal(signal.SIGINT, on_interrupt)
    except ValueError:  # not the main thread: no handler, Ctrl-C stops at once
        yield stop
        return
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


JOB_COMMANDS = (run, resume, work, status, verify, rollback, report)
