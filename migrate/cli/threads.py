"""`migrate export-threads`: dump Assistants threads from a compatible server to JSON files."""

from __future__ import annotations

from pathlib import Path

import click

from adapters import SourceOpenError
from adapters.assistants.dump import ExportProgress, export_threads
from adapters.config import AssistantsLiveSourceConfig
from migrate.cli.output import progress_bar
from migrate.errors import EXIT_OK, EXIT_PARTIAL, SourceError, SourceReadError


@click.command("export-threads")
@click.option(
    "--base-url",
    envvar="OPENAI_BASE_URL",
    help="Base URL of the Assistants-compatible server, e.g. http://host:8080/v1 "
    "(default: OPENAI_BASE_URL, else api.openai.com).",
)
@click.option(
    "--azure-endpoint",
    help="An Azure OpenAI resource (https://NAME.openai.azure.com) or Foundry project endpoint "
    "(https://NAME.services.ai.azure.com/api/projects/PROJECT). Key: AZURE_OPENAI_API_KEY, "
    "else Microsoft Entra ID (pip install 'chat-migrate[azure]').",
)
@click.option(
    "--api-version",
    help="With --azure-endpoint: the api-version (default 2024-05-01-preview on a resource, "
    "v1 on a Foundry project).",
)
@click.option(
    "--all-threads",
    is_flag=True,
    help="Export every thread the service lists (the Foundry Agent Service can; OpenAI cannot).",
)
@click.option(
    "--thread-ids-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="File with one thread id per line (# starts a comment).",
)
@click.option("--thread", "thread_ids", multiple=True, help="A thread id (repeatable).")
@click.option("--thread-ids-query", help="SQL whose first column is a thread id.")
@click.option(
    "--thread-ids-url-env",
    metavar="VAR",
    help="Environment variable holding the SQLAlchemy URL for --thread-ids-query.",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for the exported threads (one <thread_id>.json each).",
)
@click.option(
    "--no-run-steps", is_flag=True, help="Skip runs and run steps (no tool call history)."
)
@click.option(
    "--resolve-filenames",
    is_flag=True,
    help="Look up cited and attached files' names through the Files API.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def export_threads_command(
    base_url: str | None,
    azure_endpoint: str | None,
    api_version: str | None,
    all_threads: bool,
    thread_ids_file: Path | None,
    thread_ids: tuple[str, ...],
    thread_ids_query: str | None,
    thread_ids_url_env: str | None,
    out_dir: Path,
    no_run_steps: bool,
    resolve_filenames: bool,
    as_json: bool,
) -> int:
    """Dump Assistants threads from a compatible server into JSON files, resumably.

    Threads already in OUT are skipped, so the command can be run again after an
    interruption. The API key comes from OPENAI_API_KEY (on Azure: AZURE_OPENAI_API_KEY, else
    Microsoft Entra ID). Read the files with
    `migrate plan OUT --format assistants`.
    """
    if thread_ids_query and not thread_ids_url_env:
        raise click.UsageError("--thread-ids-query needs --thread-ids-url-env")
    if not (thread_ids or thread_ids_file or thread_ids_query or all_threads):
        raise click.UsageError(
            "give thread ids: --thread, --thread-ids-file or --thread-ids-query "
            "(OpenAI's Assistants API cannot list threads), or --all-threads on Azure"
        )
    if api_version and not azure_endpoint:
        raise click.UsageError("--api-version needs --azure-endpoint")
    config = AssistantsLiveSourceConfig(
        base_url=None if azure_endpoint else base_url,
        azure_endpoint=azure_endpoint,
        api_version=api_version,
        all_threads=all_threads,
        thread_ids=thread_ids,
        thread_ids_file=thread_ids_file,
        thread_ids_query=thread_ids_query,
        thread_ids_url_env=thread_ids_url_env,
        include_run_steps=not no_run_steps,
        resolve_filenames=resolve_filenames,
    )
    with progress_bar(desc="threads", unit=" thread") as bar:

        def progress(event: ExportProgress) -> None:
            bar.total = event.total
            bar.set_postfix_str(event.status, refresh=False)
            bar.update(1)

        started = [False]

        def progress_and_note(event: ExportProgress) -> None:
            started[0] = True
            progress(event)

        # The adapter's errors become the engine's here (adapters cannot import migrate).
        try:
            summary = export_threads(config, out_dir, progress_and_note)
        except SourceOpenError as exc:
            if started[0]:
                raise SourceReadError(f"the export stopped: {exc}") from exc
            raise SourceError(str(exc)) from exc
        except OSError as exc:
            raise SourceReadError(f"the export stopped: {exc}") from exc
    for failure in summary.failures:
        click.echo(f"failed: {failure.message}", err=True)
    if as_json:
        click.echo(summary.model_dump_json(indent=2))
    else:
        click.echo(
            f"{summary.total} threads: {summary.written} written, "
            f"{summary.skipped} already exported, {summary.failed} failed -> {summary.out_dir}"
        )
    return EXIT_PARTIAL if summary.failed else EXIT_OK
