"""`migrate run`, `resume` and `work`: plan and replay a job, exactly once."""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, ParamSpec, TypeVar

import click

from migrate.cli.common import job_config_from, source_options
from migrate.cli.invocation import Invocation, new_job_dir, read_invocation, with_option
from migrate.cli.options import (
    compress_flag,
    compress_switch,
    job_options,
    job_ref,
    lease_option,
    rehearsal_options,
    server_options_from,
    state_option,
)
from migrate.cli.output import bars_shown, info, job_log, progress_bar
from migrate.cli.render import ProgressBars, show_summary, stoppable
from migrate.errors import ConfigError
from migrate.jobs.models import JobSummary, ResumeConfig, RunConfig, Subset, SyncConfig, WorkConfig
from migrate.jobs.record import holds_job
from migrate.jobs.run import resume_job, run_job, work_on_job
from migrate.jobs.sync import sync_job
from migrate.plan.pipeline import expected_conversations
from migrate.replay.options import ReplayOptions
from migrate.replay.target import TargetConfig

P = ParamSpec("P")
R = TypeVar("R")

TARGET_KINDS: dict[str, Literal["local", "openai", "azure"]] = {
    "local": "local",
    "openai": "openai",
    "azure": "azure",
}

settle_option = click.option(
    "--settle",
    type=click.FloatRange(min=0.0),
    help="Seconds after a write whose outcome is unknown (timeout, dropped connection, 5xx) "
    "before it counts as landed or lost: the conversation is reconciled, and audited at the "
    "end, only then. Default: twice --timeout, at least 10.",
)

json_option = click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the final summary as one JSON object on stdout (and nothing else there).",
)


max_wait_option = click.option(
    "--max-wait",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Stop the job (exit 3, resume it later) once the target has answered nothing but 429s "
    "for this long. 429s never fail a conversation; without this the job waits them out.",
)


def run_options(command: Callable[P, R]) -> Callable[P, R]:
    """The options `run` and `sync` share: source, target, job directory, pace, subset."""
    decorators: list[Callable[[Any], Any]] = [
        source_options,
        click.option(
            "--target",
            "target_kind",
            type=click.Choice(["local", "openai", "azure"]),
            default="local",
            show_default=True,
            help="Where to write: the local server (in the job dir), OpenAI / --base-url, or "
            "Azure (--azure-endpoint).",
        ),
        click.option(
            "--azure-endpoint",
            help="With --target azure: the Azure OpenAI resource or Foundry project endpoint. "
            "The key comes from AZURE_OPENAI_API_KEY, else Microsoft Entra ID.",
        ),
        click.option(
            "--base-url",
            help="With --target openai: a Conversations-compatible server (else "
            "OPENAI_BASE_URL, else the OpenAI API). The key comes from OPENAI_API_KEY.",
        ),
        click.option("--organization", help="With --target openai: the OpenAI organization id."),
        click.option("--project", help="With --target openai: the OpenAI project id."),
        click.option(
            "--job-dir",
            type=click.Path(file_okay=False, path_type=Path),
            help="Directory for the job's state and report (default: jobs/<verb>-<time>).",
        ),
        click.option(
            "--concurrency",
            type=click.IntRange(1, 1024),
            default=8,
            show_default=True,
            help="Conversations in flight at once.",
        ),
        click.option(
            "--timeout",
            type=click.FloatRange(min=0.1),
            default=60.0,
            show_default=True,
            help="Seconds before a call counts as timed out.",
        ),
        click.option(
            "--max-rate", type=float, help="Never send more than this many requests per second."
        ),
        click.option(
            "--retry-budget",
            type=click.IntRange(0),
            default=10,
            show_default=True,
            help="Failed calls a conversation may take before it fails.",
        ),
        click.option(
            "--create-with-items",
            is_flag=True,
            help="Send each conversation's first batch with its create call: one call fewer "
            "per conversation. A create whose answer is lost may then leave a conversation "
            "holding items whose id never reached the job (OpenAI lists no conversations; "
            "the report counts them). Always so on targets that list conversations (Azure).",
        ),
        click.option(
            "--read-item-ids",
            is_flag=True,
            help="After a create that carried items, list them at once for their ids (one "
            "call more per conversation). Without it `migrate verify` reads them.",
        ),
        click.option(
            "--unreachable-after",
            type=click.FloatRange(min=1.0),
            default=300.0,
            show_default=True,
            help="Seconds in which the target answers no call (refused connections, timeouts) "
            "before the job stops with exit 3; no conversation fails for it.",
        ),
        max_wait_option,
        click.option(
            "--limit", type=click.IntRange(0), help="Take only the first N source records."
        ),
        click.option(
            "--ids",
            "ids_file",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="Take only the source conversations whose ids FILE lists (one per line).",
        ),
        settle_option,
        json_option,
        compress_flag,
        lease_option,
        state_option,
        rehearsal_options,
    ]
    for decorate in reversed(decorators):
        command = decorate(command)
    return command


