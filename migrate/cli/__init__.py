"""The `migrate` command line: a thin layer over the library (one module per group of verbs)."""

from __future__ import annotations

import functools
from typing import Any

import click

from migrate import __version__
from migrate.cli.output import (
    OUTPUT_OPTIONS,
    close_logs,
    configure,
    exit_code_for,
    exit_code_of,
    settings_of,
)


class MigrateGroup(click.Group):
    """The verbs, each with the output options, and the one place that decides exit codes.

    A verb returns its result (anything with `exit_code`, or an int); an error of the tree
    (`migrate.errors`) exits with its class's code; anything else exits 3 (see
    `migrate.cli.output.exit_code_for`). Click's own usage errors exit 2.
    """

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        cmd.params.extend(make() for make in OUTPUT_OPTIONS)
        callback = cmd.callback
        if callback is not None:

            @functools.wraps(callback)
            def configured(*args: Any, **kwargs: Any) -> Any:
                configure(settings_of(click.get_current_context()))
                return callback(*args, **kwargs)

            cmd.callback = configured
        super().add_command(cmd, name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            result = super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Abort, click.exceptions.Exit):
            close_logs()
            raise
        except (Exception, KeyboardInterrupt) as error:
            code = exit_code_for(error)
        else:
            code = exit_code_of(result)
        close_logs()
        ctx.exit(code)


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

# Each verb lives in its own module; registering them here keeps `main` the single entry point.

from migrate.cli.plan import plan  # noqa: E402

main.add_command(plan)
from migrate.cli.serve import inspect_command, serve  # noqa: E402

main.add_command(serve)
main.add_command(inspect_command)

from migrate.cli.threads import export_threads_command  # noqa: E402

main.add_command(export_threads_command)

from migrate.cli.job import report, rollback, status, verify  # noqa: E402
from migrate.cli.run import resume, run, work  # noqa: E402

for _command in (run, resume, work, status, verify, rollback, report):
    main.add_command(_command)
