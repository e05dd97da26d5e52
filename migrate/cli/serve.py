"""`migrate serve` runs the local Conversations server; `migrate inspect` reads back its data."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from migrate.cli.options import parse_fault_rates
from migrate.config import describe_validation
from migrate.errors import ConfigError, JobError
from migrate.server.embedded import serve as serve_forever
from migrate.server.options import FAULT_KINDS, FaultSettings, ServerOptions
from migrate.server.store import ConversationStore


def describe_switches(options: ServerOptions) -> str:
    """One line naming every rehearsal switch in force (never the API key itself)."""
    faults = options.faults
    rates = ", ".join(f"{kind}={rate:g}" for kind, rate in faults.rates.items()) or "none"
    parts = [
        f"latency {options.latency_ms:g}ms+{options.jitter_ms:g}ms jitter",
        f"rate limit {options.rpm}/min" if options.rpm else "no rate limit",
        *([f"drained {options.drain_seconds:g}s"] if options.drain_seconds else []),
        *([] if options.rate_headers else ["no x-ratelimit headers"]),
        f"faults {rates}",
    ]
    if faults.script:
        parts.append(f"fault script {','.join(faults.script)}")
    if "stall_after_commit" in faults.rates or "stall_after_commit" in faults.script:
        parts.append(f"stall {faults.stall_seconds:g}s")
    if "burst_503" in faults.rates or "burst_503" in faults.script:
        parts.append(f"503 bursts of {faults.burst_length}")
    if options.responses_dir is not None:
        parts.append(f"stored responses from {options.responses_dir}")
    if "apply_late" in faults.rates or "apply_late" in faults.script:
        parts.append(f"writes applied {faults.late_seconds:g}s late")
    parts.append(f"seed {options.seed}")
    if options.flavour == "azure":
        threads = f", threads from {options.threads_dir}" if options.threads_dir else ""
        parts.append(f"Azure flavour{threads}")
    parts.append("auth: the configured API key" if options.api_key else "auth: any bearer token")
    return "; ".join(parts)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8765, show_default=True, type=int, help="Port to bind.")
@click.option(
    "--db",
    "db_path",
    default="rehearsal.db",
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="SQLite file holding the conversations (created if missing).",
)
@click.option("--latency-ms", default=0.0, type=float, help="Fixed delay per request.")
@click.option("--jitter-ms", default=0.0, type=float, help="Extra random delay, 0..N ms.")
@click.option("--rpm", type=int, help="Requests per minute before 429s (token bucket).")
@click.option(
    "--drain-seconds",
    type=click.FloatRange(min=0),
    default=0.0,
    help="With --rpm: for this long from the first request on, another client spends the "
    "whole limit (every request answers 429); POST /_admin/drain does it at any time.",
)
@click.option(
    "--no-rate-headers",
    is_flag=True,
    help="Send no x-ratelimit-* headers, as OpenAI's Conversations endpoints do (clients then "
    "pace from 429s and Retry-After alone).",
)
@click.option(
    "--fault",
    "--fault-rate",
    "fault_rates",
    multiple=True,
    metavar="KIND=RATE",
    help=f"Inject a fault on that share of write requests; KIND: {', '.join(FAULT_KINDS)}.",
)
@click.option(
    "--fault-script",
    help="Comma-separated faults (or 'none') for the first write requests, in order.",
)
@click.option("--stall-seconds", default=30.0, type=float, help="How long a stall lasts.")
@click.option("--burst-length", default=3, type=int, help="Requests per 503 burst.")
@click.option(
    "--late-seconds",
    default=5.0,
    type=float,
    help="How long apply_late holds a write before applying it (client gone or not).",
)
@click.option("--seed", default=0, type=int, help="Seed for jitter and fault draws.")
@click.option(
    "--api-key",
    envvar="MIGRATE_SERVE_API_KEY",
    help="Accept only this bearer token (default: any). Env: MIGRATE_SERVE_API_KEY.",
)
@click.option(
    "--admin",
    "allow_admin",
    is_flag=True,
    help="Without --api-key: let any local process change the faults (or drain the rate "
    "limit) via /_admin "
    "(with --api-key, changes need the key).",
)
@click.option("--access-log", is_flag=True, help="Log every request on stderr.")
@click.option(
    "--flavour",
    type=click.Choice(["openai", "azure"]),
    default="openai",
    show_default=True,
    help="azure: Azure OpenAI's paths (/openai/v1, api-version), api-key auth, the "
    "conversation list and Assistants threads.",
)
@click.option(
    "--threads-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="With --flavour azure: serve the threads of this export directory (read only).",
)
@click.option(
    "--responses",
    "responses_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Also serve GET /v1/responses/{id} and its input_items from this directory of "
    "stored responses (one <id>.json each, with its input_items).",
)
def serve(
    host: str,
    port: int,
    db_path: Path,
    latency_ms: float,
    jitter_ms: float,
    rpm: int | None,
    drain_seconds: float,
    no_rate_headers: bool,
    fault_rates: tuple[str, ...],
    fault_script: str | None,
    stall_seconds: float,
    burst_length: int,
    late_seconds: float,
    seed: int,
    api_key: str | None,
    allow_admin: bool,
    access_log: bool,
    flavour: str,
    threads_dir: Path | None,
    responses_dir: Path | None,
) -> None:
    """Run the local Conversations API server (a rehearsal target) until Ctrl-C.

    Point the SDK or `migrate run` at the printed URL. Latency, rate limits and injected faults
    (e.g. commit, then drop the connection) rehearse what a real migration meets.
    """
    script = [step.strip() for step in fault_script.split(",")] if fault_script else []
    try:
        options = ServerOptions.model_validate(
            {
                "api_key": api_key,
                "latency_ms": latency_ms,
                "jitter_ms": jitter_ms,
                "rpm": rpm,
                "drain_seconds": drain_seconds,
                "rate_headers": not no_rate_headers,
                "seed": seed,
                "access_log": access_log,
                "flavour": flavour,
                "threads_dir": threads_dir,
                "responses_dir": responses_dir,
                "admin_changes": allow_admin or api_key is not None,
                "faults": FaultSettings.model_validate(
                    {
                        "rates": parse_fault_rates(fault_rates),
                        "script": script,
                        "stall_seconds": stall_seconds,
                        "burst_length": burst_length,
                        "late_seconds": late_seconds,
                    }
                ),
            }
        )
    except ValidationError as exc:
        raise ConfigError(f"invalid server options: {describe_validation(exc)}") from exc

    def announce(base_url: str) -> None:
        click.echo(
            f"migrate serve: Conversations API at {base_url} (db {db_path}; "
            f"{describe_switches(options)}). Ctrl-C to stop.",
            err=True,
        )

    try:
        serve_forever(options, db_path, host=host, port=port, on_ready=announce)
    except OSError as exc:
        raise JobError(f"cannot listen on {host}:{port}: {exc}") from exc
    click.echo("migrate serve: stopped", err=True)


def _when(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _item_line(position: int, item: dict[str, Any]) -> str:
    kind = item["type"]
    if kind == "message":
        texts = []
        for part in item["content"]:
            text = part.get("text") or part.get("refusal")
            texts.append(text if text is not None else f"[{part['type']}]")
        summary = f"{item['role']}: {' '.join(texts)}"
    elif kind in ("function_call", "custom_tool_call"):
        arguments = item.get("arguments", item.get("input", ""))
        summary = f"{item['name']}({arguments}) call_id={item['call_id']}"
    else:
        output = item["output"] if isinstance(item["output"], str) else "[parts]"
        summary = f"call_id={item['call_id']} -> {output}"
    summary = summary.replace("\n", " ")
    if len(summary) > 120:
        summary = summary[:117] + "..."
    return f"{position:>5}  {item['id']}  {kind:<22}  {summary}"


@click.command("inspect")
@click.option(
    "--db",
    "db_path",
    default="rehearsal.db",
    show_default=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The local server's SQLite file.",
)
@click.argument("conversation_id", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def inspect_command(db_path: Path, conversation_id: str | None, as_json: bool) -> None:
    """List the local server's conversations, or one conversation's items in order.

    Works while `migrate serve` is running. Deleted conversations are listed and marked.
    """
    store = ConversationStore.from_path(db_path)
    try:
        if conversation_id is None:
            _print_conversations(store, as_json)
        else:
            _print_items(store, conversation_id, as_json, db_path)
    finally:
        store.close()


def _print_conversations(store: ConversationStore, as_json: bool) -> None:
    summaries = store.summaries()
    if as_json:
        for summary in summaries:
            click.echo(summary.model_dump_json())
        return
    for summary in summaries:
        flag = "  (deleted)" if summary.deleted else ""
        metadata = json.dumps(summary.metadata, ensure_ascii=False)
        click.echo(
            f"{summary.id}  {_when(summary.created_at)}  {summary.item_count:>6} items  "
            f"{metadata}{flag}"
        )
    click.echo(f"{len(summaries)} conversations", err=True)


def _print_items(
    store: ConversationStore, conversation_id: str, as_json: bool, db_path: Path
) -> None:
    record = store.find_conversation(conversation_id)
    if record is None:
        raise JobError(f"no conversation {conversation_id} in {db_path}")
    items = store.all_items(conversation_id)
    if as_json:
        click.echo(
            json.dumps(
                {**record.api_object(), "deleted": record.deleted, "items": items},
                ensure_ascii=False,
            )
        )
        return
    flag = " (deleted)" if record.deleted else ""
    click.echo(
        f"{record.id}{flag}  created {_when(record.created_at)}  "
        f"metadata {json.dumps(record.metadata, ensure_ascii=False)}"
    )
    for position, item in enumerate(items):
        click.echo(_item_line(position, item))
    click.echo(f"{len(items)} items", err=True)
