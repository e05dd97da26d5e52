"""Job configuration: a frozen pydantic model, loaded from a TOML job file, overridden by flags.

Secrets never live here: the API key and database passwords come from the environment only.
"""

from __future__ import annotations

import difflib
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from adapters import SourceConfig
from migrate.errors import ConfigError
from migrate.transform.policy import Policy


class JobConfig(BaseModel):
    """What to read, how to transform it and (for a run) where to write it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: SourceConfig
    policy: Policy = Field(default_factory=Policy)


def load_job_file(path: Path, overrides: dict[str, Any] | None = None) -> JobConfig:
    """Read a TOML job file; `overrides` (from flags) replace top-level tables' fields."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read job file {path}: {exc}") from exc
    for section, values in (overrides or {}).items():
        data.setdefault(section, {}).update(values)
    source = data.get("source")
    if isinstance(source, dict) and isinstance(source.get("path"), str):
        source["path"] = str((path.parent / source["path"]).resolve())
    try:
        return JobConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            f"invalid job file {path}: {describe_validation(exc, JobConfig)}"
        ) from exc


def source_config_for(source: str, *, options: dict[str, Any] | None = None) -> SourceConfig:
    """Build a source config from a command-line SOURCE: a SQLAlchemy URL or a path.

    `options` holds the source flags that were given (format, preset, field names, ...).
    """
    fields = {key: value for key, value in (options or {}).items() if value is not None}
    kind = "sql" if "://" in source else "json"
    data: dict[str, Any] = {"kind": kind, **fields}
    # Absolute, so that `resume` from another working directory (cron) finds the same file.
    data["url" if kind == "sql" else "path"] = (
        absolute_sqlite_url(source) if kind == "sql" else str(Path(source).absolute())
    )
    if kind == "json" and ("where" in data or "since" in data):
        raise ConfigError(f"--where and --since apply to SQL sources; {source!r} is a file")
    if kind == "json" and "preset" in data:
        raise ConfigError(f"--preset applies to SQL sources; {source!r} is not a database URL")
    if kind == "sql" and "format" in data:
        raise ConfigError(f"--format applies to files; {source!r} is a database URL")
    try:
        return JobConfig.model_validate({"source": data}).source
    except ValidationError as exc:
        raise ConfigError(
            f"invalid source options for {source!r}: {describe_validation(exc, JobConfig)}"
        ) from exc


def absolute_sqlite_url(url: str) -> str:
    """A SQLite URL with its database file made absolute (other URLs as given)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return url  # the source reports the bad URL when it opens it
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return url
    if database.startswith("file:") or Path(database).is_absolute():
        return url
    absolute = parsed.set(database=str(Path(database).absolute()))
    return absolute.render_as_string(hide_password=False)


def build_job_config(
    *,
    source: str | None,
    job_file: Path | None,
    source_options: dict[str, Any] | None = None,
    policy_overrides: dict[str, Any] | None = None,
) -> JobConfig:
    """Combine a job file (if any), a SOURCE argument and flags into one `JobConfig`."""
    if job_file is not None:
        config = load_job_file(job_file)
        if source is not None:
            config = config.model_copy(
                update={"source": source_config_for(source, options=source_options)}
            )
    elif source is not None:
        config = JobConfig(source=source_config_for(source, options=source_options))
    else:
        raise ConfigError("give a SOURCE (file, directory or database URL) or --job-file")
    if policy_overrides:
        try:
            policy = Policy.model_validate({**config.policy.model_dump(), **policy_overrides})
        except ValidationError as exc:
            raise ConfigError(f"invalid --policy: {describe_validation(exc, Policy)}") from exc
        config = config.model_copy(update={"policy": policy})
    return config


def describe_validation(exc: ValidationError, model: type[BaseModel] | None = None) -> str:
    """A validation error in words: `key: what is wrong`, one per problem, `; `-separated.

    An unknown key lists the valid ones of its table and the nearest ("did you mean ...?")
    when `model` (the validated model) is given. No links, no Python reprs of `None`.
    """
    problems = []
    for error in exc.errors(include_url=False):
        loc = [str(part) for part in error["loc"]]
        where = ".".join(loc) or "value"
        if error["type"] == "extra_forbidden" and model is not None:
            valid, path = _keys_at(model, loc[:-1])
            shown = ".".join([*path, loc[-1]])
            problems.append(f"unknown key `{shown}`" + _suggestion(loc[-1], valid))
            continue
        if error["type"] == "missing":
            problems.append(f"`{where}` is required")
            continue
        message = str(error["msg"])
        if "input" in error and error["type"] not in ("missing",):
            shown = error["input"]
            message += f" (got {'nothing' if shown is None else repr(shown)})"
        problems.append(f"`{where}`: {message}")
    return "; ".join(problems)


def _suggestion(key: str, valid: list[str]) -> str:
    if not valid:
        return ""
    nearest = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    hint = f" (did you mean `{nearest[0]}`?)" if nearest else ""
    return f"{hint}; valid keys: {', '.join(sorted(valid))}"


def _keys_at(model: type[BaseModel], loc: list[str]) -> tuple[list[str], list[str]]:
    """The field names of the table at `loc` inside `model` (through unions and their tags),
    and `loc` without the tags (the path a person writes)."""
    candidates: list[type[BaseModel]] = [model]
    path: list[str] = []
    for part in loc:
        following: list[type[BaseModel]] = []
        for candidate in candidates:
            field = candidate.model_fields.get(part)
            if field is not None:
                following += _models_in(field.annotation)
        if following:
            path.append(part)
        else:
            # A discriminated union's tag (`source.json...`): keep the member it names.
            following = [
                c
                for c in candidates
                if getattr(c.model_fields.get("kind"), "default", None) == part
            ]
        candidates = following
    names: list[str] = []
    for candidate in candidates:
        names += [name for name in candidate.model_fields if name not in names]
    return names, path


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _models_in(typing.get_args(annotation)[0])
    if origin is typing.Union or origin is types.UnionType:
        return [model for arg in typing.get_args(annotation) for model in _models_in(arg)]
    return []
