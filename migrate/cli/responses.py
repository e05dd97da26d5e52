"""`migrate export-responses`: stored `previous_response_id` chains to Responses history files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click
import openai
from tqdm import tqdm

from adapters import SourceOpenError
from adapters.responses.chains import ChainProgress, export_chains, read_response_ids
from migrate.cli.output import progress_bar
from migrate.errors import EXIT_OK, EXIT_PARTIAL, ConfigError, SourceError, SourceReadError


@click.command("export-responses")
@click.option(
    "--base-url",
    envvar="OPENAI_BASE_URL",
    help="Base URL of the Responses API, e.g. http://127.0.0.1:8765/v1 "
    "(default: OPENAI_BASE_URL, else api.openai.com).",
)
@click.option(
    "--response-ids-file",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="File with one response id per line (# starts a comment).",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for the histories (one <leaf_response_id>.json per chain).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def export_responses_command(
    base_url: str | None, response_ids_file: Path, out_dir: Path, as_json: bool
) -> int:
    """Export stored Responses chains into history files, resumably.

    Every listed response is retrieved; each leaf (a response no other listed response
    continues) becomes one history: its chain's input items, every page, then its output.
    Run it again after an interruption: what is written is skipped. The API key comes from
    OPENAI_API_KEY. Then migrate the histories with `migrate run OUT`.
    """
    api_key = os.environ.get("OPENAI_API_KEY")
    if not api_key:
        raise ConfigError("OPENAI_API_KEY is not set", hint="export-responses reads the API")
    server = base_url or "api.openai.com"
    bars: dict[str, tqdm[Any]] = {}

    def progress(event: ChainProgress) -> None:
        if event.stage not in bars:
            for bar in bars.values():
                bar.close()
            unit = "response" if event.stage == "retrieve" else "chain"
            bars[event.stage] = progress_bar(desc=event.stage, unit=f" {unit}", total=event.total)
        bars[event.stage].set_postfix_str(event.status, refresh=False)
        bars[event.stage].update(1)

    try:
        ids = read_response_ids(response_ids_file)
        client = openai.OpenAI(api_key=api_key, base_url=base_url)
        summary = export_chains(client, ids, out_dir, progress, server=server)
    except SourceOpenError as exc:
        # The adapter's error becomes the engine's here (adapters cannot import migrate).
        if bars:
            raise SourceReadError(f"the export stopped: {exc}") from exc
        raise SourceError(str(exc)) from exc
    finally:
        for bar in bars.values():
            bar.close()
    for failure in summary.failures:
        click.echo(f"failed: {failure.message}", err=True)
    if as_json:
        click.echo(summary.model_dump_json(indent=2))
    else:
        click.echo(
            f"{summary.ids} response ids: {summary.retrieved} retrieved, {summary.failed} failed; "
            f"{summary.leaves} chains: {summary.written} written ({summary.items} items, "
            f"{summary.input_item_pages} input_items pages), {summary.skipped} already "
            f"exported, {summary.leaf_failures} failed -> {summary.out_dir}"
        )
        for leaf, others in summary.shared.items():
            click.echo(
                f"shared prefix: {leaf} shares earlier responses with {', '.join(others)} "
                "(each history holds the whole prefix)"
            )
    failed = summary.failed + summary.leaf_failures
    return EXIT_PARTIAL if failed else EXIT_OK
