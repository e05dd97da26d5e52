"""The `migrate` command line: a thin layer over the library (one module per group of verbs).

The verbs are imported when one is run, not when `migrate` starts: `migrate --help` lists them
from `VERBS` without importing the SDK, SQLAlchemy or the server (a test checks that each
entry's help is the verb's own).
"""

from __future__ import annotations

import functools
import importlib
from typing import Any, NamedTuple

import click

from migrate import __version__
from migrate.cli.invocation import RECORDED_VERBS, Recorded, forget_if_unrecorded, record_invocation
from migrate.cli.output import (
    OUTPUT_OPTIONS,
    close_logs,
    configure,
    exit_code_for,
    exit_code_of,
    settings_of,
)


class Verb(NamedTuple):
    """Where a verb lives and the one line `migrate --help` shows for it."""

    module: str
    attribute: str
    short_help: str


VERBS = {
    "plan": Verb(
        "migrate.cli.plan",
        "plan",
        "Dry run: plan every API call for SOURCE and report what would be lost.",
    ),
    "run": Verb(
        "migrate.cli.run",
        "run",
        "Migrate SOURCE into the target, exactly once, with a report of every new id.",
    ),
    "sync": Verb(
        "migrate.cli.sync",
        "sync",
        "Migrate only what is new in SOURCE: the state store's ledger knows what landed.",
    ),
    "resume": Verb(
        "migrate.cli.run",
        "resume",
        "Finish an interrupted job: reconcile what was in flight, then go on.",
    ),
    "work": Verb(
        "migrate.cli.run",
        "work",
        "Join a running job as one more worker (on this machine or another).",
    ),
    "status": Verb(
        "migrate.cli.job",
        "status",
        "Show a job's counts: conversations by status, items, calls, retries, orphans.",
    ),
    "verify": Verb(
        "migrate.cli.job",
        "verify",
        "Read every migrated conversation back and compare it item by item with the plan.",
    ),
    "rollback": Verb(
        "migrate.cli.job",
        "rollback",
        "Delete every conversation the job created on the target (after confirmation).",
    ),
    "report": Verb(
        "migrate.cli.job",
        "report",
        "(Re)write the job's report: id maps (CSV), findings, errors, summary, and...",
    ),
    "lookup": Verb(
        "migrate.cli.sync",
        "lookup",
        "Print the new conversation id of each SOURCE_ID (source conversation id).",
    ),
    "export-threads": Verb(
        "migrate.cli.threads",
        "export_threads_command",
        "Dump Assistants threads from a compatible server into JSON files, resumably.",
    ),
    "export-responses": Verb(
        "migrate.cli.responses",
        "export_responses_command",
        "Export stored Responses chains into history files, resumably.",
    ),
    "serve": Verb(
        "migrate.cli.serve",
        "serve",
        "Run the local Conversations API server (a rehearsal target) until Ctrl-C.",
    ),
    "inspect": Verb(
        "migrate.cli.serve",
        "inspect_command",
        "List the local server's conversations, or one conversation's items in order.",
    ),
}


class MigrateGroup(click.Group):
    """The verbs (imported on first use), each with the output options, and the one place
    that decides exit codes.

    A verb returns its result (anything with `exit_code`, or an int); an error of the tree
    (`migrate.errors`) exits with its class's code; anything else exits 3 (see
    `migrate.cli.output.exit_code_for`). Click's own usage errors exit 2.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *VERBS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        verb = VERBS.get(cmd_name)
        if verb is None:
            return super().get_command(ctx, cmd_name)
        command = getattr(importlib.import_module(verb.module), verb.attribute)
        assert isinstance(command, click.Command)
        return _with_output_options(command)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        # Before the verb is imported: a `run` killed while it loads can be resumed.
        if args and args[0] in RECORDED_VERBS and not ctx.resilient_parsing:
            verb_args, recorded = record_invocation(args[0], args[1:])
            args = [args[0], *verb_args]
            if recorded is not None:
                ctx.meta[_RECORDED] = recorded
        return super().resolve_command(ctx, args)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, VERBS[name].short_help) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            result = super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Abort, click.exceptions.Exit):
            close_logs()
            _forget_unrecorded(ctx)
            raise
        except (Exception, KeyboardInterrupt) as error:
            code = exit_code_for(error)
        else:
            code = exit_code_of(result)
        close_logs()
        _forget_unrecorded(ctx)
        ctx.exit(code)


_RECORDED = "migrate.invocation"


def _forget_unrecorded(ctx: click.Context) -> None:
    recorded = ctx.meta.get(_RECORDED)
    if isinstance(recorded, Recorded):
        forget_if_unrecorded(recorded)


def _with_output_options(command: click.Command) -> click.Command:
    """Give a verb the output options, once, and configure logging before it runs."""
    if getattr(command, "_migrate_output", False):
        return command
    command.params.extend(make() for make in OUTPUT_OPTIONS)
    callback = command.callback
    if callback is not None:

        @functools.wraps(callback)
        def configured(*args: Any, **kwargs: Any) -> Any:
            configure(settings_of(click.get_current_context()))
            return callback(*args, **kwargs)

        command.callback = configured
    command._migrate_output = True  # type: ignore[attr-defined]
    return command


@click.group(cls=MigrateGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="migrate")
def main() -> None:
    """Move legacy chat history into the OpenAI Conversations API.

    Exit codes of every verb: 0 success; 1 completed, but some conversations (or checks,
    deletions, threads) failed; 2 usage or configuration error, nothing done; 3 the job did
    not finish (resume it). Every verb takes -v/-vv, --quiet, --progress/--no-progress,
    --log-file PATH and --debug.
    """


for _make in OUTPUT_OPTIONS:
    main.params.append(_make())