def run_fields(verb: str, options: dict[str, Any]) -> dict[str, Any]:
    """The fields of a `RunConfig` (or `SyncConfig`) from the values of `run_options`."""
    target = TargetConfig(
        kind=TARGET_KINDS[options["target_kind"]],
        base_url=options["base_url"],
        azure_endpoint=options["azure_endpoint"],
        organization=options["organization"],
        project=options["project"],
        timeout=options["timeout"],
        max_rate=options["max_rate"],
        server_options=server_options_from(options) or {},
        unreachable_after=options["unreachable_after"],
    )
    ids_file: Path | None = options["ids_file"]
    return {
        "job": job_config_from(options),
        "job_dir": options["job_dir"] or new_job_dir(verb),
        "target": target,
        "replay": ReplayOptions(
            concurrency=options["concurrency"],
            retry_budget=options["retry_budget"],
            max_wait=options["max_wait"],
            lease=options["lease"],
            create_with_items=options["create_with_items"],
            read_item_ids=options["read_item_ids"],
            settle=options["settle"],
        ),
        "state_url": options["state_url"],
        "subset": Subset(
            limit=options["limit"], ids=None if ids_file is None else read_ids(ids_file)
        ),
        "compress": options["compress"],
    }


def read_ids(path: Path) -> list[str]:
    """Source conversation ids, one per line (blank lines and `#` comments left out)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read --ids {path}: {exc}") from exc
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def drive(config: RunConfig, *, as_json: bool) -> JobSummary:
    """Run or sync `config` with progress bars; the summary is printed and returned."""
    info(f"job: {config.job_dir}")
    # Only a job on a target other processes can reach can take more workers.
    shared = config.state_url if config.target.kind != "local" else None
    subset = config.subset
    expected = (
        expected_conversations(
            config.job.source,
            limit=subset.limit,
            ids=None if subset.ids is None else len(subset.ids),
        )
        if bars_shown()
        else None
    )
    with stoppable() as stop, ProgressBars(shared, expected=expected) as bars:
        if isinstance(config, SyncConfig):
            summary = sync_job(config, progress=bars.update, stop=stop, on_ready=job_log)
        else:
            summary = run_job(config, progress=bars.update, stop=stop, on_ready=job_log)
    return show_summary(summary, as_json=as_json)


@click.command()
@run_options
@click.option(
    "--allow-duplicates",
    is_flag=True,
    help="Run even if the state store's ledger already holds conversations in this target.",
)
def run(allow_duplicates: bool, as_json: bool, **options: Any) -> JobSummary:
    """Migrate SOURCE into the target, exactly once, with a report of every new id.

    SOURCE is what `migrate plan` takes (file, directory, database URL or --job-file). The
    default target is the local server; writing to OpenAI needs `--target openai`. Exit code
    0: all migrated; 1: some conversations failed; 2: usage error; 3: the job did not finish
    (resume it with `migrate resume JOB_DIR`). With `--state` on a database server, other
    machines can join the job with `migrate work` while this process plans and replays. A run
    refuses a target the state store's ledger already holds conversations in: use `migrate
    sync` to bring only what is new across.
    """
    config = RunConfig(**run_fields("run", options), allow_duplicates=allow_duplicates)
    return drive(config, as_json=as_json)


@click.command()
@job_options
@click.option("--concurrency", type=click.IntRange(1, 1024), help="Override the run's value.")
@click.option("--timeout", type=click.FloatRange(min=0.1), help="Override the run's value.")
@settle_option
@click.option(
    "--no-source-check",
    is_flag=True,
    help="Replay the stored plans without re-reading the source.",
)
@click.option(
    "--retry-failed",
    is_flag=True,
    help="Try every failed conversation again (after its cause is fixed), not only those "
    "that failed for a transient reason.",
)
@max_wait_option
@json_option
@compress_switch
@rehearsal_options
def resume(
    job_dir: Path | None,
    job_id: str | None,
    concurrency: int | None,
    timeout: float | None,
    max_wait: float | None,
    settle: float | None,
    no_source_check: bool,
    retry_failed: bool,
    state_url: str | None,
    as_json: bool,
    compress: bool | None,
    **options: Any,
) -> JobSummary:
    """Finish an interrupted job: reconcile what was in flight, then go on.

    The source is read again as the replay goes on, and each conversation is compared with
    its stored plan before anything is written to it: one in progress whose source changed
    fails (the rest go on). Resume takes the job over: it refuses
    while another worker of the job is alive (use `migrate work` to add one). A run killed
    before it recorded its job (JOB_DIR holds only its command line) starts again as it was
    given: nothing had been sent. Exit codes as for `migrate run`.
    """
    unrecorded = None if job_dir is None or holds_job(job_dir) else read_invocation(job_dir)
    if unrecorded is not None:
        overrides = {"--concurrency": concurrency, "--timeout": timeout, "--settle": settle}
        overrides["--max-wait"] = max_wait
        return start_unrecorded(unrecorded, state_url=state_url, overrides=overrides)
    config = ResumeConfig(
        job=job_ref(job_dir, state_url, job_id),
        concurrency=concurrency,
        timeout=timeout,
        max_wait=max_wait,
        settle=settle,
        server_options=server_options_from(options),
        check_source=not no_source_check,
        retry_failed=retry_failed,
        compress=compress,
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


def start_unrecorded(
    invocation: Invocation, *, state_url: str | None, overrides: dict[str, float | None]
) -> JobSummary:
    """`resume` of a job whose `run` was killed before it recorded the job (nothing was sent):
    the run starts again from its kept command line, in the directory it was given in."""
    args = invocation.args
    if state_url is not None:
        args = with_option(args, "--state", state_url)
    if Invocation(invocation.verb, args, invocation.cwd).masked:
        raise ConfigError(
            "the job was never recorded, and its command line held a URL whose password is "
            f"not kept: migrate {invocation.verb} {shlex.join(invocation.args)}",
            hint=f"run `migrate {invocation.verb}` again with the password (nothing was recorded "
            "or sent); a --state password can also be given to `migrate resume --state URL`",
        )
    for name, value in overrides.items():
        if value is not None:
            args = with_option(args, name, str(value))
    info(
        "the job was not recorded yet (nothing was sent): starting it as it was given: "
        f"migrate {invocation.verb} {shlex.join(invocation.args)}"
    )
    root = click.get_current_context().find_root()
    assert isinstance(root.command, click.Group)
    command = root.command.get_command(root, invocation.verb)
    assert command is not None
    given_in = os.getcwd()
    os.chdir(invocation.cwd)
    try:
        with command.make_context(invocation.verb, args, parent=root) as context:
            summary = command.invoke(context)
    finally:
        os.chdir(given_in)
    assert isinstance(summary, JobSummary)
    return summary


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
@settle_option
@lease_option
@max_wait_option
@json_option
def work(
    state_url: str,
    job_id: str,
    target_kind: str | None,
    concurrency: int | None,
    timeout: float | None,
    max_wait: float | None,
    settle: float | None,
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
        settle=settle,
        lease=lease,
        max_wait=max_wait,
    )
    with stoppable() as stop, ProgressBars() as bars:
        summary = work_on_job(config, progress=bars.update, stop=stop)
    return show_summary(summary, as_json=as_json)
