"""`migrate run`, `resume` and `work`: plan and replay a job, exactly once."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import click

from migrate.cli.common import job_config_from, new_job_dir, source_options
from migrate.cli.options import (
    job_options,
    job_ref,
    lease_option,
    rehearsal_options,
    server_options_from,
    state_option,
)
from migrate.cli.output import info, job_log, progress_bar
from migrate.cli.render import ProgressBars, show_summary, stoppable
from migrate.jobs.models import JobSummary, ResumeConfig, RunConfig, WorkConfig
from migrate.jobs.run import resume_job, run_job, work_on_job
from migrate.replay.replayer import ReplayOptions
from migrate.replay.target import TargetConfig

TARGET_KINDS: dict[str, Literal["local", "openai", "azure"]] = {
    "local": "local",
    "openai": "openai",
    "azure": "azure",
}

json_option = click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the final summary as one JSON object on stdout (and nothing else there).",
)


@click.command()
@source_options
@click.option(
    "--target",
    "target_kind",
    type=click.Choice(["local", "openai", "azure"]),
    default="local",
    show_default=True,
    help="Where to write: the local server (in the job dir), OpenAI / --base-url, or Azure "
    "(--azure-endpoint).",
)
@click.option(
    "--azure-endpoint",
    help="With --target azure: the Azure OpenAI resource or Foundry project endpoint. The key "
    "comes from AZURE_OPENAI_API_KEY, else Microsoft Entra ID.",
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
@click.option(
    "--unreachable-after",
    type=click.FloatRange(min=1.0),
    default=300.0,
    show_default=True,
    help="Seconds in which the target answers no call (refused connections, timeouts) "
    "before the job stops with exit 3; no conversation fails for it.",
)
@json_option
@lease_option
@state_option
@rehearsal_options
def run(
    target_kind: str,
    azure_endpoint: str | None,
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
    unreachable_after: float,
    as_json: bool,
    **options: Any,
) -> JobSummary:
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
        kind="openai"
        if target_kind == "openai"
        else "azure"
        if target_kind == "azure"
        else "local",
        base_url=base_url,
        azure_endpoint=azure_endpoint,
        organization=organization,
        project=project,
        timeout=timeout,
        max_rate=max_rate,
        server_options=server_options,
        unreachable_after=unreachable_after,
    )
    directory = job_dir or new_job_dir("run")
    config = RunConfig(
        job=job,
        job_dir=directory,
        target=target,
        replay=ReplayOptions(concurrency=concurrency, retry_budget=retry_budget, lease=lease),
        state_url=state_url,
    )
    info(f"job: {directory}")
    # Only a job on a target other processes can reach can take more workers.
    shared = state_url if target.kind != "local" else None
    with stoppable() as stop, ProgressBars(shared) as bars:
        summary = run_job(config, progress=bars.update, stop=stop, on_ready=job_log)
    return show_summary(summary, as_json=as_json)


@click.command()
@job_options
@click.option("--concurrency", type=click.IntRange(1, 1024), help="Override the run's value.")
@click.option("--timeout", type=click.FloatRange(min=0.1), help="Override the run's value.")
@click.option(
    "--no-source-check",
    is_flag=True,
    help="Replay the stored plans without re-reading the source.",
)
@json_option
@rehearsal_options
def resume(
    job_dir: Path | None,
    job_id: str | None,
    concurrency: int | None,
    timeout: float | None,
    no_source_check: bool,
    state_url: str | None,
    as_json: bool,
    **options: Any,
) -> JobSummary:
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
    if job_dir is not None:
        job_log(job_dir)
    checking = progress_bar(desc="source check", unit=" conv")

    def checked(done: int, total: int) -> None:
        if checking.total != total:
            checking.total = total
        checking.update(done - checking.n)
        if done >= total:
            checking.close()  # the check is over: the replay's bars follow

    with stoppable() as stop, ProgressBars() as bars, checking:
        summary = resume_job(config, progress=bars.update, stop=stop, check_progress=checked)
    return show_summary(summary, as_json=as_json)


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
    type=click.Choice(["local", "openai", "azure"]),
    help="Where the job writes, as a check: it must be the job's own target.",
)
@click.option("--concurrency", type=click.IntRange(1, 1024), help="Override the run's value.")
@click.option("--timeout", type=click.FloatRange(min=0.1), help="Override the run's value.")
@lease_option
@json_option
def work(
    state_url: str,
    job_id: str,
    target_kind: str | None,
    concurrency: int | None,
    timeout: float | None,
    lease: float | None,
    as_json: bool,
) -> JobSummary:
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
    with stoppable() as stop, ProgressBars() as bars:
        summary = work_on_job(config, progress=bars.update, stop=stop)
    return show_summary(summary, as_json=as_json)
