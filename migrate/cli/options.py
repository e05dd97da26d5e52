"""Options shared by the job verbs: the job reference, state store, lease and rehearsal flags."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import click

from migrate.jobs.models import JobRef
from migrate.server.options import FAULT_KINDS

P = ParamSpec("P")
R = TypeVar("R")


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


COMPRESS_HELP = (
    "Write the report's id maps, findings and errors gzip-compressed (items.csv.gz, ...): "
    "about a fifth of the disk."
)


def compress_flag(command: Callable[P, R]) -> Callable[P, R]:
    """`--compress`: a new plan or job writes its report files as `.gz`."""
    return click.option("--compress", is_flag=True, help=COMPRESS_HELP)(command)


def compress_switch(command: Callable[P, R]) -> Callable[P, R]:
    """`--compress/--no-compress` for an existing job (default: as the job was started)."""
    return click.option(
        "--compress/--no-compress",
        default=None,
        help=COMPRESS_HELP + " Default: as the job was started.",
    )(command)


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
            help="Local target: inject a fault into that share of writes (a bare KIND: all of "
            f"them); KIND is one of {', '.join(FAULT_KINDS)}.",
        ),
        click.option(
            "--fault-script",
            metavar="KIND,KIND,...",
            help="Local target: faults for the first writes, in order (`none` for a clean one).",
        ),
        click.option("--stall-seconds", type=float, help="Local target: length of a stall."),
        click.option(
            "--late-seconds",
            type=float,
            help="Local target: how long apply_late holds a write before applying it.",
        ),
        click.option("--fault-seed", type=int, help="Local target: seed of the fault draws."),
        click.option(
            "--flavour",
            type=click.Choice(["openai", "azure"]),
            help="Local target: answer as OpenAI (default) or as Azure OpenAI does.",
        ),
    ]
    for decorate in reversed(decorators):
        command = decorate(command)
    return command


def parse_fault_rates(pairs: Iterable[str]) -> dict[str, float]:
    """`--fault KIND=RATE` values (a bare KIND means every write) as {kind: rate}."""
    rates: dict[str, float] = {}
    for pair in pairs:
        kind, sep, value = pair.partition("=")
        kind = kind.strip()
        if kind not in FAULT_KINDS:
            raise click.BadParameter(
                f"expected KIND=RATE with KIND one of {', '.join(FAULT_KINDS)}, got {pair!r}",
                param_hint="--fault",
            )
        try:
            rates[kind] = float(value) if sep else 1.0
        except ValueError:
            raise click.BadParameter(
                f"rate must be a number, got {value!r}", param_hint="--fault"
            ) from None
    return rates


def server_options_from(options: dict[str, Any]) -> dict[str, Any] | None:
    """The local server's options from the rehearsal flags; None when none was given."""
    given: dict[str, Any] = {}
    for flag, key in (("latency_ms", "latency_ms"), ("jitter_ms", "jitter_ms"), ("rpm", "rpm")):
        if options.get(flag) is not None:
            given[key] = options[flag]
    if options.get("fault_seed") is not None:
        given["seed"] = options["fault_seed"]
    if options.get("flavour") is not None:
        given["flavour"] = options["flavour"]
    faults: dict[str, Any] = {}
    rates = parse_fault_rates(options.get("faults") or ())
    if rates:
        faults["rates"] = rates
    if options.get("fault_script"):
        faults["script"] = [step.strip() for step in options["fault_script"].split(",")]
    if options.get("stall_seconds") is not None:
        faults["stall_seconds"] = options["stall_seconds"]
    if options.get("late_seconds") is not None:
        faults["late_seconds"] = options["late_seconds"]
    if faults:
        given["faults"] = faults
    return given or None
