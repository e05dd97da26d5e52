"""Job configuration: a frozen pydantic model, loaded from a TOML job file, overridden by flags.

Secrets never live here: the API key and database passwords come from the environment only.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

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
        raise ConfigError(f"invalid job file {path}:\n{exc}") from exc


def source_config_for(source: str, *, options: dict[str, Any] | None = None) -> SourceConfig:
    """Build a source config from a command-line SOURCE: a SQLAlchemy URL or a path.

    `options` holds the source flags that were given (format, preset, field names, ...).
    """
    fields = {key: value for key, value in (options or {}).items() if value is not None}
    kind = "sql" if "://" in source else "json"
    data: dict[str, Any] = {"kind": kind, **fields}
    data["url" if kind == "sql" else "path"] = source
    if kind == "json" and ("where" in data or "since" in data):
        raise ConfigError(f"--where and --since apply to SQL sources; {source!r} is a file")
    if kind == "json" and "preset" in data:
        raise ConfigError(f"--preset applies to SQL sources; {source!r} is not a database URL")
    if kind == "sql" and "format" in data:
        raise ConfigError(f"--format applies to files; {source!r} is a database URL")
    try:
        return JobConfig.model_validate({"source": data}).source
    except ValidationError as exc:
        raise ConfigError(f"invalid source options for {source!r}:\n{exc}") from exc


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
            raise ConfigError(f"invalid --policy value:\n{exc}") from exc
        config = config.model_copy(update={"policy": policy})
    return config
