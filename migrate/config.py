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
from migrate.policy import Policy


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
