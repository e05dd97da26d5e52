"""The `migrate` command line: a thin layer over the library (one module per group of verbs).

The verbs are imported when one is run, not when `migrate` starts: `migrate --help` lists them
from `VERBS` without importing the SDK, SQLAlchemy or the server (a test checks that each
entry's help is the verb's own).
"""

from __future__ import annotations

import importlib
from typing import NamedTuple

import click

from migrate import __version__


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
        "(Re)write the job's report: id maps (CSV, JSON Lines), findings, errors,...",
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


class LazyVerbs(click.Group):
    """A group whose verbs are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *VERBS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        verb = VERBS.get(cmd_name)
        if verb is None:
            return super().get_command(ctx, cmd_name)
        command = getattr(importlib.import_module(verb.module), verb.attribute)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, VERBS[name].short_help) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyVerbs, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="migrate")
def main() -> None:
    """Move legacy chat history into the OpenAI Conversations API."""
