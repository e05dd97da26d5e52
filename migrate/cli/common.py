"""Options and error handling shared by the verbs that read a source (`plan`, `run`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar, get_args

import click

from adapters.config import JsonFormat
from migrate.config import JobConfig, build_job_config
from migrate.context.models import model_spec

P = ParamSpec("P")
R = TypeVar("R")

SOURCE_FLAGS = (
    "format",
    "preset",
    "table",
    "id_field",
    "messages_field",
    "metadata_field",
    "where",
    "since",
    "thread_order",
    "lone_surrogates",
)


def source_options(command: Callable[P, R]) -> Callable[P, R]:
    """Add SOURCE and the flags that describe it and the transform policy."""
    decorators = [
        click.argument("source", required=False),
        click.option(
            "--job-file",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="TOML job file ([source], [policy]); flags override it.",
        ),
        click.option(
            "--format",
            type=click.Choice(list(get_args(JsonFormat))),
            help="File format; detected from the content when omitted.",
        ),
        click.option(
            "--preset",
            type=click.Choice(["langchain", "agents-sdk", "llamaindex"]),
            help="Known schema of a SQL source.",
        ),
        click.option("--table", help="SQL source: table to read (overrides the preset's)."),
        click.option("--id-field", help="Field holding the conversation id."),
        click.option("--messages-field", help="Field holding the message list."),
        click.option("--metadata-field", help="Field holding conversation metadata."),
        click.option(
            "--where",
            metavar="SQL",
            help="SQL source: only conversations with a row meeting this condition (read whole).",
        ),
        click.option(
            "--since",
            metavar="TIMESTAMP",
            help="SQL source: only conversations with a message at or after this ISO 8601 time "
            "(UTC unless it says otherwise), by the preset's or mapping's timestamp column.",
        ),
        click.option(
            "--thread-order",
            type=click.Choice(["asc", "desc"]),
            help="Assistants exports: the order saved message lists are in, where timestamps "
            "cannot tell (default: oldest first for export-threads output, newest first for "
            "lists saved from the API).",
        ),
        click.option(
            "--lone-surrogates",
            type=click.Choice(["fail", "replace"]),
            help="A lone UTF-16 surrogate (or invalid UTF-8 in SQLite text): fail that "
            "conversation (default) or migrate it with U+FFFD.",
        ),
        click.option(
            "--all-branches",
            is_flag=True,
            help="ChatGPT exports: migrate every branch, not only the current one.",
        ),
        click.option(
            "--model",
            help="Model the app will continue the conversations with; its input limit is the "
            "limit for context findings (default gpt-5: 272,000 tokens).",
        ),
        click.option(
            "--context-limit",
            type=click.IntRange(min=1),
            help="Input limit in tokens, instead of the model's.",
        ),
        click.option(
            "--policy",
            "policy_pairs",
            multiple=True,
            metavar="KEY=VALUE",
            help="Override a transform policy field, e.g. --policy reasoning=text.",
        ),
    ]
    for decorate in reversed(decorators):
        command = decorate(command)
    return command


def job_config_from(options: dict[str, Any]) -> JobConfig:
    """Turn the values of `source_options` into a `JobConfig`."""
    source_flags = {key: options.get(key) for key in SOURCE_FLAGS}
    if options.get("all_branches"):
        source_flags["chatgpt_branches"] = "all"
    policy: dict[str, str] = {}
    for pair in options.get("policy_pairs") or ():
        key, sep, value = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--policy")
        policy[key.strip()] = value.strip()
    for flag in ("model", "context_limit"):
        if options.get(flag) is not None:
            policy[flag] = options[flag]
    config = build_job_config(
        source=options.get("source"),
        job_file=options.get("job_file"),
        source_options=source_flags,
        policy_overrides=policy,
    )
    model_spec(config.policy.model)  # an unknown model is a usage error before any work
    return config
