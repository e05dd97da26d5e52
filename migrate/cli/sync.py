"""`migrate sync` and `migrate lookup`: keep a target up to date, and find the new ids."""

from __future__ import annotations

import json
from typing import Any

import click

from migrate.cli.run import drive, run_fields, run_options
from migrate.errors import EXIT_OK, EXIT_PARTIAL
from migrate.jobs.lookup import lookup_conversations
from migrate.jobs.models import JobSummary, SyncConfig


@click.command()
@run_options
@click.option(
    "--diverged",
    type=click.Choice(["skip", "fail", "new_conversation"]),
    default="skip",
    show_default=True,
    help="A conversation whose already-migrated messages changed in the source: skip it, "
    "fail it, or migrate it again as a new conversation (the old one stays).",
)
def sync(diverged: str, as_json: bool, **options: Any) -> JobSummary:
    """Migrate only what is new in SOURCE: the state store's ledger knows what landed.

    New conversations are created; conversations that only grew get just their new messages
    appended; unchanged ones are counted up to date; a conversation whose migrated messages
    changed is a `source_diverged` finding handled by --diverged. Takes the options of `migrate
    run`. JOB_DIR may be the directory of the finished job before (its state store and local
    target); a shared store is named with --state. Resume an interrupted sync with `migrate
    resume`. Exit codes as for `migrate run`.
    """
    return drive(SyncConfig(**run_fields("sync", options), diverged=diverged), as_json=as_json)


@click.command()
@click.option(
    "--state",
    "state_url",
    envvar="MIGRATE_STATE_URL",
    metavar="URL",
    required=True,
    help="SQLAlchemy URL of the state store (e.g. sqlite:///jobs/first/state.db). Also read "
    "from MIGRATE_STATE_URL.",
)
@click.argument("source_ids", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per line.")
def lookup(state_url: str, source_ids: tuple[str, ...], as_json: bool) -> int:
    """Print the new conversation id of each SOURCE_ID (source conversation id).

    One line per target the conversation went to: `SOURCE_ID<TAB>CONVERSATION_ID` (with
    --json: source_id, target_conversation_id, target, items, complete, job_id). Ids the ledger does
    not know are named on stderr, and the exit code is then 1.
    """
    results = lookup_conversations(state_url, list(source_ids))
    for result in results:
        if as_json:
            row = result.model_dump(mode="json")
            # named as in every report file: the new id is the target's
            row = {
                "source_id": row.pop("source_id"),
                "target_conversation_id": row.pop("conversation_id"),
                **row,
            }
            click.echo(json.dumps(row))
        else:
            click.echo(f"{result.source_id}\t{result.conversation_id}")
    found = {result.source_id for result in results}
    missing = [source_id for source_id in source_ids if source_id not in found]
    for source_id in missing:
        click.echo(f"not found: {source_id}", err=True)
    return EXIT_PARTIAL if missing else EXIT_OK
