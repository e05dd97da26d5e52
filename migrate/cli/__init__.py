"""The `migrate` command line: a thin layer over the library (one module per group of verbs)."""

from __future__ import annotations

import click

from migrate import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="migrate")
def main() -> None:
    """Move legacy chat history into the OpenAI Conversations API."""


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
from migrate.cli.sync import lookup, sync  # noqa: E402

for _command in (run, sync, resume, work, status, verify, rollback, report, lookup):
    main.add_command(_command)
